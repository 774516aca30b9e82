"""The page at GET / (web/) driven in headless Chromium (Debian's chromium and chromium-driver, selenium from PyPI)
against a real `loraserve serve` with an API key, the four demo adapters and 200 generated ones under
--adapter-dir (tools/adapters/make_adapters.py). The playground compares the base model with adapters, each
column streaming; every column must show exactly the text the API gives for the same request. The dashboard
must list every adapter with its tier, and its counters must move after the comparisons. Errors (an unknown
adapter, the server stopped) must show the server's message in the column, never a blank one. Screenshots of
both views at laptop and phone widths go to LS_ARTIFACTS_DIR (default build/test-artifacts)/web, not committed.

Tests run in file order and share one server and one browser (the last one stops the server)."""
import base64
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import BASE, ROOT, TASKS, Server, all_adapter_args, chatml

KEY = "pl4yground-key"
GENERATED = 200
ARTIFACTS = os.path.join(os.environ.get("LS_ARTIFACTS_DIR", os.path.join(ROOT, "build", "test-artifacts")), "web")
LAPTOP = (1366, 900)
PHONE = (390, 844)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

counters_before = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapter-root")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "adapters", "make_adapters.py"), "--base", BASE,
                    "--out", str(root), "--count", str(GENERATED), "--ranks", "4,8,16", "--modules", "mixed"],
                   check=True, capture_output=True)
    s = Server(all_adapter_args() + ["--adapter-dir", str(root), "--api-key", KEY])
    yield s
    assert s.stop() == 0, "".join(s.log)


@pytest.fixture(scope="module")
def browser(server):
    assert os.path.exists(CHROMEDRIVER), "install Debian's chromium-driver (scripts/install-deps.sh)"
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", f"--window-size={LAPTOP[0]},{LAPTOP[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield driver
    driver.quit()


def api(server, path, body=None):
    headers = {"Authorization": "Bearer " + KEY}
    if body is None:
        return requests.get(server.url + path, headers=headers, timeout=60)
    return requests.post(server.url + path, json=body, headers=headers, timeout=300)


def wait(driver, condition, timeout=60, message=""):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        logs = "\n".join(str(e) for e in driver.get_log("browser"))
        raise AssertionError(f"{message}\nbrowser console:\n{logs}") from None


def screenshot(driver, name, size):
    """A full-page PNG at the given viewport size (device metrics emulation, so phone widths are exact)."""
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    time.sleep(1.2)  # a dashboard poll and a redraw at the new width
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    full = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(full["height"], 6000), "scale": 1}})
    with open(os.path.join(ARTIFACTS, name), "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the {width}px screen"


def show(driver, view):
    driver.execute_script("location.hash = arguments[0]", view)
    wait(driver, lambda d: d.find_element(By.ID, "view-" + view).is_displayed(), 10, "view " + view)


def choose(driver, adapters, base=True, mode="chat"):
    """Sets the playground's columns: the base model or not, then up to four adapter names."""
    show(driver, "playground")
    checkbox = driver.find_element(By.ID, "use-base")
    if checkbox.is_selected() != base:
        checkbox.click()
    for i in range(4):
        slot = driver.find_element(By.ID, f"adapter-{i + 1}")
        slot.clear()
        if i < len(adapters):
            slot.send_keys(adapters[i])
    driver.find_element(By.CSS_SELECTOR, f"input[name=mode][value={mode}]").click()


def set_prompt(driver, text):
    box = driver.find_element(By.ID, "prompt")
    driver.execute_script("arguments[0].value = arguments[1]", box, text)


def run_and_wait(driver, expected_columns, keyboard=False, timeout=180):
    if keyboard:
        driver.find_element(By.ID, "prompt").send_keys(Keys.CONTROL, Keys.ENTER)
    else:
        driver.find_element(By.ID, "run").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#columns .col")) == expected_columns, 10,
         "columns did not appear")
    wait(driver, lambda d: all(c.get_attribute("data-state") in ("done", "error", "stopped")
                               for c in d.find_elements(By.CSS_SELECTOR, "#columns .col")), timeout,
         "the streams did not finish")
    return columns(driver)


def columns(driver):
    """Each column as {model, state, text, error, meta, tier}."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#columns .col')].map(c => ({
          model: c.dataset.model, state: c.dataset.state, tier: c.dataset.tier,
          text: c.querySelector('.out').hidden ? '' : c.querySelector('.out').textContent,
          error: c.querySelector('.err').hidden ? '' : c.querySelector('.err').textContent,
          meta: c.querySelector('.meta').textContent}));""")


def api_answer(server, model, prompt, chat, max_tokens=32):
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0, "top_p": 1}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    r = api(server, "/v1/chat/completions" if chat else "/v1/completions", body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    return choice["message"]["content"] if chat else choice["text"]


def table_rows(driver):
    """The dashboard's adapter table as {name: {tier, rank, requests, tokens, last_used}}."""
    return driver.execute_script("""
        const out = {};
        for (const tr of document.querySelectorAll('#adapters tbody tr')) {
          const c = tr.children;
          out[tr.dataset.name] = {tier: c[1].textContent, rank: c[2].textContent, size: c[3].textContent,
                                  requests: +c[4].textContent, tokens: +c[5].textContent, last_used: c[7].textContent};
        }
        return out;""")


def test_page_asks_for_the_key_then_lists_the_models(server, browser):
    r = requests.get(server.url + "/", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert requests.get(server.url + "/v1/stats", timeout=30).status_code == 401
    browser.get(server.url + "/")
    wait(browser, lambda d: d.find_element(By.ID, "key-form").is_displayed(), 30, "no API key prompt")
    key = browser.find_element(By.ID, "api-key")
    key.send_keys("wrong-key", Keys.ENTER)
    wait(browser, lambda d: "refused" in d.find_element(By.ID, "key-error").text, 30, "a wrong key was not refused")
    key.clear()
    key.send_keys(KEY, Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 30,
         "the model list did not load")
    assert not browser.find_element(By.ID, "key-form").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('loraserve.apiKey')") == KEY
    assert [o.text for o in Select(browser.find_element(By.ID, "base-model")).options] == ["demo"]
    names = browser.execute_script("return [...document.querySelectorAll('#adapter-names option')].map(o => o.value)")
    assert {"calc", "reverse", "sql", "upper"} <= set(names) and len(names) == 4 + GENERATED


def test_dashboard_lists_every_adapter_with_its_tier(server, browser):
    show(browser, "dashboard")
    wait(browser, lambda d: len(table_rows(d)) == 1 + 4 + GENERATED, 30, "the adapter table is incomplete")
    rows = table_rows(browser)
    listed = {a["name"]: a for a in api(server, "/v1/adapters").json()["data"]}
    for name in ("calc", "reverse", "sql", "upper"):
        assert rows[name]["tier"] == listed[name]["tier"] and rows[name]["tier"] in ("host", "device"), rows[name]
        assert rows[name]["rank"] == str(listed[name]["rank"])
        assert rows[name]["size"].endswith("MiB") or rows[name]["size"].endswith("KiB")
    assert sum(1 for n, r in rows.items() if n.startswith("lora") and r["tier"] == "disk") == GENERATED
    assert rows["__base_model__"]["tier"] == "base"
    counters_before.update({n: rows[n] for n in ("__base_model__", "calc", "upper")})
    assert browser.find_element(By.ID, "d-running").text == "0"
    assert "of" in browser.find_element(By.ID, "d-kv-sub").text
    filt = browser.find_element(By.ID, "filter")
    filt.send_keys("lora01")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#adapters tbody tr")) == 100, 10, "filter")
    filt.clear()
    filt.send_keys(Keys.BACKSPACE)


@pytest.mark.parametrize("task", ["calc", "upper"])
def test_compare_base_calc_upper(server, browser, task):
    choose(browser, ["calc", "upper"])
    browser.find_element(By.ID, "prompt").clear()
    browser.find_element(By.ID, "prompt").send_keys(TASKS[task])  # typed, and run from the keyboard
    cols = run_and_wait(browser, 3, keyboard=True)
    assert [c["model"] for c in cols] == ["demo", "calc", "upper"]
    for c in cols:
        assert c["state"] == "done", c
        assert c["text"] == api_answer(server, c["model"], TASKS[task], chat=True), c
        # tok/s needs two token arrivals apart in time; a short answer can arrive in one chunk (the server
        # coalesces a stream's pending tokens), and then the column shows its token count alone.
        assert "TTFT" in c["meta"] and re.search(r"\d+ tokens?", c["meta"]), c
    by_model = {c["model"]: c["text"] for c in cols}
    assert by_model[task] != by_model["demo"], "the adapter's answer is the base model's"
    if task == "calc":
        assert "512" in by_model["calc"], by_model  # 127 + 385
    else:
        assert "THE QUICK KING EATS MILK" in by_model["upper"], by_model
    if task == "calc":
        screenshot(browser, "playground-laptop.png", LAPTOP)


def test_five_columns_stream_at_once_in_completion_mode(server, browser):
    choose(browser, ["calc", "reverse", "sql", "upper"], mode="completion")
    prompt = chatml(TASKS["reverse"])
    set_prompt(browser, prompt)
    cols = run_and_wait(browser, 5)
    assert [c["model"] for c in cols] == ["demo", "calc", "reverse", "sql", "upper"]
    for c in cols:
        assert c["state"] == "done", c
        assert c["text"] == api_answer(server, c["model"], prompt, chat=False), c
    screenshot(browser, "playground-phone.png", PHONE)


def test_an_adapter_on_disk_loads_on_first_use(server, browser):
    choose(browser, ["lora0042"], base=False)
    set_prompt(browser, TASKS["sql"])
    [col] = run_and_wait(browser, 1)
    assert col["state"] == "done", col
    assert "loaded on first use" in col["meta"], col
    assert col["text"] == api_answer(server, "lora0042", TASKS["sql"], chat=True)
    tier = {a["name"]: a["tier"] for a in api(server, "/v1/adapters").json()["data"]}["lora0042"]
    assert tier in ("host", "device")


def test_dashboard_counters_move_after_the_comparisons(server, browser):
    show(browser, "dashboard")

    def moved(d):
        rows = table_rows(d)
        return all(rows[n]["requests"] >= counters_before[n]["requests"] + 2 and
                   rows[n]["tokens"] > counters_before[n]["tokens"] for n in ("__base_model__", "calc", "upper")) \
            and rows["lora0042"]["requests"] >= 2  # the page's request and the API's
    wait(browser, moved, 30, "the dashboard's counters did not move")
    rows = table_rows(browser)
    assert rows["calc"]["last_used"].endswith("ago") or rows["calc"]["last_used"] == "just now", rows["calc"]
    assert rows["lora0042"]["tier"] in ("host", "device") and rows["lora0042"]["rank"] != "–"
    stats = api(server, "/v1/stats").json()
    tokens = {a["name"]: a["generation_tokens"] for a in stats["adapters"]}
    assert rows["calc"]["tokens"] == tokens["calc"]
    series = browser.execute_script("return [...document.querySelectorAll('#chart polyline')].map(p => p.dataset.series)")
    assert {"calc", "upper", "demo (base)"} <= set(series), series
    screenshot(browser, "dashboard-laptop.png", LAPTOP)
    screenshot(browser, "dashboard-phone.png", PHONE)
    # Everything so far ran without a script error or a Content-Security-Policy refusal (only the 401s of the key
    # prompt are expected in the console).
    problems = [e["message"] for e in browser.get_log("browser")
                if "status of 401" not in e["message"] and e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems


def test_errors_show_the_servers_message(server, browser):
    choose(browser, ["calc", "no-such-adapter"], base=False)
    set_prompt(browser, TASKS["calc"])
    cols = run_and_wait(browser, 2)
    ok, bad = cols
    assert ok["state"] == "done" and ok["text"], ok
    r = api(server, "/v1/chat/completions", {"model": "no-such-adapter", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    assert bad["state"] == "error" and bad["error"] == "404 " + r.json()["error"]["message"], bad
    screenshot(browser, "playground-unknown-adapter-phone.png", PHONE)

    assert server.stop() == 0, "".join(server.log)
    cols = run_and_wait(browser, 2)
    for c in cols:
        assert c["state"] == "error" and "cannot be reached" in c["error"], c
    show(browser, "dashboard")
    wait(browser, lambda d: "cannot be reached" in d.find_element(By.ID, "d-error").text, 10,
         "the dashboard does not say that the server is gone")
    show(browser, "playground")
    screenshot(browser, "playground-errors-laptop.png", LAPTOP)
