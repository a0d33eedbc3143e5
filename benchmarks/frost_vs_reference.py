"""Frost: the engine against the reference CIFAR-10-C generator on the same images, side by side.

    python benchmarks/frost_vs_reference.py --data ../shared/datasets/cifar10-jpeg \
        --reference-generator PATH/make_cifar_c.py --reference-python /path/to/venv-with-wand/bin/python \
        [--checkpoint runs/<experiment>/<run>/model.pt --model fastnet]

Prints, per severity, the mean absolute perturbation |corrupted - clean| of the engine and of the
reference on the same stratified test images and their ratio (1 = equally strong), the frost
crops' per-channel means and crop-to-crop spread on both sides (frost of black images at severity
1 is 0.2 x the crop), and, given a trained model's checkpoint, its accuracy under either frost and
the gap in points (engine - reference; positive = the engine's frost is easier). Random crops
differ between the two sides (different random streams), so the numbers agree statistically, not
image by image.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from reference_generator import ReferenceRun, run_reference

from xaiquest.data import load_dataset, stratified_indices
from xaiquest.data.corruptions import corrupt
from xaiquest.inference import predict_logits
from xaiquest.models import build_model

FROST_DIR = Path(str(files("xaiquest.data.corruptions") / "frost"))
CROP_SEVERITY, CROP_WEIGHT = 1, 0.2  # frost at severity 1: 1 * x + 0.2 * crop


def crop_statistics(black_frosted: torch.Tensor) -> str:
    """Per-channel mean and crop-to-crop spread (std of the crops' means) of frost crops in [0, 1]."""
    crops = black_frosted.double() / 255 / CROP_WEIGHT
    means = ", ".join(f"{m:.3f}" for m in crops.mean((0, 2, 3)).tolist())
    return f"channel means ({means}), spread {crops.mean((1, 2, 3)).std().item():.3f}"


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict_logits(model, images, torch.device("cpu")).argmax(1) == labels).double().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="CIFAR-10 folder")
    parser.add_argument("--images", type=int, default=1000, help="stratified test images")
    parser.add_argument("--severities", nargs="+", type=int, default=[1, 3, 5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-generator", type=Path, required=True, help="path to make_cifar_c.py")
    parser.add_argument("--reference-python", default=sys.executable, help="Python with the generator's deps (Wand)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained model's model.pt (state dict)")
    parser.add_argument("--model", default="fastnet", help="the checkpoint's architecture")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = load_dataset(args.data, Path(".cache/xaiquest"), download=False).test
    clean = test.subset(stratified_indices(test.labels, args.images, args.seed)[1])
    black = torch.zeros_like(clean.images)
    hwc = clean.images.permute(0, 2, 3, 1).numpy()
    reference = run_reference(np.concatenate((hwc, np.zeros_like(hwc))), ["frost"], sorted({*args.severities, CROP_SEVERITY}),
                              args.reference_generator, FROST_DIR, args.reference_python, args.threads, keep_outputs=True)
    if not isinstance(reference, ReferenceRun):
        raise SystemExit(f"reference generator could not run: {reference}")

    def reference_frost(severity: int) -> tuple[torch.Tensor, torch.Tensor]:
        both = torch.from_numpy(reference.outputs[("frost", severity)]).permute(0, 3, 1, 2)
        return both[: len(clean)], both[len(clean) :]

    print(f"{len(clean)} stratified test images, seed {args.seed}")
    print(f"engine crops:    {crop_statistics(corrupt(black, 'frost', CROP_SEVERITY, args.seed))}")
    print(f"reference crops: {crop_statistics(reference_frost(CROP_SEVERITY)[1])}\n")
    model = None
    if args.checkpoint is not None:
        model = build_model(args.model, len(test.labels.unique()))
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
        print(f"{args.model} ({args.checkpoint}) clean accuracy {100 * accuracy(model, clean.images, clean.labels):.2f} %\n")
    columns = "| severity | engine mean abs perturbation | reference | ratio |"
    print(columns + (" engine accuracy | reference accuracy | gap (points) |" if model else ""))
    print("| ---: " * (columns.count("|") - 1 + (3 if model else 0)) + "|")
    for severity in args.severities:
        ours = corrupt(clean.images, "frost", severity, args.seed)
        theirs = reference_frost(severity)[0]
        ours_change = (ours.double() - clean.images.double()).abs().mean().item()
        theirs_change = (theirs.double() - clean.images.double()).abs().mean().item()
        row = f"| {severity} | {ours_change:.2f} | {theirs_change:.2f} | {ours_change / theirs_change:.3f} |"
        if model is not None:
            ours_acc, theirs_acc = accuracy(model, ours, clean.labels), accuracy(model, theirs, clean.labels)
            row += f" {100 * ours_acc:.2f} % | {100 * theirs_acc:.2f} % | {100 * (ours_acc - theirs_acc):+.2f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
