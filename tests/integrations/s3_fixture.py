#!/usr/bin/env python3
"""s3_fixture.py: a real S3-compatible server for the object-storage tests, and a faulty network in front of it.

Starts moto's S3 server on 127.0.0.1 with signature checking on (INITIAL_NO_AUTH_ACTION_COUNT: the first three
calls create an IAM user, its access key and an allow-all policy; every later request must carry a valid SigV4
signature by a known key), uploads the demo adapters under s3://adapters/loras/NAME/ with boto3 (the AWS SDK,
an outside reference for what a bucket looks like), and starts a forwarding proxy that breaks transfers on
purpose for keys under loras/cut/ (the connection closes after half the body), loras/slow/ (the body never
comes) and loras/flip/ (one byte changed, same length). The proxy counts the GETs it forwarded per path
(GET /__count?path=/adapters/loras/calc/adapter_model.safetensors).

Prints one JSON line (endpoint, proxy, access_key, secret_key, bucket, prefix, pid) and serves until killed or
until its parent process exits.
"""
import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # read by moto at import
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

BUCKET = "adapters"
PREFIX = "loras"


def upload(s3, demo: str) -> None:
    s3.create_bucket(Bucket=BUCKET)
    adapters = os.path.join(demo, "adapters")
    names = sorted(os.listdir(adapters))
    for name in names:
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            s3.upload_file(os.path.join(adapters, name, f), BUCKET, f"{PREFIX}/{name}/{f}")
    calc = os.path.join(adapters, "calc")
    config = open(os.path.join(calc, "adapter_config.json"), "rb").read()
    weights = open(os.path.join(calc, "adapter_model.safetensors"), "rb").read()
    for broken in ("cut", "slow", "flip"):  # whole objects; the proxy breaks their transfer
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{broken}/adapter_config.json", Body=config)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{broken}/adapter_model.safetensors", Body=weights)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/noweights/adapter_config.json", Body=config)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/stored-truncated/adapter_config.json", Body=config)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/stored-truncated/adapter_model.safetensors",
                  Body=weights[: len(weights) // 2])
    # A second root with one adapter (roots are searched in order).
    s3.put_object(Bucket=BUCKET, Key="other/only-here/adapter_config.json", Body=config)
    s3.put_object(Bucket=BUCKET, Key="other/only-here/adapter_model.safetensors", Body=weights)


def make_proxy(upstream_port: int, stop: threading.Event):
    counts: dict = {}
    lock = threading.Lock()

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/__count":
                path = urllib.parse.parse_qs(url.query).get("path", [""])[0]
                with lock:
                    body = str(counts.get(path, 0)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            with lock:
                counts[url.path] = counts.get(url.path, 0) + 1
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
            conn.putrequest("GET", self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                conn.putheader(k, v)  # Host included: it is part of the signature
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            weights = url.path.endswith("adapter_model.safetensors") and resp.status == 200
            fault = next((f for f in ("/cut/", "/slow/", "/flip/") if f in url.path), None) if weights else None
            if fault == "/flip/":
                body = body[:100] + bytes([body[100] ^ 0x55]) + body[101:]
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault == "/cut/":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if fault == "/slow/":
                self.wfile.flush()
                stop.wait(60)
                self.close_connection = True
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", required=True, help="models/demo")
    args = parser.parse_args()
    parent = os.getppid()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = dict(endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup",
                 region_name="us-east-1")
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="loraserve")
    key = iam.create_access_key(UserName="loraserve")["AccessKey"]
    iam.put_user_policy(UserName="loraserve", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1")
    upload(s3, args.demo)
    stop = threading.Event()
    proxy = make_proxy(port, stop)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    print(json.dumps({"endpoint": endpoint, "proxy": f"http://127.0.0.1:{proxy.server_address[1]}",
                      "access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"],
                      "bucket": BUCKET, "prefix": PREFIX, "pid": os.getpid()}), flush=True)
    while os.getppid() == parent:
        time.sleep(0.5)
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
