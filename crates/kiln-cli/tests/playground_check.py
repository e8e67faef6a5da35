"""Drives kiln serve's playground page in headless Chromium (Playwright), for playground_cli.rs.

python3 playground_check.py OPEN_URL KEYED_URL KEY SCREENSHOT_DIR
OPEN_URL: a server without an API key and with --repo; KEYED_URL: the same with --api-key-file
holding KEY. Prints one JSON object with what the page showed; the Rust test checks it.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

open_url, keyed_url, key, shots = sys.argv[1:5]
chromium = os.environ.get("KILN_CHROMIUM", "/usr/bin/chromium")
seen = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP (no
    # eval) would block. Nothing may load from anywhere but the server itself.
    foreign = []
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(open_url) else None)
    page.goto(open_url)
    page.wait_for_selector("#app:not([hidden])", timeout=30000)
    page.wait_for_function("document.querySelectorAll('#file option').length > 1", timeout=30000)
    seen["files"] = page.eval_on_selector_all("#file option", "os => os.map(o => o.value).filter(v => v)")
    page.select_option("#file", "main.py")
    page.wait_for_function("document.getElementById('prefix').value.includes('import')", timeout=30000)
    page.fill("#line", "6")
    page.dispatch_event("#line", "change")
    page.wait_for_function("!document.getElementById('suffix').value.includes('import app.a')", timeout=30000)
    page.fill("#n_predict", "12")
    page.click("#run")
    page.wait_for_function("window.kilnPlayground.done", timeout=120000)
    seen["pieces"] = page.evaluate("window.kilnPlayground.pieces")
    seen["output"] = page.inner_text("#output")
    seen["context"] = page.eval_on_selector_all("#context li.context-file", "ls => ls.map(l => l.textContent)")
    seen["prompt_tokens"] = page.inner_text("#s-prompt")
    seen["rate"] = page.inner_text("#s-rate")
    seen["error"] = page.inner_text("#error")
    page.wait_for_function("document.querySelector('#metrics').textContent.includes('tokens generated')", timeout=30000)
    seen["metrics"] = page.inner_text("#metrics")
    shot = os.path.join(shots, "playground.png")
    page.screenshot(path=shot, full_page=True)
    seen["screenshot"] = shot
    seen["foreign_requests"] = foreign

    # The keyed server: the page shows the 401 form and no data until the right key is given.
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(keyed_url)
    page.wait_for_selector("#key-panel:not([hidden])", timeout=30000)
    seen["locked_app_hidden"] = page.is_hidden("#app")
    seen["locked_heading"] = page.inner_text("#key-panel h2")
    seen["locked_files"] = page.eval_on_selector_all("#file option", "os => os.filter(o => o.value).length")
    page.fill("#key", "wrong-key")
    page.click("#key-submit")
    page.wait_for_function("document.getElementById('key-msg').textContent.includes('invalid')", timeout=30000)
    seen["wrong_key_message"] = page.inner_text("#key-msg")
    page.fill("#key", key)
    page.click("#key-submit")
    page.wait_for_selector("#app:not([hidden])", timeout=30000)
    page.wait_for_function("document.querySelectorAll('#file option').length > 1", timeout=30000)
    seen["unlocked_files"] = page.eval_on_selector_all("#file option", "os => os.filter(o => o.value).length")
    shot = os.path.join(shots, "playground-unlocked.png")
    page.screenshot(path=shot, full_page=True)
    browser.close()
print(json.dumps(seen))
