"""Images/s of the batched corruption engine and of the reference CIFAR-10-C generator, side by side.

    python benchmarks/corruption_speed.py --reference-generator PATH/make_cifar_c.py \
        --reference-python /path/to/venv-with-wand/bin/python --data ../shared/datasets/cifar10-jpeg
    python benchmarks/corruption_speed.py --images 10000 --threads 2 ...   # the full-size suite, measured
    python benchmarks/corruption_speed.py --only glass_blur zoom_blur ...  # a few corruptions

One run times both on this machine, in this session, on the same images: the engine on
``--images`` images per severity (one batch each), then the reference generator itself
(``make_cifar_c.py`` of hendrycks/robustness, one PIL image at a time, as its own loop) on the first
``--reference-images`` of them, in a child process of ``--reference-python`` (it needs Wand and
ImageMagick, which the project does not; see ``reference_generator.py``). The table reports
images/s (images x severities / seconds) per corruption and the speed-up. When the reference
cannot run, the script says why and reports the engine alone, with no speed-up: a ratio against a
figure from another run or machine is not a measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from reference_generator import ReferenceRun, run_reference

from xaiquest.data.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt

FULL_SUITE_IMAGES = 10_000
FROST_DIR = Path(str(files("xaiquest.data.corruptions") / "frost"))


# --- timing -----------------------------------------------------------------------------------------


def benchmark_images(n: int, data: Path | None) -> torch.Tensor:
    """CIFAR-10 test images in a fixed random order (an image folder loads class by class, and the
    reference times only the first few) if ``data`` is given, else smooth random images."""
    if data is not None:
        from xaiquest.data import load_dataset

        test = load_dataset(data, Path(".cache/xaiquest"), download=False).test.images
        order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
        return test[order[torch.arange(n) % len(test)]].contiguous()
    low = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    smooth = F.interpolate(low, size=32, mode="bilinear", align_corners=False)
    grain = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.1
    return ((smooth * 0.9 + grain) * 255).round().clamp(0, 255).to(torch.uint8)


def time_engine(images: torch.Tensor, name: str) -> float:
    """Seconds for all severities (after one small warm-up call per severity)."""
    for severity in SEVERITIES:
        corrupt(images[:8], name, severity)
    started = time.perf_counter()
    for severity in SEVERITIES:
        corrupt(images, name, severity, seed=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images per severity for the engine")
    parser.add_argument("--reference-images", type=int, default=100, help="images per severity for the reference")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch and OpenCV)")
    parser.add_argument("--only", nargs="+", choices=ALL_CORRUPTIONS, default=list(ALL_CORRUPTIONS))
    parser.add_argument("--data", type=Path, default=None, help="CIFAR-10 folder for real test images")
    parser.add_argument("--reference-generator", type=Path, default=None, help="path to make_cifar_c.py")
    parser.add_argument("--reference-python", default=sys.executable, help="Python with the generator's deps (Wand)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = benchmark_images(args.images, args.data)
    reference_images = images[: args.reference_images].permute(0, 2, 3, 1).numpy()
    per_severity = len(SEVERITIES)
    print(f"{platform.node()}: {os.cpu_count()} CPU(s) {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"engine: {args.images} images x {per_severity} severities, one batch per severity")
    engine_seconds = {name: time_engine(images, name) for name in args.only}
    reference = run_reference(reference_images, args.only, list(SEVERITIES), args.reference_generator, FROST_DIR,
                              args.reference_python, args.threads)
    if isinstance(reference, ReferenceRun):
        print(f"reference: {args.reference_generator} in {args.reference_python}, the first "
              f"{args.reference_images} of the same images x {per_severity} severities, one image at a time\n")
    else:
        print(f"reference generator NOT timed: {reference}. Engine rates only; this run supports no speed-up "
              f"claim (install Wand + libmagickwand-dev and pass --reference-generator).\n")
    print_table(engine_seconds, reference, args.images, args.reference_images)


def print_table(engine_seconds: dict[str, float], reference: ReferenceRun | str, images: int, reference_images: int) -> None:
    """Images/s per corruption and overall, the speed-up where the reference ran, and the time for
    the full 10,000-image suite (measured if ``images`` is 10,000, else extrapolated)."""
    per_severity = len(SEVERITIES)
    timed = isinstance(reference, ReferenceRun)
    print("| corruption | engine img/s |" + (" reference generator img/s | speed-up |" if timed else ""))
    print("| --- | ---: |" + (" ---: | ---: |" if timed else ""))
    for name, seconds in engine_seconds.items():
        row = f"| {name} | {per_severity * images / seconds:,.0f} |"
        if timed:
            reference_rate = per_severity * reference_images / reference.seconds[name]
            row += f" {reference_rate:,.0f} | {per_severity * images / seconds / reference_rate:,.1f}x |"
        print(row, flush=True)
    engine_total = sum(engine_seconds.values())
    engine_rate = len(engine_seconds) * per_severity * images / engine_total
    row = f"| **all {len(engine_seconds)} x {per_severity}** | **{engine_rate:,.0f}** |"
    if timed:
        reference_total = sum(reference.seconds.values())
        reference_rate = len(engine_seconds) * per_severity * reference_images / reference_total
        row += f" **{reference_rate:,.0f}** | **{engine_rate / reference_rate:,.1f}x** |"
    print(row)
    how = "measured" if images == FULL_SUITE_IMAGES else f"extrapolated from {images} images"
    summary = (f"\n{len(engine_seconds)} corruptions x {per_severity} severities x {FULL_SUITE_IMAGES:,} images: "
               f"engine {engine_total * FULL_SUITE_IMAGES / images:.1f} s ({how})")
    if timed:
        summary += f", reference generator {reference_total * FULL_SUITE_IMAGES / reference_images / 60:.1f} min (extrapolated)"
    print(summary)


if __name__ == "__main__":
    main()
