"""A perceptual loss from a feature network the user keeps locally (none ships, none downloads).

The file is a safetensors state dict of a VGG ``features`` stack in torchvision's layout
(``features.{i}.weight``/``.bias`` for each 3×3 conv; ReLU after each, a 2×2 max-pool where the
indices skip one more slot): VGG11/13/16/19 all read, and so does any narrower net of that layout.
The loss is LPIPS: at the ReLU before each pool and after the last conv, features are
unit-normalised over channels and their squared differences averaged over space, weighted per
channel by LPIPS' learned heads when the file holds them (``lin{k}.model.1.weight``, as the
``lpips`` package stores them) and summed over channels when it does not.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.errors import ConfigError
from inrkit.io import load_tensors

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_KEY = re.compile(r"^(?:features\.)?(\d+)\.(weight|bias)$")


class VGGFeatures(nn.Module):
    def __init__(self, state: dict[str, torch.Tensor], where: str):
        super().__init__()
        convs: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            m = _KEY.match(key)
            if m:
                convs.setdefault(int(m[1]), {})[m[2]] = value
        index = sorted(i for i, c in convs.items() if "weight" in c and c["weight"].dim() == 4)
        if not index:
            raise ConfigError(f"{where}: no VGG 'features.N.weight' conv weights found")
        if index[0] != 0 or convs[index[0]]["weight"].shape[1] != 3:
            raise ConfigError(f"{where}: the first conv (features.0) must take 3 input channels")
        self.layers = nn.ModuleList()
        self.pool_after: list[bool] = []
        for k, i in enumerate(index):
            w = convs[i]["weight"]
            layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
            layer.weight.data.copy_(w)
            layer.bias.data.copy_(convs[i].get("bias", torch.zeros(w.shape[0])))
            self.layers.append(layer)
            gap = (index[k + 1] - i) if k + 1 < len(index) else 2
            self.pool_after.append(gap == 3)  # conv, ReLU, MaxPool, next conv
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Model-space images (B, 1|3, H, W) in [-1, 1] → the tapped feature maps."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = (((x + 1) / 2) - self.mean) / self.std
        taps = []
        for k, (layer, pool) in enumerate(zip(self.layers, self.pool_after)):
            h = F.relu(layer(h))
            if pool or k == len(self.layers) - 1:
                taps.append(h)
            if pool and min(h.shape[-2:]) >= 2:
                h = F.max_pool2d(h, 2)
        return taps


class PerceptualLoss(nn.Module):
    """Per-item distance (B,) between two batches of model-space images."""

    def __init__(self, path: str | Path, where: str = "hyper_transform.perceptual"):
        super().__init__()
        path = Path(path).expanduser()
        self.where = where
        if not path.is_file():
            raise ConfigError(f"{where}: feature network file not found: {path}")
        if path.suffix != ".safetensors":
            raise ConfigError(f"{where}: {path} must be a .safetensors state dict (never a pickle)")
        state = load_tensors(path)
        self.net = VGGFeatures(state, str(path))
        # LPIPS' learned 1×1 heads (``lin{k}.model.1.weight``, (1, C_k, 1, 1)), when the file has them
        heads = [state.get(f"lin{k}.model.1.weight") for k in range(len(self.net.layers))]
        self.heads = [h.reshape(1, -1, 1, 1).float() for h in heads if h is not None]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() != 4 or pred.shape[1] not in (1, 3):
            raise ConfigError(f"{self.where}: needs image grids (B, 1|3, H, W), got {tuple(pred.shape)}")
        total = pred.new_zeros(pred.shape[0])
        taps = list(zip(self.net(pred.float()), self.net(target.float())))
        if self.heads and len(self.heads) != len(taps):
            raise ConfigError(f"{self.where}: {len(self.heads)} LPIPS heads for {len(taps)} feature taps")
        for k, (a, b) in enumerate(taps):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            d = (a - b) ** 2
            d = (d * self.heads[k].to(d.device)).sum(dim=1) if self.heads else d.sum(dim=1)
            total = total + d.flatten(1).mean(dim=1)
        return total
