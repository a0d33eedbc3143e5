"""End to end: `xaiquest dashboard` on a smoke run, driven in headless Chromium (Debian's package) by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("playwright", reason="playwright is a dev dependency (make install)")
from xaiquest.dashboard.browser import (
    browser_page,
    chromium_executable,
    explore,
    free_port,
    report_table,
    screenshot,
    upload,
    wait_until_serving,
)

pytestmark = pytest.mark.skipif(chromium_executable() is None, reason="no chromium on PATH (.ci/run installs Debian's)")


@pytest.fixture(scope="module")
def served(tmp_path_factory, smoke_run):
    """The real CLI serving the smoke run; yields (url, process) and stops it afterwards."""
    run = smoke_run
    port = free_port()
    log = (tmp_path_factory.getbasetemp() / "dashboard_server.log").open("w")
    command = [str(Path(sys.executable).with_name("xaiquest")), "dashboard", str(run), "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/", process
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_two_models_and_two_methods_show_four_heatmaps_and_a_screenshot_is_saved(served, tmp_path, smoke_models):
    url, _ = served
    started = time.perf_counter()
    with browser_page(url) as page:
        captions = explore(page, smoke_models, ["gradcam", "eigencam"], image=1, stress=("patch", 3))
        shot = screenshot(page, tmp_path / "dashboard.png")
        assert page.locator("#prediction-a").inner_text().strip()
        assert "eigencam" in page.locator("#quality").inner_text()
        assert "resnet_small" in report_table(page, "fastnet")  # the run's comparison table
    print(f"screenshot: {shot} (browser session {time.perf_counter() - started:.1f} s)")
    assert [c.split(" · ")[0] for c in captions] == ["gradcam", "eigencam"] * 2
    assert [c.split(" · ")[1].split(":")[0] for c in captions] == [smoke_models[0]] * 2 + [smoke_models[1]] * 2
    assert all("TKO" in c for c in captions)  # a patch stress adds the patch's top-K overlap
    assert shot.stat().st_size > 20_000
    with Image.open(shot) as picture:
        assert picture.width >= 1000 and picture.height >= 800


def test_a_bad_upload_is_reported_in_the_page_and_the_server_keeps_serving(served, tmp_path, smoke_models):
    url, process = served
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    picture = tmp_path / "red.png"
    Image.new("RGBA", (64, 48), (200, 30, 30, 255)).save(picture)
    with browser_page(url) as page:
        assert "not an image" in upload(page, text)
        assert "added upload red.png" in upload(page, picture)
        captions = explore(page, smoke_models[:1], ["layercam"], image=0)  # the upload heads the image list
    assert process.poll() is None
    assert len(captions) == 1
