"""Seconds per image of every explanation method, one batched ``explain`` call per model and method.

    python benchmarks/explainer_speed.py                          # fastnet + resnet_small, 16 images, 2 threads
    python benchmarks/explainer_speed.py --models vgg_small --images 32

Images are smooth random 32x32 inputs and models are untrained: a method's cost depends on the
architecture, the batch and its options (defaults here), not on the weights or the image content.
Times are the best of ``--repeats`` calls after a warm-up call, in seconds per image.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
import torch.nn.functional as F

from xaiquest.explainers import describe_explainers, explain
from xaiquest.models import build_model


def seconds_per_image(method: str, model: torch.nn.Module, images: torch.Tensor, repeats: int) -> float:
    """Best of ``repeats`` timed calls after one untimed call on the same batch (oneDNN builds its
    kernels per input shape on first use; the best time is the least disturbed by other load)."""
    targets = torch.zeros(len(images), dtype=torch.long)
    explain(method, model, images, targets)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        explain(method, model, images, targets)
        times.append(time.perf_counter() - started)
    return min(times) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fastnet", "resnet_small"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = F.interpolate(torch.randn(args.images, 3, 8, 8), size=32, mode="bilinear", align_corners=False)
    models = {name: build_model(name, 10).eval() for name in args.models}
    rows = [
        {"method": method, "family": family}
        | {f"{name} s/img": round(seconds_per_image(method, model, images, args.repeats), 4) for name, model in models.items()}
        for method, family, _, _ in describe_explainers()
    ]
    print(f"threads={args.threads} images={args.images} repeats={args.repeats} torch={torch.__version__}")
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
