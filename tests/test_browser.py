"""The page of `charrnn serve` in a real headless Chromium: Debian's `chromium`, driven by Playwright.

Skipped, with the reason in pytest's summary (`make test` prints it), when the browser or
Playwright is missing; CHARRNN_BROWSER_TEST=required (set by .ci/run) turns the skip into a failure.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

import charrnn
from charrnn import checkpoint as ckpt

from serve_util import port_of, request, running_server, wait_for

CHROMIUM = os.environ.get("CHARRNN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REQUIRED = os.environ.get("CHARRNN_BROWSER_TEST") == "required"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "JULIET.\nO Romeo, Romeo, wherefore art thou Romeo?\n"


def _missing():
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(bool(MISSING) and not REQUIRED, reason=f"browser test skipped: {MISSING}")


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.fail(f"browser test required but {MISSING}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids.
    page = browser.new_page(viewport={"width": 1100, "height": 800}, bypass_csp=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == []  # no JavaScript errors on the page


@pytest.fixture
def server(trained_dir, tmp_path):
    shutil.copytree(trained_dir, tmp_path / "run")
    with running_server(str(tmp_path / "run")) as s:
        yield s


def url(server, view):
    return f"http://127.0.0.1:{port_of(server)}/#{view}"


def count_spans(page, where):
    return page.eval_on_selector_all(f"#{where} span", "els => els.length")


def test_generate_streams_and_stop_stops_the_server(page, server):
    page.goto(url(server, "generate"))
    page.fill("#gen-length", "10000")
    page.fill("#gen-seed", "1")
    page.select_option("#gen-rate", "60")
    page.click("#gen-start")
    page.wait_for_function("document.querySelectorAll('#gen-out span').length > 10")
    seen = count_spans(page, "gen-out")
    page.wait_for_function(f"document.querySelectorAll('#gen-out span').length > {seen + 10}")  # still arriving
    backgrounds = page.eval_on_selector_all("#gen-out span", "els => els.map(e => e.style.background)")
    assert any(backgrounds)  # tinted by probability
    assert request(server, "GET", "/api/info")[1]["generating"] == 1
    page.click("#gen-stop")
    assert wait_for(lambda: request(server, "GET", "/api/info")[1]["generating"] == 0, timeout=10)
    stopped = count_spans(page, "gen-out")
    page.wait_for_timeout(500)
    assert count_spans(page, "gen-out") == stopped < 10000
    assert "seed 1" in page.inner_text("#gen-info")


def test_inspect_tints_hovers_and_shows_a_unit(page, server, trained_dir, tmp_path):
    reference = charrnn.evaluate(ckpt.load(os.path.join(trained_dir, "best.npz")), TEXT)
    page.goto(url(server, "inspect"))
    upload = tmp_path / "upload.txt"
    upload.write_text(TEXT, encoding="utf-8")
    page.set_input_files("#insp-file", str(upload))  # an uploaded file fills the text box
    page.wait_for_function(f"document.getElementById('insp-text').value.length === {len(TEXT)}")
    page.click("#insp-go")
    page.wait_for_function(f"document.querySelectorAll('#insp-out span').length === {len(TEXT)}")
    assert f"{reference.loss:.4f} nats/char" in page.inner_text("#insp-summary")
    surprise = page.eval_on_selector_all("#insp-out span", "els => els.map(e => e.style.background)")
    page.hover("#insp-out span >> nth=3")  # the I of JULIET
    page.wait_for_selector("#tooltip", state="visible")
    tip = page.inner_text("#tooltip")
    assert tip.startswith("I:") and "nats" in tip
    assert page.eval_on_selector_all("#tooltip tr", "rows => rows.length") == 5
    page.click("#insp-units button >> nth=0")
    page.wait_for_selector("#insp-units button.active")
    unit = page.eval_on_selector_all("#insp-out span", "els => els.map(e => e.style.background)")
    assert unit != surprise and all(unit)
    page.hover("#insp-out span >> nth=10")
    assert "unit " in page.inner_text("#tooltip")


def test_training_view_follows_a_run(page, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with running_server(str(run)) as server:
        page.goto(url(server, "training"))
        page.wait_for_function("document.getElementById('train-status').textContent.includes('no metrics.jsonl')")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        train = subprocess.Popen(
            [sys.executable, "-m", "charrnn", "train", os.path.join(REPO, "data", "shakespeare.txt"), "--out", str(run),
             "--hidden-size", "32", "--batch-size", "8", "--seq-len", "32", "--max-time", "60", "--log-every", "5",
             "--eval-every", "40", "--save-every", "40", "--quiet"], env=env, stderr=subprocess.PIPE)
        try:
            page.wait_for_selector("#train-curve", state="attached", timeout=60_000)
            points = int(page.get_attribute("#train-curve", "data-points"))
            page.wait_for_function(
                f"Number(document.getElementById('train-curve').dataset.points) > {points}", timeout=60_000)
            page.wait_for_selector("#val-curve", state="attached", timeout=60_000)
            page.wait_for_function("document.getElementById('train-sample-info').textContent.includes('step')",
                                   timeout=60_000)
            assert len(page.inner_text("#train-sample")) > 0
        finally:
            train.send_signal(signal.SIGINT)
            train.wait(timeout=30)
