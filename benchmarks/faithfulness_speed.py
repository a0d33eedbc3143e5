"""Faithfulness metrics: xaiquest's batched deletion/insertion and ROAD against Quantus, same inputs.

    .venv/bin/pip install quantus          # for this benchmark only; xaiquest does not depend on it
    python benchmarks/faithfulness_speed.py                                   # random fastnet, random images
    python benchmarks/faithfulness_speed.py \\
        --checkpoint runs/quick/models/fastnet__baseline__s0/model.pt --data ../shared/datasets/cifar10-jpeg

The settings are the explain stage's defaults (Petsiuk et al.'s baselines), matched so the numbers
must agree: maps = input-gradient saliency (|grad| summed over channels, plus 1e-6 jitter so no two
pixels tie and both libraries sort identically), softmax probabilities, no abs / normalisation.

* Deletion to the mean colour = ``quantus.PixelFlipping`` with ``perturb_baseline=0`` (our
  ``deletion_baseline="mean"``: zeros, the normalised mean image).
* Insertion into a blurred copy: Quantus 0.6.0 has no insertion metric, so ``PixelFlipping``
  runs on our blurred images (``insertion_baseline="blur"``) with a ``perturb_func`` that puts
  the original image's values back at the indices it is given: Quantus' ordering, step loop and
  scoring, our blur.

Quantus ranks channel *values* (the map broadcast to 3 channels; a pixel's three copies are
adjacent in its order) but requires ``features_in_step`` to divide H*W, so one of our steps
(3*H*W/steps values) is several of its steps (64 values for 32x32 and 16 steps: 48 Quantus
steps), and its curve is compared at every third point, where both have swapped the same whole
pixels. Quantus' curve omits the unperturbed point, so ours is compared without it; AUCs as
``trapezoid(..., dx=1)`` over those points.

``quantus.ROAD`` (0.6.0) crashes on 3-channel images with per-pixel maps (it indexes the
per-pixel mask with channel-expanded feature indices), so ROAD is compared through Quantus'
own imputation function ``noisy_linear_imputation`` (ROAD's reference sparse solve), called
per image and percentage as its ``evaluate_batch`` does, for both MoRF and LeRF, noise 0.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xaiquest.data import load_dataset, to_float
from xaiquest.explainers.quality import deletion_insertion, pixel_ranks, road
from xaiquest.explainers.quality.faithfulness import baseline_images
from xaiquest.models import build_model


def load_inputs(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model (trained if a checkpoint is given) and ``--images`` test images with their labels."""
    model = build_model(args.model, 10)
    if args.checkpoint:
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    if args.data:
        test = load_dataset(args.data, Path(".cache/xaiquest"), download=False).test
        return model.eval(), to_float(test.images[: args.images]), test.labels[: args.images]
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, 32, 32, generator=generator)
    return model.eval(), images, torch.randint(0, 10, (args.images,), generator=generator)


def saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|d logit_target / d input| summed over channels, jittered so no two pixels tie."""
    x = images.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).gather(1, targets[:, None]).sum(), x)
    maps = gradient.abs().sum(1)
    return maps + 1e-6 * maps.amax() * torch.rand(maps.shape, generator=torch.Generator().manual_seed(1))


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """Result of the last call and the fastest of ``repeats`` wall times (after one warm-up call)."""
    result, times = fn(), []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return result, min(times)


def pixel_flipping_curves(
    model: nn.Module, x: np.ndarray, y: np.ndarray, a: np.ndarray, features_in_step: int, **metric_options: Any
) -> np.ndarray:
    """``quantus.PixelFlipping`` curves ``[N, steps]`` of one batch (softmax probabilities, channels first)."""
    import quantus

    metric = quantus.PixelFlipping(
        features_in_step=features_in_step, abs=False, normalise=False, disable_warnings=True, **metric_options
    )
    curves = metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", softmax=True, channel_first=True,
                    batch_size=len(x))
    return np.asarray(curves)


def restore_from(originals: np.ndarray) -> Callable[..., np.ndarray]:
    """A Quantus ``perturb_func`` for insertion: the values at ``indices`` become the original image's."""
    flat = originals.reshape(len(originals), -1)

    def perturb(arr: np.ndarray, indices: np.ndarray, **_: Any) -> np.ndarray:
        restored = arr.copy()
        rows = np.arange(len(arr))[:, None]
        restored[rows, indices] = flat[rows, indices]
        return restored

    return perturb


def compare_curves(name: str, theirs: np.ndarray, ours: torch.Tensor, stride: int) -> None:
    their_curves, our_curves = theirs[:, stride - 1 :: stride], ours[:, 1:].numpy()
    their_auc, our_auc = np.trapezoid(their_curves, dx=1, axis=1), np.trapezoid(our_curves, dx=1, axis=1)
    print(f"  {name}: max |curve difference| {np.abs(their_curves - our_curves).max():.2e}, "
          f"max |AUC difference| (dx=1) {np.abs(their_auc - our_auc).max():.2e}, mean AUC {our_auc.mean():.4f}")


def compare_deletion_insertion(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, steps: int, repeats: int
) -> None:
    pixels = images.shape[-2] * images.shape[-1]
    our_step = 3 * pixels // steps  # channel values per step of ours
    their_step = math.gcd(our_step, pixels)
    stride = our_step // their_step
    x, y, a = images.numpy(), targets.numpy(), maps[:, None].numpy()
    blurred = baseline_images(images, "blur").numpy()

    def deletion(rows: slice) -> np.ndarray:
        return pixel_flipping_curves(model, x[rows], y[rows], a[rows], their_step, perturb_baseline=0.0)

    def insertion() -> np.ndarray:
        return pixel_flipping_curves(model, blurred, y, a, their_step, perturb_func=restore_from(x))

    def ours() -> dict[str, torch.Tensor]:
        return deletion_insertion(model, images, maps, targets, steps=steps, deletion_baseline="mean",
                                  insertion_baseline="blur")

    their_deletion, their_time = best_time(lambda: deletion(slice(None)), repeats)
    _, one_by_one_time = best_time(lambda: np.concatenate([deletion(slice(i, i + 1)) for i in range(len(x))]), 1)
    their_insertion, insertion_time = best_time(insertion, repeats)
    our_result, our_time = best_time(ours, repeats)
    print(f"deletion to the mean colour, insertion into the blurred image ({len(x)} images, {steps} steps, "
          "softmax probability): ours vs quantus.PixelFlipping")
    compare_curves("deletion ", their_deletion, our_result["deletion_curve"], stride)
    compare_curves("insertion", their_insertion, our_result["insertion_curve"], stride)
    print(f"  ours: deletion + insertion   {our_time:7.3f} s  ({2 * len(x) * (steps + 1)} forward images)")
    print(f"  Quantus deletion             {their_time:7.3f} s  ({their_deletion.size} forward images)")
    print(f"  Quantus insertion            {insertion_time:7.3f} s  ({their_insertion.size} forward images)")
    print(f"  Quantus deletion, one image per call {one_by_one_time:7.3f} s  (a per-image loop)")
    print(f"  speed-up vs batched Quantus (deletion + insertion)  {(their_time + insertion_time) / our_time:7.1f}x")
    print(f"  speed-up vs per-image loop (deletion only, x2)      {2 * one_by_one_time / our_time:7.1f}x")


def quantus_road(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, counts: list[int]
) -> np.ndarray:
    """Target probabilities ``[N, 2K]`` (MoRF then LeRF) with Quantus' per-image sparse-solve imputation."""
    from quantus.functions.perturb_func import noisy_linear_imputation

    order = pixel_ranks(maps).argsort(1).numpy()  # pixel indices, most relevant first
    x, pixels = images.numpy(), order.shape[1]
    columns = []
    for removed in [order[:, :count] for count in counts] + [order[:, pixels - count :] for count in counts]:
        filled = np.stack([noisy_linear_imputation(arr=x[i], indices=removed[i], noise=0.0) for i in range(len(x))])
        with torch.no_grad():
            probabilities = model(torch.from_numpy(filled).float()).softmax(1)
        columns.append(probabilities.gather(1, targets[:, None]).squeeze(1).numpy())
    return np.stack(columns, 1)


def compare_road(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, repeats: int
) -> None:
    percentages = (0.1, 0.2, 0.3, 0.4, 0.5)
    counts = [round(p * maps[0].numel()) for p in percentages]
    their_scores, their_time = best_time(lambda: quantus_road(model, images, maps, targets, counts), repeats)
    our_result, our_time = best_time(lambda: road(model, images, maps, targets, percentages, noise_std=0.0), repeats)
    our_scores = torch.cat([our_result["morf_curve"], our_result["lerf_curve"]], 1).numpy()
    print(f"ROAD ({len(images)} images, MoRF + LeRF at {', '.join(f'{p:.0%}' for p in percentages)}, noise 0)")
    print(f"  max |probability difference| {np.abs(their_scores - our_scores).max():.2e}")
    morf, lerf = our_result["morf_drop_area"].mean(), our_result["lerf_drop_area"].mean()
    print(f"  mean MoRF / LeRF drop area    {morf:.4f} / {lerf:.4f}")
    print(f"  ours: batched CG imputation  {our_time:7.3f} s")
    print(f"  Quantus noisy_linear_imputation loop {their_time:7.3f} s")
    print(f"  speed-up                     {their_time / our_time:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--checkpoint", help="state_dict of a trained model (e.g. a run's model.pt)")
    parser.add_argument("--data", help="CIFAR-10 location; random images when omitted")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps the comparison fair)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    np.random.seed(0)
    model, images, targets = load_inputs(args)
    maps = saliency(model, images, targets)
    print(f"{args.model} ({'trained' if args.checkpoint else 'random init'}), torch threads {args.threads}")
    compare_deletion_insertion(model, images, maps, targets, args.steps, args.repeats)
    compare_road(model, images, maps, targets, args.repeats)


if __name__ == "__main__":
    main()
