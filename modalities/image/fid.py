"""Fréchet distance between two image sets, over features of a network the user provides.

No weights ship with inrkit and none are downloaded. The feature network is one of:

* a ``torch.nn.Module`` (called on (B, 3, H, W) images on [0, 1] unless told otherwise);
* a TorchScript file (``.pt``, ``.pth``, ``.jit``, ``.torchscript``) loaded with
  ``torch.jit.load`` — NVIDIA's ``inception-2015-12-05.pt`` (the StyleGAN/clean-fid Inception)
  is recognised by its ``return_features`` argument and is fed [0, 255] images, as it expects;
* a ``torch.export`` archive (``.pt2``), exported in eval mode, for the images' size and with a
  dynamic batch dimension (batches vary in size) — ``torch.export.export(net.eval(), (x,),
  dynamic_shapes=({0: torch.export.Dim("batch")},))``;
* a safetensors state dict for a module the caller passes as ``module=``.

Without any of these, :func:`compute_fid` reports FID as unavailable — never a made-up number.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from inrkit.distances import feature_stats, frechet_distance  # noqa: F401 (re-exported)
from inrkit.errors import DataError, InrkitError

UNAVAILABLE = "unavailable: no feature network given"


class FeatureNetwork:
    """Wraps a module: model-space images (B, c, H, W) in [-1, 1] → (B, F) float64 features."""

    def __init__(self, module: Callable, input_range: str = "unit", call_kwargs: dict | None = None, device=None):
        if input_range not in ("unit", "byte"):
            raise ValueError("input_range must be 'unit' ([0, 1]) or 'byte' ([0, 255])")
        self.module, self.input_range = module, input_range
        self.call_kwargs = call_kwargs or {}
        self.device = torch.device(device) if device is not None else _module_device(module)
        if hasattr(module, "eval"):
            try:
                module.eval()
            except NotImplementedError:
                pass  # torch.export's ExportedProgram.module() refuses eval(); it runs as it was exported

    @torch.no_grad()
    def __call__(self, grids: torch.Tensor) -> np.ndarray:
        x = ((grids.float() + 1) * 0.5).clamp(0, 1)
        if x.shape[1] == 1:  # feature networks are trained on RGB
            x = x.expand(-1, 3, -1, -1)
        if self.input_range == "byte":
            x = x * 255.0
        try:
            out = self.module(x.to(self.device), **self.call_kwargs)
        except Exception as err:  # the user's network rejects these images: one line, not a traceback
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise DataError(
                f"feature network failed on a batch of shape {tuple(x.shape)} ({type(err).__name__}: {first}); "
                "a .pt2 must be exported for this image size with a dynamic batch dimension "
                "(torch.export.export(..., dynamic_shapes=...))") from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(out.shape[0], -1).double().cpu().numpy()


def _module_device(module) -> torch.device:
    try:
        return next(iter(module.parameters())).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def load_feature_network(source, module: torch.nn.Module | None = None, device=None) -> FeatureNetwork:
    """A ``FeatureNetwork`` from a module, a feature-network file, or a safetensors state dict."""
    if isinstance(source, FeatureNetwork):
        return source
    if callable(source) and not isinstance(source, (str, Path)):
        return _wrap(source, device)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"feature network file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            if module is None:
                raise DataError(f"{path}: a safetensors file holds only weights; pass the network as module=")
            from inrkit.io import load_state

            load_state(module, path)
            net = module
        elif suffix == ".pt2":
            net = torch.export.load(str(path)).module()
        elif suffix in (".pt", ".pth", ".jit", ".torchscript"):
            with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; these files still load
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location="cpu")
        else:
            raise DataError(f"{path}: unknown feature network format (expected .pt TorchScript, .pt2 or .safetensors)")
    except InrkitError:
        raise
    except Exception as err:  # torch raises RuntimeError/ValueError/zip errors for non-archives
        raise DataError(f"{path}: cannot load feature network ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    return _wrap(net, device)


def _wrap(net, device) -> FeatureNetwork:
    if device is not None and hasattr(net, "to"):
        net.to(device)
    schema = str(getattr(getattr(net, "forward", None), "schema", ""))
    if "return_features" in schema:
        # NVIDIA's TorchScript Inception: [0, 255] input, resizes to 299 itself
        return FeatureNetwork(net, input_range="byte", call_kwargs={"return_features": True}, device=device)
    return FeatureNetwork(net, device=device)


def _batches(images, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        for i in range(0, images.shape[0], batch_size):
            yield images[i : i + batch_size]
    else:
        for b in images:
            yield b if b.dim() == 4 else b[None]


def extract_features(images, network: FeatureNetwork, batch_size: int = 50) -> np.ndarray:
    feats = [network(b) for b in _batches(images, batch_size)]
    return np.concatenate(feats, 0) if feats else np.zeros((0, 0))


def compute_fid(real, fake, feature_extractor=None, *, module: torch.nn.Module | None = None,
                batch_size: int = 50, device=None) -> dict:
    """FID between two sets of model-space images (tensors (n, c, H, W) or iterables of batches).

    ``feature_extractor``: a module, a ``FeatureNetwork`` or a file path (see the module doc).
    Returns ``{"fid": float | None, "fid_status": str, ...}``; ``fid`` is None when unavailable.
    """
    if feature_extractor is None:
        return {"fid": None, "fid_status": UNAVAILABLE}
    net = load_feature_network(feature_extractor, module=module, device=device)
    f_real, f_fake = extract_features(real, net, batch_size), extract_features(fake, net, batch_size)
    if len(f_real) < 2 or len(f_fake) < 2:
        return {"fid": None, "fid_status": "unavailable: need at least 2 images in each set",
                "fid_n_real": len(f_real), "fid_n_fake": len(f_fake)}
    fid = frechet_distance(*feature_stats(f_real), *feature_stats(f_fake))
    return {"fid": fid, "fid_status": "ok", "fid_n_real": len(f_real), "fid_n_fake": len(f_fake),
            "fid_feature_dim": int(f_real.shape[1])}
