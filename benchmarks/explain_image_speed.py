"""Seconds per image of ``xaiquest explain-image`` on a ResNet-50 at 224 px: Grad-CAM, Integrated
Gradients (32 steps) and the deletion/insertion scores of each map.

    python benchmarks/explain_image_speed.py                   # ResNet-50, 224 px, 4 images, 2 threads
    python benchmarks/explain_image_speed.py --model tv:resnet18 --size 64 --images 1   # a smoke run

Nothing can be downloaded here, so the weights are ResNet-50's random initialisation (seeded),
saved in torchvision's own state_dict format and read back through ``--weights`` exactly as a
user's file would be: the cost of a method depends on the architecture and the input size, not on
the weight values. Images are smooth random pictures written as PNG files. The first image is a
warm-up (oneDNN builds its kernels per shape on first use) and is not counted.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from xaiquest.explain.single import explain_images, load_any_model


def write_images(folder: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for index in range(count):
        low = torch.from_numpy(rng.random((1, 3, 6, 6), dtype=np.float32))
        smooth = torch.nn.functional.interpolate(low, size=size, mode="bicubic").clamp(0, 1)[0]
        files.append(folder / f"image{index}.png")
        Image.fromarray((smooth.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(files[-1])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tv:resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=4, help="timed images (one more is a warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        weights = folder / "weights.pth"
        name = args.model.removeprefix("tv:")
        torch.save(torchvision.models.get_model(name, weights=None).state_dict(), weights)  # torchvision's format
        loaded = load_any_model(args.model, weights, None, args.size, None)
        files = write_images(folder, args.images + 1, args.size)
        table = explain_images(files, loaded, ["gradcam", "integrated_gradients"], None, folder / "out")
    timed = table[table["image"] != str(files[0])]
    summary = timed.groupby("method")[["explain_s", "faithfulness_s"]].mean()
    print(f"{args.model} at {args.size} px, {args.threads} threads, {args.images} images (seconds per image):")
    print(summary.rename(columns={"explain_s": "explain", "faithfulness_s": "deletion+insertion"}).round(3).to_string())


if __name__ == "__main__":
    main()
