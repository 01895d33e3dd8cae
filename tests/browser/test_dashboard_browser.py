"""A real browser on the live embedded demo: log in, watch the numbers move, the charts fill,
the rankings show titles, and an event's lineage list every store. Saves a screenshot under
``test-artifacts/`` (gitignored)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from .provision import BrowserUnavailable, ensure_chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-test-operator-token"
T = TypeVar("T")

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float = 45.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    env = {**os.environ, "POLYSTREAM_API__OPERATOR_TOKEN": TOKEN, "COLUMNS": "120"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "polystream", "demo", "--rate", "300", "--duration", "120",
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the demo's API", lambda: httpx.get(f"{base}/healthz", timeout=1)
                 .status_code == 200, timeout_s=60)
        yield base, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    try:
        chromium = ensure_chromium()
    except BrowserUnavailable as exc:
        pytest.fail(str(exc))
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium.browser)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(chromium.driver)))
    try:
        yield driver
    finally:
        driver.quit()


def number(driver: WebDriver, element_id: str) -> float:
    return float(driver.find_element(By.ID, element_id).text.replace(",", "") or 0)


def test_dashboard_shows_the_platform_live(demo: tuple[str, Path], browser: WebDriver) -> None:
    base, log = demo
    browser.get(f"{base}/dashboard")
    login = browser.find_element(By.ID, "login")
    assert login.is_displayed(), "without a token the page asks for one"
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    login.submit()
    wait_for("the feed to connect",
             lambda: browser.find_element(By.ID, "status").text == "live")

    first = wait_for("events to be counted", lambda: number(browser, "c-produced"))
    time.sleep(3)
    assert number(browser, "c-produced") > first, "the produced counter does not move"

    canvas = browser.find_element(By.ID, "chart-produced")
    wait_for("the produced chart to have points",
             lambda: int(canvas.get_attribute("data-points") or 0) >= 3)
    assert int(browser.find_element(By.ID, "chart-consumed").get_attribute("data-points")
               or 0) >= 3

    titles = wait_for("a ranking with titles", lambda: [
        e.text for e in browser.find_elements(By.CSS_SELECTOR, "#trending li .title")
        if e.text.strip()])
    assert all(" " in t or t.isalpha() for t in titles), titles

    stores = wait_for("the store cards", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                                        "#stores .store.ok"))
    assert len(stores) == 4

    link = wait_for("a recent event", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                                     "#recent a"))[0]
    browser.execute_script("document.getElementById('recent').dataset.frozen = '1'")
    link.click()
    rows = wait_for("the lineage", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                                  "#lineage tr.step"))
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [
        "postgres", "mongo", "redis", "audit"]
    assert "stored" in [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    assert "Dashboard:" in log.read_text()
