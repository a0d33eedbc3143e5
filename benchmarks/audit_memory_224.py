"""Peak memory (resident set) of a whole ``xaiquest run`` at 224 px on 2,000 test images, and of each stage.

    python benchmarks/audit_memory_224.py                           # 2,000 test images at 224 px (target: <= 4 GiB)
    python benchmarks/audit_memory_224.py --images 100 --size 64    # a smoke run

The data are CIFAR-10 test images (``--cifar``: an image folder with train/<class>/ and test/<class>/)
upscaled to ``--size`` px (bicubic) and written as JPEG files: real pictures, so GrabCut, the corruptions
and the concept probes see real content. The test split is ``--images`` images, the train split a tenth
of that (only the validation split and the temperature scaling read it: nothing is trained).

The model is ``tv:resnet18`` with 10 outputs imported with ``weights:`` (its seeded random initialisation
saved in torchvision's state_dict format): the smallest of the usual ImageNet backbones, audited as a
user's file would be, so the measurement is the audit and not training at 224 px on a CPU. Memory
depends on the architecture and the image size, not on the weight values.

First a whole ``xaiquest run`` in one child process (cold data cache: decoding included), then, in a
fresh run directory sharing the data cache, each stage's command in its own child process, in order.
A child's peak RSS is the kernel's own high-water mark (``os.wait4``'s ``ru_maxrss``), so no sampling
interval can miss a spike. The stage settings keep the defaults that decide memory (prediction batches,
robustness on every test image, 64 dissection images, a 224-px TCAV) and shorten what only costs time
(few corruptions and probes, one severity, 100 stress images for GrabCut).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
STAGE_COMMANDS = (["train"], ["evaluate"], ["calibrate"], ["robustness"], ["explain"], ["stress"], ["concepts"])
"""Each stage's own command (evaluate, calibrate, robustness and stress also refresh the comparison tables)."""
DEFAULT_CIFAR = os.environ.get("XAIQUEST_DATA", "/work/shared/datasets/cifar10-jpeg")


def upscaled_folder(cifar: Path, out: Path, test_images: int, size: int) -> Path:
    """train/<class>/ and test/<class>/ with ``test_images`` (and a tenth as many training) images at ``size`` px."""
    classes = sorted(entry.name for entry in (cifar / "test").iterdir() if entry.is_dir())
    for split, total in (("test", test_images), ("train", max(len(classes) * 2, test_images // 10))):
        per_class = -(-total // len(classes))
        for name in classes:
            (out / split / name).mkdir(parents=True)
            for file in sorted((cifar / split / name).iterdir())[:per_class]:
                with Image.open(file) as image:
                    image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(
                        out / split / name / f"{file.stem}.jpg", quality=90)
    return out


def experiment_yaml(folder: Path, weights: Path, size: int, train_images: int) -> str:
    """The run's config: imported weights, the data's size and normalisation, stages shortened where only time is saved."""
    return f"""name: memory
models: [{{name: tv:resnet18, weights: {weights}}}]
seeds: [0]
data: {{source: {folder / "images"}, cache_dir: {folder / "cache"}, image_size: {size}, val_size: {train_images // 2},
        mean: {IMAGENET_MEAN}, std: {IMAGENET_STD}}}
robustness: {{corruptions: [gaussian_noise, zoom_blur, fog, jpeg_compression], severities: [3], test_images: null}}
explain: {{methods: [gradcam, integrated_gradients, saliency], sanity_images: 2, deletion_steps: 8}}
stress: {{probes: [occlusion_centre, noise, background_swap], test_images: 100, focus_methods: [gradcam, saliency],
          focus_images: 8, layerwise_images: 64}}
concepts: {{test_images: 40, concepts: [red, stripes], concept_images: 10, random_sets: 10, tcav_images_per_class: 2}}
"""


def peak_rss(arguments: list[str], log: Path) -> tuple[float, float]:
    """``(peak RSS in GiB, seconds)`` of ``xaiquest ARGUMENTS`` run as a child process; a failure ends the benchmark."""
    command = [str(Path(sys.executable).with_name("xaiquest")), *arguments]
    started = time.perf_counter()
    with log.open("w") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(arguments)} failed; its log:\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / 2**20, seconds  # Linux reports kibibytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="test images (the audit's size)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--cifar", type=Path, default=Path(DEFAULT_CIFAR), help="CIFAR-10 image folder (train/, test/)")
    parser.add_argument("--stages", action=argparse.BooleanOptionalAction, default=True,
                        help="after the whole run, each stage in its own process (--no-stages: the whole run only)")
    args = parser.parse_args()
    if not (args.cifar / "test").is_dir():
        sys.exit(f"no CIFAR-10 image folder at {args.cifar}; pass --cifar DIR with train/<class>/ and test/<class>/")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        upscaled_folder(args.cifar, folder / "images", args.images, args.size)
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), folder / "resnet18.pth")
        train_images = sum(1 for _ in (folder / "images" / "train").rglob("*.jpg"))
        config = folder / "memory.yaml"
        config.write_text(experiment_yaml(folder, folder / "resnet18.pth", args.size, train_images))
        print(f"tv:resnet18 (imported), {args.images} test + {train_images} train images at {args.size} px")
        print(f"{'process':<12} {'peak RSS (GiB)':>15} {'seconds':>9}", flush=True)
        show("whole run", *peak_rss(["run", str(config), "--runs-dir", str(folder / "whole")], folder / "whole.log"))
        if not args.stages:
            return
        for stage in STAGE_COMMANDS:
            arguments = [*stage, str(config), "--runs-dir", str(folder / "stages")]
            show(stage[0], *peak_rss(arguments, folder / f"{stage[0]}.log"))
        show("report", *peak_rss(["report", str(folder / "stages" / "memory")], folder / "report.log"))


def show(process: str, gib: float, seconds: float) -> None:
    """One row as soon as it is measured: the whole run alone takes long at 224 px on a CPU."""
    print(f"{process:<12} {gib:>15.2f} {seconds:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
