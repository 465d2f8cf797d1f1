"""Fused batched sine layers for SIREN on CUDA (Triton): matmul + bias + sine in one pass.

A SIREN stack evaluates B different INRs at once: layer l is ``a_l = x_l @ W_l + b_l`` with
``x_{l+1} = sin(ω_l a_l)``. Each kernel here computes one layer's product for all B INRs and
applies the *previous* layer's sine while it loads its input tile, so a layer writes only its
pre-activation ``a_l`` (fp32) and no separate activation tensor exists, forward or backward:
the backward pass recomputes ``sin``/``cos`` from the stored ``a_l`` (half the activation memory
of autograd's bmm + sin, no extra matmul).

The matrix products run on the tensor cores in a precision chosen by ``precision``:

- ``fp32``: plain fp32 FMAs (no tensor cores), the reference;
- ``tf32x3`` / ``bf16x3``: each operand split into a high and a low part, three tensor-core
  products (hi·hi + hi·lo + lo·hi) — about 1e-6 / 1e-5 relative error, near fp32;
- ``tf32`` / ``bf16``: one product, 1e-4 / 1e-3 relative error (SIREN's ω0 = 30 amplifies it).

The backward pass may use another scheme (``grad_precision``): its products (the weights' and the
inputs' gradients) feed no phase, since the sines' derivatives come from the stored fp32
pre-activations, so plain bf16 there has the error autocast gives every other gradient of a step.

``benchmarks/gpu_bench.py`` measures each one's error against an fp64 reference and its speed;
the SIREN default is chosen from those numbers (see ``SirenConfig.matmul_precision``).
Where CUDA or Triton is missing, :func:`available` is False and SIREN keeps its PyTorch path.
"""
from __future__ import annotations

import functools
import os

import torch

from ..errors import ConfigError

PRECISIONS = ("fp32", "tf32", "tf32x3", "bf16", "bf16x3")


@functools.lru_cache(maxsize=None)
def _triton():
    try:
        import triton
        import triton.language as tl
    except Exception:  # missing, or a build that does not match this torch
        return None
    return triton, tl


def interpreting() -> bool:
    """True under ``TRITON_INTERPRET=1``: the kernels then run (slowly) on CPU tensors, for tests."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@torch.compiler.assume_constant_result  # torch.compile takes the answer as it is, without tracing the import
def available(device: torch.device | str) -> bool:
    """Whether the fused kernels can run for tensors on ``device``."""
    if _triton() is None:
        return False
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and interpreting())


@functools.lru_cache(maxsize=None)
def _kernels():
    from . import sine_kernels as k  # imports Triton: only reached where available() said yes

    return k.triton, k.forward_kernel, k.grad_input_kernel, k.grad_weight_kernel


# Layer sizes (K, M) are compile-time constants: static loops, and one compiled kernel per layer
# shape. The gradient of the weights also fixes N, the coordinate count of a training step.


def _block(n: int, lo: int, hi: int) -> int:
    p = lo
    while p < n and p < hi:
        p *= 2
    return p


def _reduction_block(precision: str) -> int:
    """The conservative reduction tile: 64 for bf16 operands; fp32 operands (fp32, tf32, tf32x3) at
    64 need more shared memory than an H200 has (tf32x3) or ran slower (fp32)."""
    return 64 if precision.startswith("bf16") else 32


def _warps(a: int, b: int) -> int:
    return 8 if a * b >= 128 * 128 else 4


def _rule(kernel: str, precision: str) -> tuple[tuple[int, int, int], int]:
    """The built-in (caps in BLOCKS order, pipeline stages) of ``kernel``. With bf16 operands (bf16,
    bf16x3) the gradient kernels take the tiles the sweep of ``benchmarks/gpu_bench.py --sections
    tiles`` found fastest on an H200 at B=64, N=4096, 256->256 (grad_weight 1.74x, grad_input
    1.14x; benchmarks/RESULTS.md); the rest keep the conservative rule (_conservative)."""
    if precision.startswith("bf16"):
        if kernel == "grad_weight":
            return (128, 256, 32), 4
        if kernel == "grad_input":
            return (64, 128, 32), 3
    return _conservative(kernel, precision)


def _conservative(kernel: str, precision: str) -> tuple[tuple[int, int, int], int]:
    """Tiles every supported GPU runs: 128x128 output tiles, 3 stages. A GPU with less shared
    memory than the built-in rule needs falls back to these (see _start)."""
    return (128, 128, 32 if kernel == "forward" else _reduction_block(precision)), 3


# Each kernel's block sizes: two of the output tile, then the reduction tile.
BLOCKS = {"forward": ("BN", "BM", "BK"), "grad_input": ("BN", "BK", "BM"), "grad_weight": ("BK", "BM", "BN")}
LAUNCH = ("num_warps", "num_stages")


def check_tiles(kernel: str, settings: dict) -> dict[str, int]:
    """Validate tile settings of ``kernel`` (one of BLOCKS): block sizes as caps (a layer narrower
    than a cap gets the next power of two, at least 16; powers of two ≥ 16, ``tl.dot``'s minimum),
    ``num_warps``, ``num_stages``. Missing settings keep the built-in rule."""
    if kernel not in BLOCKS:
        raise ValueError(f"unknown fused sine kernel '{kernel}' (expected one of {', '.join(BLOCKS)})")
    for name, value in settings.items():
        if name not in BLOCKS[kernel] + LAUNCH:
            raise ValueError(f"unknown tile setting '{name}' of {kernel} (expected {', '.join(BLOCKS[kernel] + LAUNCH)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"tile setting {name}={value!r} of {kernel} must be a positive integer")
        if name in BLOCKS[kernel] and (value < 16 or value & (value - 1)):
            raise ValueError(f"block size {name}={value} of {kernel} must be a power of two >= 16")
    return dict(settings)


def encode_tiles(tiles: dict[str, dict[str, int]] | None) -> str:
    """Tile settings per kernel (checked) as the custom operators take them: ``forward.BM=256,forward.num_warps=8``."""
    for kernel, settings in (tiles or {}).items():
        check_tiles(kernel, settings)
    return ",".join(f"{k}.{name}={v}" for k in BLOCKS for name, v in sorted((tiles or {}).get(k, {}).items()))


@functools.lru_cache(maxsize=64)
def _decode_tiles(text: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {k: {} for k in BLOCKS}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        kernel, name = key.split(".")
        out[kernel][name] = int(value)
    return out


def _launch(kernel: str, sizes: tuple[int, int, int], precision: str, over: dict | None,
            rule=_rule) -> dict[str, int]:
    """Block sizes and launch settings for one call: ``sizes`` in BLOCKS order, the caps and stages
    of ``rule``, ``over`` the settings that replace them."""
    over = over or {}
    names = BLOCKS[kernel]
    caps, stages = rule(kernel, precision)
    blocks = {nm: _block(n, 16, over.get(nm, cap)) for nm, n, cap in zip(names, sizes, caps)}
    return {**blocks, "num_warps": over.get("num_warps", _warps(blocks[names[0]], blocks[names[1]])),
            "num_stages": over.get("num_stages", stages)}


_TOO_BIG: set[tuple] = set()  # (device, kernel, sizes, precision) whose built-in tiles the GPU could not run


def _start(kernel_fn, grid_of, args: tuple, kernel: str, sizes: tuple[int, int, int], precision: str,
           tiles: dict | None, device: torch.device, **flags) -> None:
    """Launch ``kernel_fn`` on the grid ``grid_of(tiles)`` gives. Tiles from the config that need
    more of the GPU than it has (shared memory, registers) are a config error naming them, not a
    traceback from Triton; the built-in rule's tiles fall back to the conservative ones (and stay
    there for that shape on that device)."""
    key = (str(device), kernel, sizes, precision)
    t = _launch(kernel, sizes, precision, tiles, _conservative if key in _TOO_BIG and not tiles else _rule)
    try:
        kernel_fn[grid_of(t)](*args, **flags, **t)
    except Exception as err:
        if type(err).__name__ != "OutOfResources" or (not tiles and key in _TOO_BIG):
            raise
        if not tiles:
            _TOO_BIG.add(key)
            t = _launch(kernel, sizes, precision, None, _conservative)
            kernel_fn[grid_of(t)](*args, **flags, **t)
            return
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"model.inr.tiles.{kernel} {tiles}: this GPU cannot run these tiles ({first});"
                          " choose smaller ones") from None


def _batch_strides(x: torch.Tensor) -> tuple[int, int, int]:
    """(batch, row, column) strides; a shared (N, d) input has batch stride 0."""
    if x.dim() == 2:
        return 0, x.stride(0), x.stride(1)
    return x.stride(0), x.stride(1), x.stride(2)


def linear(x: torch.Tensor, w: torch.Tensor, sine_in: bool, w0_in: float, precision: str,
           tiles: dict | None = None) -> torch.Tensor:
    """``act(x) @ w[:, :-1] + w[:, -1]`` for every INR: x (B, N, K) or shared (N, K), w (B, K+1, M)."""
    triton, fwd, _, _ = _kernels()
    b, k1, m = w.shape
    n = x.shape[-2]
    out = torch.empty(b, n, m, device=w.device, dtype=torch.float32)
    _start(fwd, lambda t: (triton.cdiv(n, t["BN"]), triton.cdiv(m, t["BM"]), b),
           (x, w, out, n, k1 - 1, m, *_batch_strides(x), *w.stride(), *out.stride(), float(w0_in)),
           "forward", (n, m, k1 - 1), precision, tiles, w.device, SINE_IN=sine_in, PREC=precision)
    return out


def grad_input(g: torch.Tensor, w: torch.Tensor, prev: torch.Tensor | None, w0_in: float, precision: str,
               tiles: dict | None = None) -> torch.Tensor:
    """(g @ w[:, :-1]^T), times ``w0_in cos(w0_in prev)`` when ``prev`` (the previous pre-activation) is given."""
    triton, _, gin, _ = _kernels()
    b, k1, m = w.shape
    n, k = g.shape[1], k1 - 1
    out = torch.empty(b, n, k, device=w.device, dtype=torch.float32)
    p = prev if prev is not None else out
    _start(gin, lambda t: (triton.cdiv(n, t["BN"]), triton.cdiv(k, t["BK"]), b),
           (g, w, p, out, n, k, m, *g.stride(), *w.stride(), *_batch_strides(p), *out.stride(), float(w0_in)),
           "grad_input", (n, k, m), precision, tiles, w.device, COS_OUT=prev is not None, PREC=precision)
    return out


def grad_weight(x: torch.Tensor, g: torch.Tensor, sine_in: bool, w0_in: float, precision: str,
                tiles: dict | None = None) -> torch.Tensor:
    """(B, K+1, M): ``act(x)^T @ g`` with the bias row ``Σ_n g`` appended."""
    triton, _, _, gw = _kernels()
    b, n, m = g.shape
    k = x.shape[-1]
    out = torch.empty(b, k + 1, m, device=g.device, dtype=torch.float32)
    _start(gw, lambda t: (triton.cdiv(k, t["BK"]), triton.cdiv(m, t["BM"]), b),
           (x, g, out, n, k, m, *_batch_strides(x), *g.stride(), *out.stride(), float(w0_in)),
           "grad_weight", (k, m, n), precision, tiles, g.device, SINE_IN=sine_in, PREC=precision)
    return out


def _omegas(n_layers: int, w0_initial: float, w0: float) -> list[float]:
    """ω of the sine applied to each layer's *input* (layer 0 reads raw coordinates)."""
    return [0.0] + [w0_initial] + [w0] * max(0, n_layers - 2)


# The stack is two custom operators (forward, backward) with a registered autograd formula: to
# torch.compile they are opaque calls, so neither dynamo nor inductor traces into the Triton
# launches (under tracing the kernels ran 3-4x slower, benchmarks/RESULTS.md), and CUDA graphs
# capture them as they are.

@torch.library.custom_op("inrkit::fused_siren", mutates_args=())
def _stack(coords: torch.Tensor, weights: list[torch.Tensor], w0_initial: float, w0: float, precision: str,
           grad_precision: str, tiles: str, keep: bool) -> list[torch.Tensor]:
    """Every layer's pre-activation when ``keep`` (backward reads them), else only the last one
    (then a backward pass recomputes them: activation checkpointing). ``grad_precision``: the
    backward's scheme (read by the autograd formula). ``tiles``: encode_tiles's string."""
    omegas = _omegas(len(weights), w0_initial, w0)
    t = _decode_tiles(tiles)["forward"]
    pre, x = [], coords
    for i, w in enumerate(weights):
        x = linear(x, w.contiguous(), i > 0, omegas[i], precision, t)
        if keep:
            pre.append(x)
    return pre if keep else [x]


@_stack.register_fake
def _(coords, weights, w0_initial, w0, precision, grad_precision, tiles, keep):
    b, n = weights[0].shape[0], coords.shape[-2]
    return [coords.new_empty(b, n, w.shape[-1], dtype=torch.float32) for w in (weights if keep else weights[-1:])]


@torch.library.custom_op("inrkit::fused_siren_backward", mutates_args=())
def _stack_backward(grad_out: torch.Tensor, coords: torch.Tensor, weights: list[torch.Tensor], pre: list[torch.Tensor],
                    w0_initial: float, w0: float, precision: str, tiles: str, coords_grad: bool) -> list[torch.Tensor]:
    """The weights' gradients, then the coordinates' gradient when ``coords_grad``."""
    omegas = _omegas(len(weights), w0_initial, w0)
    t = _decode_tiles(tiles)
    inputs = [coords, *pre]
    g = grad_out.float().contiguous()
    grads: list[torch.Tensor] = [g] * len(weights)
    for i in reversed(range(len(weights))):
        grads[i] = grad_weight(inputs[i], g, i > 0, omegas[i], precision, t["grad_weight"])
        if i > 0:
            g = grad_input(g, weights[i].contiguous(), inputs[i], omegas[i], precision, t["grad_input"])
    if coords_grad:
        grad_coords = grad_input(g, weights[0].contiguous(), None, 0.0, precision, t["grad_input"])
        grads.append(grad_coords.sum(0) if coords.dim() == 2 else grad_coords)
    return grads


@_stack_backward.register_fake
def _(grad_out, coords, weights, pre, w0_initial, w0, precision, tiles, coords_grad):
    grads = [w.new_empty(w.shape, dtype=torch.float32) for w in weights]
    if coords_grad:
        grads.append(coords.new_empty(coords.shape, dtype=torch.float32))
    return grads


def _setup_context(ctx, inputs, output):
    coords, weights, w0_initial, w0, precision, grad_precision, tiles, _keep = inputs
    ctx.n_layers, ctx.args = len(weights), (w0_initial, w0, precision, grad_precision, tiles)
    ctx.save_for_backward(coords, *weights, *output[:-1])


def _backward(ctx, grads):
    n = ctx.n_layers
    saved = ctx.saved_tensors
    coords, weights, pre = saved[0], list(saved[1 : 1 + n]), list(saved[1 + n :])
    w0_initial, w0, precision, grad_precision, tiles = ctx.args
    if len(pre) != n - 1:  # called with keep=False: recompute the pre-activations (checkpointing)
        pre = _stack(coords, weights, *ctx.args, True)[:-1]
    need = bool(ctx.needs_input_grad[0])
    out = _stack_backward(grads[-1], coords, weights, pre, w0_initial, w0, grad_precision, tiles, need)
    return (out[n] if need else None), list(out[:n]), None, None, None, None, None, None


_stack.register_autograd(_backward, setup_context=_setup_context)


def siren_stack(coords: torch.Tensor, weights: list[torch.Tensor], w0_initial: float, w0: float,
                precision: str, tiles: str = "", grad_precision: str | None = None) -> torch.Tensor:
    """The SIREN's output before its final activation: coords (B, N, d) or (N, d); weights (B, K+1, M).

    With gradients, each hidden pre-activation is kept for backward (which recomputes the sines
    from them); without, each is freed as soon as the next layer has read it. ``tiles``: settings
    per kernel that replace the built-in tile rule, as :func:`encode_tiles` writes them.
    ``grad_precision``: the scheme of the backward pass's products (None: ``precision``).
    """
    grad_precision = precision if grad_precision is None else grad_precision
    for p in (precision, grad_precision):
        if p not in PRECISIONS:
            raise ValueError(f"unknown matmul precision '{p}' (expected one of {', '.join(PRECISIONS)})")
    weights = [w.float() for w in weights]
    coords = coords.float()
    keep = torch.is_grad_enabled() and (coords.requires_grad or any(w.requires_grad for w in weights))
    return _stack(coords, weights, float(w0_initial), float(w0), precision, grad_precision, tiles, keep)[-1]
