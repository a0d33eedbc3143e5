"""Runs the reference CIFAR-10-C generator (``make_cifar_c.py`` of hendrycks/robustness) on given
images, in its own Python, for the side-by-side benchmarks.

The generator needs Wand (ImageMagick, Debian ``libmagickwand-dev``), which the project does not
depend on, so it runs in a child process: any Python holding numpy, scipy, scikit-image,
opencv-python-headless, Pillow and Wand (``--reference-python``; a scratch venv is fine). The
child loops over images as the generator's own dataset loop did: ``np.random.seed`` per image, a
PIL image in, ``np.uint8(corruption(img, severity))`` out. It times only that loop and reports
seconds per corruption as JSON; with ``--out`` it also saves the corrupted images.

The parent side is ``run_reference``; the child side is this file run as a script (it imports
neither torch nor xaiquest).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ReferenceRun:
    seconds: dict[str, float]  # per corruption, all requested severities together
    outputs: dict[tuple[str, int], np.ndarray]  # (name, severity) -> [N, 32, 32, 3] uint8, if kept


def run_reference(
    images: np.ndarray,
    names: list[str],
    severities: list[int],
    generator: Path | None,
    frost_dir: Path,
    python: str,
    threads: int,
    keep_outputs: bool = False,
) -> ReferenceRun | str:
    """The reference generator's timings (and outputs) on ``images`` (``[N, 32, 32, 3]`` uint8),
    or one line saying why it could not run (no generator path, missing dependency, crash)."""
    if generator is None:
        return "no --reference-generator given (path to make_cifar_c.py)"
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", images)
        command = [python, __file__, "--generator", str(generator), "--frost", str(frost_dir),
                   "--images", str(Path(tmp) / "images.npy"), "--threads", str(threads),
                   "--names", *names, "--severities", *map(str, severities)]
        if keep_outputs:
            command += ["--out", str(Path(tmp) / "out.npz")]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as error:
            return f"cannot start {python}: {error}"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
            return f"{python} could not run {generator}: {lines[-1]}"
        seconds = json.loads(done.stdout.strip().splitlines()[-1])
        outputs: dict[tuple[str, int], np.ndarray] = {}
        if keep_outputs:
            with np.load(Path(tmp) / "out.npz") as saved:
                outputs = {(key.rsplit("-", 1)[0], int(key.rsplit("-", 1)[1])): saved[key] for key in saved.files}
    return ReferenceRun(seconds, outputs)


# --- child side -------------------------------------------------------------------------------------


def _load_generator(path: Path):  # noqa: ANN202 (a module)
    spec = importlib.util.spec_from_file_location("make_cifar_c", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--frost", type=Path, required=True, help="folder holding frost1.png ... frost6.jpg")
    parser.add_argument("--images", type=Path, required=True, help=".npy of [N, 32, 32, 3] uint8 images")
    parser.add_argument("--names", nargs="+", required=True)
    parser.add_argument("--severities", nargs="+", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from PIL import Image  # the generator's own dependencies: imported here, in its Python
    import cv2

    cv2.setNumThreads(args.threads)
    generator = _load_generator(args.generator.resolve())
    images = np.load(args.images)
    pil_images = [Image.fromarray(image) for image in images]
    out_file = args.out.resolve() if args.out else None
    os.chdir(args.frost)  # the generator opens ./frost1.png ...
    seconds: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    for name in args.names:
        corruption = getattr(generator, name)
        started = time.perf_counter()
        for severity in args.severities:
            corrupted = []
            for index, image in enumerate(pil_images):
                np.random.seed(index)
                corrupted.append(np.uint8(corruption(image, severity)))
            if out_file is not None:
                outputs[f"{name}-{severity}"] = np.stack(corrupted)
        seconds[name] = time.perf_counter() - started
    if out_file is not None:
        np.savez(out_file, **outputs)
    print(json.dumps(seconds))


if __name__ == "__main__":
    sys.exit(_child())
