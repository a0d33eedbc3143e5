"""End to end: `xaiquest dashboard` on a smoke run, driven in headless Chromium (Debian's package) by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

pytest.importorskip("playwright", reason="playwright is a dev dependency (make install)")
from xaiquest.dashboard.browser import (
    browser_page,
    chromium_executable,
    explain_shown,
    explore,
    free_port,
    pick,
    report_table,
    screenshot,
    upload,
    wait_until_serving,
)

pytestmark = pytest.mark.skipif(chromium_executable() is None, reason="no chromium on PATH (.ci/run installs Debian's)")


@contextmanager
def _serving(arguments: list[str], log_file: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The real CLI's ``xaiquest dashboard ARGUMENTS`` on a free port; yields (url, process) and stops it afterwards."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("xaiquest")), "dashboard", *arguments, "--port", str(port)]
    with log_file.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/")
            yield f"http://127.0.0.1:{port}/", process
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory, smoke_run):
    """The smoke run's dashboard."""
    with _serving([str(smoke_run)], tmp_path_factory.getbasetemp() / "dashboard_server.log") as server:
        yield server


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


def test_one_model_without_a_run_explains_a_folder_image_in_the_page(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "net.pt")
    (tmp_path / "classes.txt").write_text("cat\ndog\nowl\n")
    (tmp_path / "images").mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "images" / "noise.png")
    arguments = ["--model", "tv:resnet18", "--weights", str(tmp_path / "net.pt"), "--classes", str(tmp_path / "classes.txt"),
                 "--image-size", "64", "--images", str(tmp_path / "images")]
    with _serving(arguments, tmp_path / "server.log") as (url, process), browser_page(url, ready="#image input") as page:
        pick(page, ["gradcam", "saliency"])
        captions = explain_shown(page, 2)
        top = page.locator("#prediction-a").inner_text()
        quality = page.locator("#quality").inner_text()
    assert [c.split(" · ")[0] for c in captions] == ["gradcam", "saliency"]
    assert all(" · tv:resnet18: del " in c and " ins " in c for c in captions)
    assert any(name in top for name in ("cat", "dog", "owl")) and "saliency" in quality
