"""One model on several GPUs (``train.devices: N``): DistributedDataParallel over N spawned processes.

The recipe and the global batch stay those of one device. Every replica draws the same shuffle,
augmentation and Mixup/CutMix of the whole global batch from the same seeded generators, then trains
on its own equal slice; DDP averages the replicas' gradients, which is the gradient of the global
batch's mean loss, and SyncBatchNorm normalises with the global batch's statistics. Replica 0 alone
writes the history and the per-epoch checkpoints, so a run killed at any point resumes from the last
epoch like a single-device one (on any number of devices).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Replica:
    """This process's place among the ``world`` processes that train one model."""

    rank: int
    world: int

    @property
    def writes(self) -> bool:
        """Replica 0 writes the history, checkpoints, curves and progress lines; the others only compute."""
        return self.rank == 0

    def shard(self, batch: int) -> slice:
        """This replica's equal, contiguous part of a global batch (``batch`` divisible by ``world``)."""
        per_replica = batch // self.world
        return slice(self.rank * per_replica, (self.rank + 1) * per_replica)

    def mean(self, values: list[float]) -> list[float]:
        """The mean over replicas of per-replica means of equal shards: the global batch's mean."""
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total)
        return (total / self.world).tolist()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The DDP module over ``model`` (BatchNorm made SyncBatchNorm on GPUs; gloo on CPU, for tests only)."""
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def free_port() -> int:
    """A localhost TCP port nobody listens on, for the process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn_replicas(entry: Any, world: int, args: tuple[Any, ...], backend: str = "nccl") -> None:
    """Run ``entry(replica, device, *args)`` in ``world`` spawned processes joined in one process group."""
    torch.multiprocessing.spawn(_replica_main, args=(world, free_port(), backend, entry, args), nprocs=world, join=True)


def _replica_main(rank: int, world: int, port: int, backend: str, entry: Any, args: tuple[Any, ...]) -> None:
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        entry(Replica(rank, world), device, *args)
    finally:
        dist.destroy_process_group()
