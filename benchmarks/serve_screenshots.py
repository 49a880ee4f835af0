"""Screenshots of the web page for the README: docs/img/serve-1280.png and docs/img/serve-390.png.

    python benchmarks/serve_screenshots.py RUN_DIR [--user 196] [--query "..."]

Serves RUN_DIR on 127.0.0.1 (a free port), opens the page in headless Debian chromium (selenium),
asks for a user's recommendations with explanations (1280 px wide) and a plain-words request
(390 px wide), and saves the two screenshots. Read-only: nothing is written to the run folder.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--user", default="196")
    parser.add_argument("--query", default="a funny animated film for kids")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from gpt2rec.serve.app import create_app
    from gpt2rec.serve.service import load_service

    torch.set_num_threads(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(load_service(args.run_dir)), host="127.0.0.1", port=port))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    options = Options()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        driver.set_window_size(1280, 1500)
        driver.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-select option")) > 1)
        Select(driver.find_element(By.ID, "user-select")).select_by_value(str(args.user))
        driver.find_element(By.CSS_SELECTOR, "#user-form button").click()
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card .bars")) > 0)
        driver.save_screenshot(str(out / "serve-1280.png"))
        driver.set_window_size(390, 1800)
        box = driver.find_element(By.ID, "query")
        box.clear()
        box.send_keys(args.query)
        driver.find_element(By.CSS_SELECTOR, "#query-form button").click()
        WebDriverWait(driver, 120).until(lambda d: "“" in d.find_element(By.ID, "results-title").text)
        driver.execute_script("document.getElementById('results-title').scrollIntoView()")
        driver.save_screenshot(str(out / "serve-390.png"))
    finally:
        driver.quit()
        server.should_exit = True
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {out / 'serve-1280.png'} and {out / 'serve-390.png'}")


if __name__ == "__main__":
    main()
