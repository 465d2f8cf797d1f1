"""Held-out statistics as runs record and print them: mean and std over items, and what the
split sizes mean for them (no spread below 2 items; rough below ``FEW_ITEMS``)."""
from __future__ import annotations

from typing import Any

import torch


def summarise(per_item: dict[str, list[torch.Tensor]]) -> dict[str, dict[str, float | None]]:
    """Per-item metric values → mean and std over items; std is None (unavailable) below 2 items."""
    out = {}
    for k, vals in per_item.items():
        v = torch.cat(vals)
        out[k] = {"mean": float(v.mean()), "std": float(v.std()) if v.numel() > 1 else None}
    return out


def stat_text(stat: dict[str, Any] | None) -> str:
    """``20.1±0.52``; ``20.1 (spread n/a)`` where the std is unavailable (fewer than 2 items)."""
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.4g}" + (" (spread n/a)" if stat.get("std") is None else f"±{stat['std']:.2g}")


# below this many held-out items a mean ± std says little about a model
FEW_ITEMS = 20


def split_note(n_train: int, n_val: int) -> str:
    """How many items each split holds, and what that means for the held-out statistics."""
    note = f"data: {n_train} training item{'s' * (n_train != 1)}, {n_val} held-out item{'s' * (n_val != 1)}"
    if n_val < 2:
        return note + " (held-out spread unavailable below 2 items)"
    if n_val < FEW_ITEMS:
        return note + f" (held-out statistics over fewer than {FEW_ITEMS} items are rough)"
    return note
