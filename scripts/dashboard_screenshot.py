"""Serve a run's dashboard, drive it in headless Chromium and save a full-page screenshot.

    python scripts/dashboard_screenshot.py runs/extended docs/img/dashboard.png \
        --models fastnet__baseline__s0 fastnet__patch__s0 --class cat --stress patch 3
    python scripts/dashboard_screenshot.py runs/quick shot.png --methods gradcam scorecam --stress fog 3

Uses the same browser driver as the end-to-end test (``xaiquest.dashboard.browser``), so the
picture in the docs is what the test checks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xaiquest.dashboard.app import serve
from xaiquest.dashboard.browser import (
    browser_page,
    explore,
    free_port,
    screenshot,
    wait_until_serving,
)
from xaiquest.dashboard.session import Dashboard, open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", nargs="+", help="one or two model ids (default: the run's first two)")
    parser.add_argument("--methods", nargs="+", default=["gradcam", "layercam", "scorecam"])
    parser.add_argument("--class", dest="image_class", help="list only this class's test images")
    parser.add_argument("--image", type=int, default=0, help="position in the image list")
    parser.add_argument("--stress", nargs=2, metavar=("KIND", "LEVEL"), help="e.g. fog 3, patch 3")
    args = parser.parse_args()
    dashboard = Dashboard(open_run(args.run_dir))
    models = args.models or dashboard.model_ids()[:2]
    port = free_port()
    page = serve(dashboard, port, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(url)
        with browser_page(url) as browser:
            stress = (args.stress[0], int(args.stress[1])) if args.stress else None
            explore(browser, models, args.methods, image=args.image, stress=stress, image_class=args.image_class)
            print(f"wrote {screenshot(browser, args.out)}")
    finally:
        page.close()


if __name__ == "__main__":
    main()
