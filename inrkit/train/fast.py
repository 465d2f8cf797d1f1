"""What keeps a training step on the GPU: the optimiser, the data and the logs of a stage.

Three pieces the trainer's loop is built from; on CPU each chooses the plain path, so CPU runs
compute exactly what they always did.

- :func:`make_optimizer`: AdamW, fused into a few kernels on CUDA (the default single-tensor
  AdamW launches per parameter and reads each step counter back to the host).
- :class:`DeviceData`: a dataset that fits in device memory, copied there once and indexed
  on the device with the same batches the sampler would have given the DataLoader (so
  ``--resume`` and the CPU path see the same items), with no loader workers.
- :class:`StepLogs`: per-step logs summed on the device and read at log steps only, with the
  first step whose loss was not finite remembered on the device, so that the non-finite check
  needs no host sync per step and still runs before every checkpoint.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError, InrkitError
from .sampler import StepBatchSampler


def optimizer_implementation(implementation: str, device: torch.device) -> str:
    """``train.optimizer`` resolved: auto is fused on CUDA, PyTorch's default elsewhere."""
    if implementation == "auto":
        return "fused" if device.type == "cuda" else "default"
    return implementation


def make_optimizer(params, cfg, implementation: str, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with ``implementation``: auto (fused on CUDA, PyTorch's default elsewhere), fused,
    foreach or plain (one parameter at a time)."""
    implementation = optimizer_implementation(implementation, device)
    kwargs: dict[str, Any] = {}
    if implementation == "fused":
        kwargs["fused"] = True
    elif implementation == "foreach":
        kwargs["foreach"] = True
    elif implementation == "plain":
        kwargs["foreach"] = False
    elif implementation != "default":
        raise ConfigError(f"train.optimizer: unknown implementation '{implementation}'")
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **kwargs)


def dataset_tensors(dataset: Dataset) -> tuple[tuple[torch.Tensor, ...], bool] | None:
    """(the tensors a dataset's items are rows of, whether an item is one tensor), when it says so.

    A dataset opts in with ``as_tensors()``: one tensor (item ``i`` is ``t[i]``) or a tuple
    (item ``i`` is the list of each ``t[i]``); ``torch.utils.data.TensorDataset`` is understood.
    """
    own = getattr(dataset, "as_tensors", None)
    if own is not None:
        out = own()
        return ((out,), True) if isinstance(out, torch.Tensor) else (tuple(out), False)
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return tuple(dataset.tensors), False
    return None


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class DeviceData:
    """A whole dataset on ``device``; batches are gathered there by the sampler's indices."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], device: torch.device, single: bool):
        self.tensors = tuple(t.to(device, non_blocking=False).contiguous() for t in tensors)
        self.device = device
        self.single = single

    @classmethod
    def maybe(cls, dataset: Dataset, mode: str, device: torch.device, memory_fraction: float = 0.25) -> "DeviceData | None":
        """The dataset on the device when ``mode`` asks (auto: CUDA, tensor-backed, fits), else None.

        ``always`` also gathers a dataset item by item (e.g. decoded image files) before copying.
        """
        if mode == "never" or (mode == "auto" and device.type != "cuda"):
            return None
        found = dataset_tensors(dataset)
        if found is None:
            if mode != "always":
                return None
            items = [dataset[i] for i in range(len(dataset))]
            if not items:
                raise InrkitError("the training set is empty")
            single = isinstance(items[0], torch.Tensor)
            cols = [items] if single else list(zip(*items))
            tensors = tuple(torch.stack([torch.as_tensor(x) for x in col]) for col in cols)
            return cls(tensors, device, single)
        tensors, single = found
        if mode == "auto":
            free = torch.cuda.mem_get_info(device)[0]
            if _nbytes(tensors) > memory_fraction * free:
                return None
        return cls(tensors, device, single)

    def batches(self, sampler: StepBatchSampler, block: int = 256) -> Iterator[Any]:
        """One batch per step of ``sampler``; index lists travel to the device ``block`` steps at a time."""
        # lazily: a wall-clock budget plans up to 10^9 steps, whose list alone would fill the host's memory
        for lo in range(sampler.start, sampler.steps, block):
            chunk = range(lo, min(lo + block, sampler.steps))
            idx = torch.tensor([sampler.indices(s) for s in chunk], dtype=torch.long)
            if self.device.type == "cuda":
                idx = idx.pin_memory()
            idx = idx.to(self.device, non_blocking=True)
            for row in idx:
                parts = tuple(t.index_select(0, row) for t in self.tensors)
                yield parts[0] if self.single else list(parts)


class StepLogs:
    """Sums of each logged scalar over a window of steps, kept on the device."""

    def __init__(self, device: torch.device):
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        # the first step whose loss was NaN/inf (-1: none yet); updated without leaving the device
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, step: int, logs: dict[str, torch.Tensor]) -> None:
        for k, v in logs.items():
            v = v.detach().float()
            # a fresh tensor either way: a CUDA-graph output is overwritten by the next replay
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        bad = ~torch.isfinite(logs["loss"].detach())
        self.first_bad = torch.where(bad & (self.first_bad < 0), torch.full_like(self.first_bad, step), self.first_bad)
        self.steps += 1

    def read(self) -> tuple[dict[str, float], int | None]:
        """(means over the window, the first non-finite step or None) in one device→host copy; resets the sums."""
        keys = list(self.sums)
        packed = torch.stack([self.sums[k].double() / max(self.steps, 1) for k in keys] + [self.first_bad.double()])
        values = packed.tolist()
        bad = int(values[-1])
        self.sums, self.steps = {}, 0
        return dict(zip(keys, values[:-1])), (bad if bad >= 0 else None)

    def first_bad_step(self) -> int | None:
        bad = int(self.first_bad)
        return bad if bad >= 0 else None


def all_finite(tensors) -> bool:
    """Whether every tensor holds only finite values (one host sync for all of them)."""
    tensors = [t for t in tensors if t.is_floating_point() and t.numel()]
    if not tensors:
        return True
    flags = torch.stack([torch.isfinite(t).all() for t in tensors])
    return bool(flags.all())


def channels_last_dims(setting: bool | str, compile_setting: bool | str, device: torch.device) -> tuple[int, ...]:
    """The convolutions (2 for Conv2d, 3 for Conv3d) that ``train.channels_last`` puts channels-last:
    true, both; false, none; auto, the 2D ones when the step is compiled on CUDA, where that measured
    faster (inductor fuses the channels-last GroupNorm; eager, the layout costs more than it saves;
    3D compiled is not measured yet, so auto leaves it NCHW)."""
    if setting == "auto":
        return (2,) if compile_setting and device.type == "cuda" else ()
    return (2, 3) if setting else ()


def to_channels_last(model: nn.Module, dims: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
    """Channels-last weights for every 2D/3D convolution of ``dims`` (their outputs follow): the layout
    that bf16 tensor-core convolutions run fastest in. Checkpoints are unaffected (saved contiguous).
    Returns the dims of the convolutions the model has and that were converted."""
    done: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and 2 in dims:
            m.to(memory_format=torch.channels_last)
            done.add(2)
        elif isinstance(m, nn.Conv3d) and 3 in dims:
            m.to(memory_format=torch.channels_last_3d)
            done.add(3)
    return tuple(sorted(done))


def speed_settings(config, device: torch.device, bf16: bool, channels_last: tuple[int, ...],
                   data_on_device: bool) -> dict[str, Any]:
    """What a stage's speed settings resolved to (its summary's ``speed``): ``config`` the
    TrainConfig, ``channels_last`` the convolution dims put channels-last, the rest as resolved."""
    return {"device": str(device), "precision": "bf16" if bf16 else "fp32",
            "optimizer": optimizer_implementation(config.optimizer, device), "data_on_device": data_on_device,
            "channels_last": [f"{n}d" for n in channels_last], "compile": config.compile}


def speed_text(speed: dict[str, Any]) -> str:
    """A stage summary's ``speed`` (what the auto settings chose) in words, for the CLI and reports."""
    layout = "channels-last " + "+".join(speed["channels_last"]) if speed.get("channels_last") else "NCHW"
    compiled = speed.get("compile")
    compiled = "not compiled" if not compiled else "compiled" + ("" if compiled is True else f" ({compiled})")
    data = "training set on the device" if speed.get("data_on_device") else "training set through a DataLoader"
    return f"{speed['device']}, {speed['precision']}, AdamW {speed['optimizer']}, {data}, {layout}, {compiled}"
