"""A tiny distributed engine: which process am I, on which device, and how to talk to the others.

Launched by ``--devices N`` (:mod:`inrkit.train.launch`) or ``torchrun`` (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE`` in the environment) it joins the process group (NCCL on CUDA, gloo on CPU);
launched plainly it is a world of one and every collective is a no-op, so the trainer has a
single code path.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → this process's CUDA device when there is one, else CPU."""
    if isinstance(device, torch.device):
        return device
    device = (device or "auto").strip()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' requested but CUDA is not available on this machine")
        if device == "cuda":
            device = f"cuda:{local_rank % max(1, torch.cuda.device_count())}"
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}' (expected auto, cpu, cuda or cuda:N)") from None


class Engine:
    """Rank, device and collectives of one training process."""

    def __init__(self, device: str | torch.device | None = "auto"):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device, self.local_rank)
        self._owns_group = False
        if self.world_size > 1 and not dist.is_initialized():
            from .launch import stop_with_launcher

            stop_with_launcher()  # started by --devices N: stop (and checkpoint) if the launcher dies
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            self._owns_group = True

    # -- identity -----------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Engine(rank={self.rank}/{self.world_size}, device={self.device})"

    # -- collectives --------------------------------------------------------------------
    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """Average scalar metrics over every process (one collective for the whole dict)."""
        if not self.distributed or not metrics:
            return dict(metrics)
        keys = sorted(metrics)
        t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= self.world_size
        return dict(zip(keys, t.tolist()))

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equally shaped tensors from every process along dim 0."""
        if not self.distributed:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's boolean, seen by everyone (e.g. "a checkpoint exists")."""
        if not self.distributed:
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    # -- models -------------------------------------------------------------------------
    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """DistributedDataParallel over the parameters that require gradients, or the module itself."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (or tuples/lists/dicts of them) onto ``device``; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
