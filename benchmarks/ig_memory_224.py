"""Peak memory of Integrated Gradients (32 steps) on a ResNet-18 at 224 px: the explain stage's largest
allocation at that size before each pass was capped to the pixels of 256 CIFAR images (``IG_PIXELS``).

    python benchmarks/ig_memory_224.py                      # 8 images, the default internal batch (256)

Each setting runs in a fresh process, whose peak resident set (``ru_maxrss``) is the number printed.
The uncapped row calls Captum directly with the internal batch as given, i.e. what xaiquest did before.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

import torch
import torchvision


def measure(images: int, internal_batch: int, uncapped: bool) -> float:
    """Peak RSS in GiB of one IG call in this process."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(images, 3, 224, 224)
    targets = torch.zeros(images, dtype=torch.long)
    if uncapped:
        from captum.attr import IntegratedGradients

        IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=targets, n_steps=32,
                                             internal_batch_size=internal_batch)
    else:
        from xaiquest.explainers.gradients import integrated_gradients

        integrated_gradients(model, x, targets, None, {}, n_steps=32, internal_batch_size=internal_batch)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--internal-batch", type=int, default=256)
    parser.add_argument("--child", choices=["uncapped", "capped"], help=argparse.SUPPRESS)  # one row's own process
    args = parser.parse_args()
    if args.child:
        print(measure(args.images, args.internal_batch, uncapped=args.child == "uncapped"))
        return
    print(f"Integrated Gradients, ResNet-18, 224 px, {args.images} images, 32 steps, internal batch {args.internal_batch}")
    for label, child in (("Captum, uncapped", "uncapped"), ("xaiquest (IG_PIXELS cap)", "capped")):
        command = [sys.executable, __file__, "--images", str(args.images), "--internal-batch", str(args.internal_batch),
                   "--child", child]
        peak = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])
        print(f"{label:<26} peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main()
