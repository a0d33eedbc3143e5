"""Training / inference throughput of the CPU-sized zoo, and time-to-accuracy of a run.

    python benchmarks/train_speed.py                      # throughput of every small model
    python benchmarks/train_speed.py --run runs/quick     # + epochs and wall time to the target

Throughput is measured on random 32x32 batches with the trainer's settings (channels_last,
SGD step, batch 256 by default) after warm-up steps; time-to-accuracy is read from each
model's ``history.csv`` of a finished run (validation accuracy after each epoch, cumulative
training time), so it is exactly what that run took on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from xaiquest.models import build_model

SMALL_MODELS = ("fastnet", "resnet_small", "vgg_small", "densenet_small", "mobilenetv2_small", "resnet20")


def throughput(name: str, batch_size: int, steps: int, warmup: int = 2) -> tuple[float, float]:
    """(train img/s, inference img/s) on random data."""
    model = build_model(name, 10).to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    train_rate = batch_size * steps / (time.perf_counter() - started)
    model.eval()
    with torch.inference_mode():
        model(x)
        started = time.perf_counter()
        for _ in range(steps):
            model(x)
    return train_rate, batch_size * steps / (time.perf_counter() - started)


def time_to_accuracy(run: Path, target: float) -> pd.DataFrame:
    """Per trained model of a run: first epoch whose validation accuracy reaches ``target``."""
    rows = []
    for folder in sorted((run / "models").iterdir()):
        history = pd.read_csv(folder / "history.csv")
        reached = history[history["val_acc"] >= target]
        metrics = json.loads((folder / "eval" / "metrics.json").read_text())
        rows.append({
            "run": folder.name,
            f"epochs to val {target:.0%}": int(reached["epoch"].iloc[0]) if len(reached) else None,
            "train time to target (s)": round(float(reached["elapsed_s"].iloc[0]), 1) if len(reached) else None,
            "epochs": int(history["epoch"].iloc[-1]),
            "train time (s)": round(float(history["elapsed_s"].iloc[-1]), 1),
            "final val acc": round(float(history["val_acc"].iloc[-1]), 4),
            "test acc (flip TTA)": round(metrics["accuracy"], 4),
        })
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SMALL_MODELS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--run", type=Path, help="a finished run directory, e.g. runs/quick")
    parser.add_argument("--target", type=float, default=0.70, help="validation accuracy to reach")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates = []
    for name in args.models:
        train_rate, infer_rate = throughput(name, args.batch_size, args.steps)
        rates.append({"model": name, "train img/s": round(train_rate), "infer img/s": round(infer_rate),
                      "s per 50k epoch": round(50_000 / train_rate, 1)})
    print(f"threads={args.threads} batch={args.batch_size} torch={torch.__version__}")
    print(pd.DataFrame(rates).to_markdown(index=False))
    if args.run:
        print()
        print(time_to_accuracy(args.run, args.target).to_markdown(index=False))


if __name__ == "__main__":
    main()
