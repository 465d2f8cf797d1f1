"""The learning rate of a stage at each step: warm-up, then constant or cosine, scaled with the batch."""
from __future__ import annotations

import math

from .config import StageConfig


def stage_lr(cfg: StageConfig, step: int, global_batch: int | None = None) -> float:
    """Linear warm-up, then constant or cosine decay to ``lr_min`` at ``cfg.steps``.

    ``lr`` and ``lr_min`` are the rates at ``lr_reference_batch`` items per step; a larger global
    batch scales them by ``lr_scaling`` (``sqrt``: the square-root rule for Adam, Malladi et
    al. 2022; ``linear``: Goyal et al. 2017; ``none``: unchanged).
    """
    scale = 1.0
    if cfg.lr_scaling != "none" and global_batch:
        ratio = global_batch / (cfg.lr_reference_batch or cfg.batch_size)
        scale = math.sqrt(ratio) if cfg.lr_scaling == "sqrt" else ratio
    lr, lr_min = cfg.lr * scale, cfg.lr_min * scale
    if cfg.warmup and step <= cfg.warmup:
        return lr * step / cfg.warmup
    if cfg.lr_schedule == "cosine" and cfg.steps > cfg.warmup:
        progress = min(1.0, (step - cfg.warmup) / (cfg.steps - cfg.warmup))
        return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * progress))
    return lr
