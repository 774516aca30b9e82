"""Start-up and shutdown of `loraserve serve`: a bad adapter stops start-up with its reason (exit 1, nothing
listening); the launcher spellings of TGI and vLLM are accepted (LORA_ADAPTERS, positional model, --model-id,
--enable-lora and friends); on SIGTERM/SIGINT a running stream finishes and the process exits 0; a fatal signal
leaves its name and a backtrace in the log."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ADAPTERS, BASE, BIN, Server


def test_bad_adapter_stops_start_up(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}')
    for spec, reason in [(f"bad={tmp_path / 'missing'}", "bad"), (f"bad={tmp_path}", "bad")]:
        out = subprocess.run([BIN, "serve", "--model", BASE, "--port", "0", "--lora-modules", spec],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 1, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("loraserve: ") and "adapter " + reason in last, out.stderr
        assert "listening on" not in out.stderr
    out = subprocess.run([BIN, "serve", "--model", BASE, "--port", "0", "--lora-modules", '{"name": "x"}'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "path" in out.stderr


def test_launcher_spellings(tmp_path):
    server = Server(["--enable-lora", "--max-lora-rank", "64", "--max-loras", "2", "--max-cpu-loras", "4",
                     "--max-num-seqs", "8", "--max-num-batched-tokens", "512", "--max-concurrent-requests", "16",
                     "--max-input-tokens", "1000", "--max-total-tokens", "1024"],
                    env={"LORA_ADAPTERS": f"calc={ADAPTERS['calc']},{ADAPTERS['sql']}"})
    try:
        import requests
        info = requests.get(server.url + "/info").json()
        assert sorted(info["adapters"]) == ["calc", "sql"]
        assert info["max_input_tokens"] == 1000 and info["max_total_tokens"] == 1024
        assert info["max_concurrent_requests"] == 16
        joined = "".join(server.log)
        assert "KV cache:" in joined and "adapter calc:" in joined and "max_num_seqs 8" in joined
    finally:
        assert server.stop(signal.SIGINT) == 0
    # vLLM's positional model and TGI's --model-id.
    for args in (["serve", BASE], ["serve", "--model-id", BASE]):
        proc = subprocess.Popen([BIN] + args + ["--host", "127.0.0.1", "--port", "0", "--cpu-threads", "1"],
                                stderr=subprocess.PIPE, text=True)
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            assert line, "exited during start-up"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_sigterm_lets_a_running_stream_finish():
    server = Server([])
    host, port = server.url.replace("http://", "").split(":")
    s = socket.create_connection((host, int(port)))
    body = json.dumps({"inputs": "def main():", "parameters": {"max_new_tokens": 64, "ignore_eos_token": True}})
    s.sendall(("POST /generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
               f"{len(body)}\r\n\r\n{body}").encode())
    buf = b""
    while b"data:" not in buf:
        buf += s.recv(4096)
    server.proc.send_signal(signal.SIGTERM)
    s.settimeout(120)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    assert server.proc.wait(timeout=120) == 0
    events = [line for line in buf.decode().split("\n") if line.startswith("data:")]
    final = json.loads(events[-1][5:])
    assert final["generated_text"] is not None and final["index"] == 64, final
    assert "SIGTERM" in "".join(server.log)
    # New connections are refused once it stopped.
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2)


def test_a_fatal_signal_leaves_a_report_in_the_log():
    """A crash is not silent: the signal and a backtrace of offsets that addr2line names, then the usual death."""
    server = Server([])
    server.proc.send_signal(signal.SIGSEGV)
    code = server.proc.wait(timeout=60)
    server._drain.join(timeout=10)
    log = "".join(server.log)
    if "AddressSanitizer" in log:  # a sanitized build keeps the sanitizer's own report (and exit code)
        assert code != 0 and "SEGV" in log, log
        return
    assert code == -signal.SIGSEGV, log
    assert "loraserve: fatal SIGSEGV (11) in thread" in log, log
    frames = [line.split()[1] for line in log.splitlines() if line.startswith("  #") and "shared library" not in line]
    assert frames, log
    if shutil.which("addr2line"):
        names = subprocess.run(["addr2line", "-f", "-C", "-e", BIN] + frames, capture_output=True, text=True,
                               check=True).stdout
        assert "on_fatal_signal" in names, names


def test_parent_pid_stops_the_server_with_its_parent(tmp_path):
    """--parent-pid: when the process that started the server ends, the server stops as on SIGTERM (how the Ray
    integration ties a replica's loraserve to it); a pid that is not the parent is refused at start-up."""
    log = tmp_path / "child.log"
    launcher = ("import os, subprocess, sys, time\n"
                f"p = subprocess.Popen([{BIN!r}, 'serve', '--model', {BASE!r}, '--host', '127.0.0.1', '--port', '0',"
                " '--cpu-threads', '1', '--parent-pid', str(os.getpid())],"
                f" stderr=open({str(log)!r}, 'w'))\n"
                "print(p.pid, flush=True)\n"
                f"while 'listening on' not in open({str(log)!r}).read():\n"
                "    time.sleep(0.05)\n")
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=120, check=True)
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and \
            open(f"/proc/{child}/stat").read().split(")")[-1].split()[0] != "Z":
        time.sleep(0.1)
    text = log.read_text()
    assert "SIGTERM" in text and "loraserve: stopped" in text, text
    out = subprocess.run([BIN, "serve", "--model", BASE, "--port", "0", "--parent-pid", "1"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "--parent-pid 1 is not this process's parent" in out.stderr, out.stderr
