"""Seed-to-seed repeatability of the sampling explainers against their sample counts.

    python benchmarks/explainer_repeatability.py                     # untrained fastnet, random images
    python benchmarks/explainer_repeatability.py --model fastnet \\
        --checkpoint runs/quick/models/fastnet__baseline__s0/model.pt --data ../shared/datasets/cifar10-jpeg

Per method and sample count: the mean over images of the Spearman correlation between the maps
of seeds 0 and 1 (the explain stage's ``seed_spearman`` column), and seconds per image (best of
one call; times on a shared machine are upper bounds). Maps explain the model's predicted class.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from xaiquest.data import load_dataset, to_float
from xaiquest.explainers import explain
from xaiquest.explainers.quality import spearman
from xaiquest.models import build_model

COUNTS = {"smoothgrad": ("nt_samples", [16, 32, 64, 128]), "lime": ("n_samples", [200, 400, 800])}


def load_images(args: argparse.Namespace) -> torch.Tensor:
    if args.data:
        test = load_dataset(args.data, Path(".cache/xaiquest"), download=False).test
        chosen = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(0))[: args.images]
        return to_float(test.images[chosen])
    noise = torch.randn(args.images, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return F.interpolate(noise, size=32, mode="bilinear", align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--checkpoint", help="state_dict of a trained model (e.g. a run's model.pt)")
    parser.add_argument("--data", help="CIFAR-10 location; smooth random images when omitted")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--methods", nargs="+", default=list(COUNTS), choices=list(COUNTS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    model = build_model(args.model, 10).eval()
    if args.checkpoint:
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    images = load_images(args)
    with torch.no_grad():
        targets = model(images).argmax(1)
    print(f"{args.model} ({'trained' if args.checkpoint else 'untrained'}), {len(images)} "
          f"{'CIFAR-10 test' if args.data else 'random'} images, threads {args.threads}", flush=True)
    rows = []
    for method in args.methods:
        option, counts = COUNTS[method]
        for count in counts:
            started = time.perf_counter()
            first = explain(method, model, images, targets, seed=0, **{option: count})
            seconds = (time.perf_counter() - started) / len(images)
            second = explain(method, model, images, targets, seed=1, **{option: count})
            rows.append({"method": method, "samples": count,
                         "seed-to-seed Spearman": spearman(first, second).nanmean().item(), "s/img": seconds})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
