"""The README's pictures of `charrnn serve`: one screenshot per view, in headless Chromium.

    .venv/bin/python bench/serve_screenshots.py [DIR] [--out docs]

Serves DIR (default checkpoints, as `make train` leaves it) on an ephemeral port and saves
docs/serve-generate.png, serve-inspect.png and serve-training.png. Needs Debian's chromium
and Playwright (pip install 'charrnn[browser]').
"""
from __future__ import annotations

import argparse
import os
import threading

from charrnn.serve import make_server

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", nargs="?", default="checkpoints")
    ap.add_argument("--out", default=os.path.join(REPO, "docs"))
    args = ap.parse_args()
    server = make_server(args.directory, port=0, log=lambda line: None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with open(os.path.join(REPO, "data", "shakespeare.txt"), encoding="utf-8") as fh:
        passage = fh.read(60_000)[52_000:52_700]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 820}, bypass_csp=True)
        page.goto(url + "#generate")
        page.fill("#gen-prime", "ROMEO.\n")
        page.fill("#gen-seed", "7")
        page.fill("#gen-length", "700")
        page.select_option("#gen-rate", "0")
        page.click("#gen-start")
        page.wait_for_function("document.getElementById('gen-info').textContent.includes('done')")
        shot(page, args.out, "generate")
        page.goto(url + "#inspect")
        page.fill("#insp-text", passage)
        page.click("#insp-go")
        page.wait_for_selector("#insp-units button")
        page.hover("#insp-out span >> nth=120")
        page.wait_for_selector("#tooltip", state="visible")
        shot(page, args.out, "inspect")
        page.goto(url + "#training")
        page.wait_for_selector("#val-curve", state="attached")
        page.wait_for_function("document.getElementById('train-sample').textContent.length > 0")
        shot(page, args.out, "training")
        browser.close()
    server.shutdown()


def shot(page, out, view):
    path = os.path.join(out, f"serve-{view}.png")
    page.screenshot(path=path)
    print("wrote", path)


if __name__ == "__main__":
    main()
