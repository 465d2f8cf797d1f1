"""Image metrics on model-space grids (B, c, H, W) in [-1, 1], returned per item as (B,) tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# PSNR of a perfect reconstruction would be +inf and poison every mean: cap it at 100 dB.
MSE_FLOOR = 1e-10


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] → [0, 1], clamped (what a saved image holds)."""
    return ((x.float() + 1.0) * 0.5).clamp(0.0, 1.0)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in model space ([-1, 1], unclamped): the scale the likelihood sees."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB on the [0, 1] scale after clamping, data range 1."""
    err = (to_unit(pred) - to_unit(target)).pow(2).flatten(1).mean(1)
    return -10.0 * torch.log10(err.clamp_min(MSE_FLOOR))


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM on [0, 1] (clamped), averaged over channels.

    Matches ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``: skimage filters with reflection and then crops
    (window-1)/2 pixels from every side, so only fully covered pixels count — a 'valid'
    convolution gives the same numbers. skimage refuses images smaller than the window; here
    such images use the largest odd window that fits (same sigma, renormalised).
    """
    x, y = to_unit(pred), to_unit(target)
    b, c, h, w = x.shape
    size = max(1, min(window, h - (1 - h % 2), w - (1 - w % 2)))
    k = gaussian_window(size, sigma, device=x.device)
    c1, c2 = 0.01**2, 0.03**2

    # one separable pass over the five moment maps of every item and channel at once, each map
    # a channel of a depthwise convolution (several times faster on CPU than a batch of 1-channel maps)
    n = b * c * 5
    maps = torch.stack([x, y, x * x, y * y, x * y], dim=2).reshape(1, n, h, w)
    maps = F.conv2d(maps, k.view(1, 1, size, 1).expand(n, 1, size, 1).contiguous(), groups=n)
    maps = F.conv2d(maps, k.view(1, 1, 1, size).expand(n, 1, 1, size).contiguous(), groups=n)
    ux, uy, uxx, uyy, uxy = maps.reshape(b, c, 5, *maps.shape[-2:]).unbind(2)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target), "mse": mse(pred, target)}
