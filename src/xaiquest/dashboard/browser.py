"""Drive a served dashboard in headless Chromium: the end-to-end test and the docs screenshot share this.

Playwright's own browser download needs the internet, so the system's Chromium (Debian's
``chromium`` package) is launched instead. Selectors rely on the element ids ``app.py`` sets.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

VIEWPORT = {"width": 1400, "height": 1000}
EXPLAIN_TIMEOUT_MS = 120_000
"""Generous: the first explanation loads the model and warms oneDNN, on a CI machine that may be busy."""


def chromium_executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    """A localhost port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, timeout_s: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; a server that never comes up is a clear TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no dashboard answered at {url} within {timeout_s:.0f} s")


@contextmanager
def browser_page(url: str, ready: str = "#model-a input") -> Iterator[Page]:
    """A headless Chromium page with the dashboard loaded (``ready``: an element of the page, a run's by default)."""
    executable = chromium_executable()
    if executable is None:
        raise FileNotFoundError("no chromium on PATH; install Debian's chromium package")
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.locator(ready).wait_for()
            yield page
        finally:
            browser.close()


def choose(page: Page, dropdown: str, option: str | int) -> None:
    """Pick an option of a Gradio dropdown by its exact label, or by position."""
    field = page.locator(f"{dropdown} input")
    field.click()
    listbox = page.locator(f"#{field.get_attribute('aria-controls')}")
    target = listbox.get_by_role("option").nth(option) if isinstance(option, int) else \
        listbox.get_by_role("option", name=option, exact=True)
    target.click()


def tick_only(page: Page, group: str, names: Sequence[str]) -> None:
    """Leave exactly ``names`` ticked in a Gradio checkbox group."""
    for box in page.locator(f"{group} input[type=checkbox]").all():
        box.set_checked(box.get_attribute("name") in names)


def explore(page: Page, models: Sequence[str], methods: Sequence[str], image: int = 0,
            stress: tuple[str, int] | None = None, image_class: str | None = None) -> list[str]:
    """Select models (one, or two side by side), an image (the n-th listed, of a class), explainers
    and a stress; explain; return the captions."""
    choose(page, "#model-a", models[0])
    if len(models) > 1:
        choose(page, "#model-b", models[1])
    if image_class is not None:
        choose(page, "#class", image_class)
        expect(page.locator("#image input")).to_have_value(re.compile(f" {image_class} → "), timeout=EXPLAIN_TIMEOUT_MS)
    pick(page, methods, image)
    if stress is not None:  # after the methods: the level field re-explains with what is ticked
        choose(page, "#stress", stress[0])
        page.locator("#level input[type=number]").fill(str(stress[1]))
    return explain_shown(page, len(models) * len(methods))


def pick(page: Page, methods: Sequence[str], image: int = 0) -> None:
    """Select the n-th listed image and tick exactly ``methods``."""
    choose(page, "#image", image)
    tick_only(page, "#methods", methods)


def explain_shown(page: Page, maps: int) -> list[str]:
    """Click Explain and return the heatmap captions once ``maps`` heatmaps are shown."""
    page.locator("#explain").click()
    expect(page.locator("#heatmaps img")).to_have_count(maps, timeout=EXPLAIN_TIMEOUT_MS)
    return page.locator("#heatmaps .caption-label").all_inner_texts()


def upload(page: Page, file: Path) -> str:
    """Upload ``file`` and return the page's message once it names the file (accepted or refused)."""
    page.locator("#upload input[type=file]").set_input_files(str(file))
    message = page.locator("#message")
    expect(message).to_contain_text(file.name, timeout=EXPLAIN_TIMEOUT_MS)
    return message.inner_text()


def report_table(page: Page, expected: str) -> str:
    """Open the Report tab and return the shown table's text once it contains ``expected``."""
    page.get_by_role("tab", name="Report").click()
    view = page.locator("#report-view")
    expect(view).to_contain_text(expected, timeout=EXPLAIN_TIMEOUT_MS)
    return view.inner_text()


def screenshot(page: Page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
