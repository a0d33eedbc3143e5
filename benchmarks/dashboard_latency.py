"""Seconds one dashboard interaction takes per CAM method, uncached and cached, on a run's model.

    python benchmarks/dashboard_latency.py runs/quick                       # first model, CAM family
    python benchmarks/dashboard_latency.py runs/quick --model vgg_small__baseline__s0 --images 5

An interaction is what the Explain button runs for one map: the prediction, the explanation with
its deletion/insertion curves (``Dashboard.explain``) and the coloured overlay; the browser
round trip is not included. One warm-up interaction loads the model first, as the first click
of a session does. "uncached" is the median over ``--images`` test images seen for the first
time; "cached" repeats the same interactions (the explanation cache answers).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from xaiquest.dashboard.session import SERVING_THREADS, Dashboard, Stress, open_run
from xaiquest.dashboard.views import overlay
from xaiquest.explainers import EXPLAINERS


def interaction(dashboard: Dashboard, model: str, image_id: str, method: str) -> float:
    """Seconds for one map as the page computes it: predict, explain (+ quality), overlay."""
    started = time.perf_counter()
    dashboard.predict(model, image_id, Stress())
    explanation = dashboard.explain(model, image_id, Stress(), method)
    overlay(dashboard.image(image_id), explanation.heatmap)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--model", help="a model id of the run (default: its first)")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--threads", type=int, default=SERVING_THREADS, help="torch threads (the server uses %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dashboard = Dashboard(open_run(args.run_dir))
    model = args.model or dashboard.model_ids()[0]
    methods = [name for name in EXPLAINERS.names() if EXPLAINERS.get(name).family == "cam"]
    started = time.perf_counter()
    interaction(dashboard, model, "test:0", "gradcam")
    print(f"{model} on {args.run_dir}, {torch.get_num_threads()} threads; warm-up (model load): "
          f"{time.perf_counter() - started:.2f} s")
    rows = []
    for method in methods:
        images = [f"test:{i + 1}" for i in range(args.images)]
        uncached = [interaction(dashboard, model, image, method) for image in images]
        cached = [interaction(dashboard, model, image, method) for image in images]
        rows.append({"method": method, "uncached_s": statistics.median(uncached), "uncached_max_s": max(uncached),
                     "cached_s": statistics.median(cached)})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
