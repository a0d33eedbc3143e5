"""How far Guided Backprop is from plain saliency per model: the number behind "the guided rule matters".

    python benchmarks/guided_vs_saliency.py                                  # untrained zoo, random images
    python benchmarks/guided_vs_saliency.py --runs runs/quick --data ../shared/datasets/cifar10-jpeg

With ``--runs`` each model loads ``<runs>/models/<model>__baseline__s0/model.pt`` (models without
one are skipped and listed); with ``--data`` the first ``--images`` CIFAR-10 test images are used
and each map explains the model's predicted class. Per model: mean over images of 1 - Spearman
between the two maps and their relative L1 difference (each map scaled to sum 1, so the value is
in [0, 2]); 0 for both means Guided Backprop is saliency. Captum's ``GuidedBackprop`` on the same
model and images is shown beside ours: it modifies ``nn.ReLU`` only, so on GELU/SiLU/Hardswish
models its difference is 0.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop

from xaiquest.data import load_dataset, to_float
from xaiquest.explainers import explain
from xaiquest.explainers.quality import spearman
from xaiquest.models import build_model

MODELS = ["fastnet", "resnet_small", "vgg_small", "densenet_small", "mobilenetv2_small", "tv:mobilenet_v3_small"]


def difference(maps: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """Mean 1 - Spearman and mean relative L1 (maps scaled to sum 1) over images."""
    rank = 1 - spearman(maps, reference).nanmean().item()
    scaled = [m / m.sum(dim=(1, 2), keepdim=True).clamp_min(1e-30) for m in (maps, reference)]
    return rank, (scaled[0] - scaled[1]).abs().sum(dim=(1, 2)).mean().item()


def load_images(args: argparse.Namespace) -> torch.Tensor:
    if args.data:
        return to_float(load_dataset(args.data, Path(".cache/xaiquest"), download=False).test.images[: args.images])
    noise = torch.randn(args.images, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return F.interpolate(noise, size=32, mode="bilinear", align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--runs", help="run directory with trained baselines (seed 0); untrained models when omitted")
    parser.add_argument("--data", help="CIFAR-10 location; smooth random images when omitted")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    images, rows, skipped = load_images(args), [], []
    for name in args.models:
        model = build_model(name, 10).eval()
        if args.runs:
            checkpoint = Path(args.runs) / "models" / f"{name.replace(':', '-')}__baseline__s0" / "model.pt"
            if not checkpoint.exists():
                skipped.append(name)
                continue
            model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
        with torch.no_grad():
            targets = model(images).argmax(1)
        saliency = explain("saliency", model, images, targets)
        ours = difference(explain("guided_backprop", model, images, targets), saliency)
        captum = difference(GuidedBackprop(model).attribute(images.clone(), target=targets).abs().sum(1), saliency)
        rows.append({"model": name, "1 - Spearman": ours[0], "relative L1": ours[1],
                     "Captum 1 - Spearman": captum[0], "Captum relative L1": captum[1]})
    print(f"{'trained (' + args.runs + ')' if args.runs else 'untrained'}, {len(images)} "
          f"{'CIFAR-10 test' if args.data else 'random'} images; guided backprop vs saliency")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    if skipped:
        print(f"no checkpoint for: {', '.join(skipped)}")


if __name__ == "__main__":
    main()
