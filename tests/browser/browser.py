"""Headless Chromium on a running ComfyUI host, for the front-end extension tests.

Playwright cannot download its own browsers here: it drives Debian's ``/usr/bin/chromium``
(``apt-get install -y chromium``; ``pip install playwright`` into the venv, never ``playwright install``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = os.environ.get("EMO_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORT = {"width": 1600, "height": 1000}
APP_READY = "() => !!(window.app && window.app.graph && window.LiteGraph && window.app.canvas)"
EXTENSION_READY = "() => app.extensions?.some?.((e) => e.name === 'emo-nodes.va_pad')"


def chromium_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


def set_setting(url: str, key: str, value) -> None:
    """Write one user setting through the server (before the page loads, so the UI starts with it)."""
    req = urllib.request.Request(f"{url.rstrip('/')}/api/settings/{key}", data=json.dumps(value).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


class Page:
    """A loaded ComfyUI page plus every console error and page error it logged."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def our_errors(self) -> list[str]:
        """Console errors that mention this plugin's extension files."""
        return [e for e in self.errors if "emo-nodes" in e or "va_pad" in e or "emotion_target" in e]


@contextlib.contextmanager
def launch() -> Iterator:
    """One headless Chromium (a playwright Browser); open pages on it with open_page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser, url: str, *, vue_nodes: bool = False, timeout_ms: int = 60_000) -> Iterator[Page]:
    """A fresh page on ``url`` with the app ready, the templates dialog off and Nodes 2.0 on or off."""
    set_setting(url, "Comfy.TutorialCompleted", True)
    set_setting(url, "Comfy.VueNodes.Enabled", vue_nodes)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = Page(context.new_page())
        page.page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        page.page.wait_for_function(APP_READY, timeout=timeout_ms)
        page.page.wait_for_function(EXTENSION_READY, timeout=timeout_ms)
        page.page.keyboard.press("Escape")  # any dialog left open
        yield page
    finally:
        context.close()
        if vue_nodes:
            set_setting(url, "Comfy.VueNodes.Enabled", False)


@contextlib.contextmanager
def open_app(url: str, *, vue_nodes: bool = False) -> Iterator[Page]:
    """launch + open_page in one, for scripts."""
    with launch() as browser, open_page(browser, url, vue_nodes=vue_nodes) as page:
        yield page
