"""The GPU-speed benchmark: training steps, sampling and rendering against the card's own ceilings.

One command, one GPU call of at most ~10 minutes:

    python benchmarks/gpu_bench.py --out $OUT/bench [--budget-s 540] [--sections ceil,kernel,tiles,opt,profile,large,e2e,presets,sample]
    python benchmarks/gpu_bench.py --out $OUT/ddp --sections ceil,e2e --devices 2    # on a two-GPU machine

Writes ``bench.json`` (updated after every measurement, so a cut-off run keeps what it measured)
and ``bench.md`` under --out, with card, date, torch/triton versions and the command.

Sections:
- ``ceil``: the card's dense bf16 matmul rate (8192³) and batched-matmul rates at the INR's shape
  (fp32, tf32, bf16): the denominators of every MFU and rendering share below.
- ``kernel``: the fused SIREN sine layers (inrkit/inrs/fused_sine.py) per matmul precision: error
  of outputs and gradients against an fp64 reference, and forward/backward time against the
  PyTorch fp32 path.
- ``opt``: image-64 paper preset, stage 1, batch 32: each optimisation switched on in turn, time
  per step through the real trainer (``Trainer.fit`` on the built-in faces), speed-up over fp32
  eager of the same code, peak memory.
- ``presets``: the three paper presets with ``hd`` and ``mlp``, fastest eager settings, at the
  preset batch and at larger batches (items/s, MFU from FLOPs counted by FlopCounterMode).
- ``e2e``: ``inrkit train ldmi --preset paper`` end to end (subprocess; data loading included):
  the stage's items/s against the bare step.
- ``tiles``: the fused sine kernels at the training shape over a table of tile sizes, warps and
  pipeline stages (``--tiles-budget-s``); the fastest valid tiles are used by the later sections.
- ``large``: the image preset's stage 1 at a large batch (--large-batch, then the fastest variant at
  twice it), eager and ``torch.compile`` (default mode), with and without channels-last, compiled also
  with inductor's layout optimisation forced (``--large-variants``), each with
  a short profile: GPU busy share, launches per step and GPU time per kernel class (conv, norm, gemm,
  layout conversions, fused sine, optimizer ...).
- ``sample``: DDIM latents/s at 50 and 200 steps (eager and with the denoiser compiled), and
  rendering coordinates × INRs per second at 256² and 1024².
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import inrkit
from inrkit.data import open_dataset
from inrkit.inrs import fused_sine
from inrkit.train import Trainer
from inrkit_ldmi.model import LDMI
from inrkit_ldmi.config import LDMITrainConfig
from inrkit.recipe import Recipe

DEV = torch.device("cuda")
# The sizes the GPU-speed goals are stated for (encoder base 128): the presets that were
# "paper" until 2026-12-02, kept as inrkit-v1 when "paper" became the reference setup.
PRESET = "inrkit-v1"
SMOKE = False  # --smoke: CPU, tiny presets and sizes; checks the script itself, measures nothing
RESULTS: dict = {}
TILE_SETS: list[str] = []  # model.inr.tiles overrides found by the tiles section, used by the later training sections
T_START = time.perf_counter()
BUDGET = 540.0


def left() -> float:
    return BUDGET - (time.perf_counter() - T_START)


def save(out: Path) -> None:
    (out / "bench.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if DEV.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DEV.type == "cuda" else float("nan")


def bench_ms(fn, warmup: int = 3, reps: int = 10) -> float:
    """Median milliseconds of ``fn`` (CUDA events around each call)."""
    if SMOKE:
        warmup, reps = 1, 2
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        if DEV.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


# -- ceilings -------------------------------------------------------------------------------------

def ceilings() -> dict:
    out = {}
    m = 256 if SMOKE else 8192
    a = torch.randn(m, m, device=DEV, dtype=torch.bfloat16)
    b = torch.randn(m, m, device=DEV, dtype=torch.bfloat16)
    ms = bench_ms(lambda: a @ b)
    out["bf16_matmul_tflops"] = 2 * m**3 / ms / 1e9
    del a, b
    # the INR's shape: 8 INRs, 1024² coordinates, a 256×256 layer
    n = 1024 if SMOKE else 1024 * 1024
    x = torch.randn(8, n, 256, device=DEV)
    w = torch.randn(8, 256, 256, device=DEV)
    flops = 2 * 8 * n * 256 * 256
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        xx, ww = x.to(dtype), w.to(dtype)
        out[f"bmm_{name}_tflops"] = flops / bench_ms(lambda: torch.bmm(xx, ww)) / 1e9
        del xx, ww
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


# -- the fused kernel ---------------------------------------------------------------------------

def kernel_section() -> dict:
    from inrkit.inrs.siren import Siren, SirenConfig

    out = {}
    torch.manual_seed(0)
    b, n, width = (2, 64, 32) if SMOKE else (16, 4096, 256)
    ref_inr = Siren(SirenConfig(in_dim=2, out_dim=3, width=width, depth=4, kernel="torch"))
    init = ref_inr.init_params()
    params = {k: (v[None].repeat(b, 1, 1) * (1 + 0.2 * torch.randn(b, *v.shape))).to(DEV) for k, v in init.items()}
    coords = (torch.rand(n, 2, device=DEV) * 2 - 1)
    g = torch.randn(b, n, 3, device=DEV)

    def run(inr, dtype):
        ps = {k: v.to(dtype).requires_grad_() for k, v in params.items()}
        y = inr(ps, coords.to(dtype))
        grads = torch.autograd.grad((y * g.to(dtype)).sum(), list(ps.values()))
        return y.double(), [x.double() for x in grads]

    y64, g64 = run(ref_inr.double(), torch.float64)
    # each precision alone, then the default forward with a cheaper backward ("forward/backward")
    for prec in ("torch-fp32", *fused_sine.PRECISIONS, "bf16x3/bf16", "bf16x3/tf32"):
        if prec == "torch-fp32":
            inr = Siren(SirenConfig(in_dim=2, out_dim=3, width=width, depth=4, kernel="torch"))
        else:
            fwd, _, back = prec.partition("/")
            inr = Siren(SirenConfig(in_dim=2, out_dim=3, width=width, depth=4, kernel="triton", matmul_precision=fwd,
                                    backward_precision=back or "same"))
        try:
            y, grads = run(inr, torch.float32)
            rec = {"out_rel_err": float((y - y64).norm() / y64.norm()),
                   "grad_rel_err_max": max(float((a - r).norm() / r.norm()) for a, r in zip(grads, g64))}
            ps = {k: v.clone().requires_grad_() for k, v in params.items()}
            with torch.no_grad():
                rec["fwd_ms"] = bench_ms(lambda: inr(ps, coords))

            def fwd_bwd():
                y = inr(ps, coords)
                torch.autograd.grad((y * g).sum(), list(ps.values()))
            rec["fwd_bwd_ms"] = bench_ms(fwd_bwd)
            flops = 2 * b * n * sum(a * c for a, c in inr.param_shapes.values())
            rec["fwd_tflops"] = flops / rec["fwd_ms"] / 1e9
            reset_peak()
            fwd_bwd()
            rec["fwd_bwd_peak_gib"] = peak_gib()
        except Exception as err:  # a precision this Triton cannot compile is reported, not fatal
            rec = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
        out[prec] = rec
        print("kernel", prec, rec, flush=True)
    return out


# Tile candidates of the fused sine kernels: (output tile a, output tile b, reduction tile) in each
# kernel's BLOCKS order, each with 4 or 8 warps and 3 or 4 pipeline stages; the built-in rule first.
TILE_SHAPES = [(128, 128, 32), (128, 128, 64), (64, 128, 32), (128, 64, 64), (64, 256, 32), (128, 256, 32),
               (256, 128, 32), (256, 64, 32), (64, 64, 64)]


def tiles_section(out: Path, budget_s: float, grad_precision: str | None = None) -> dict:
    """The fused sine kernels at the training shape (B INRs × N coordinates, a 256-wide layer, the
    default precision) over TILE_SHAPES × warps × stages: time and TFLOP/s of each, its output
    against the built-in tiles'; the fastest valid one (≥ 3% faster) goes into TILE_SETS
    (``model.inr.tiles`` overrides), so the later training sections of this run use it.
    ``grad_precision``: the gradient kernels' scheme (``model.inr.backward_precision``; default the
    forward's), to sweep the tiles of a one-product bf16 backward, whose kernels are load-bound."""
    from inrkit.inrs.siren import SirenConfig

    prec = SirenConfig.model_fields["matmul_precision"].default
    gprec = grad_precision or prec
    if not fused_sine.available(DEV):
        return {"skipped": f"the fused kernels do not run on {DEV.type} here"}
    b, n, w = (2, 64, 32) if SMOKE else (64, 4096, 256)
    torch.manual_seed(0)
    x = torch.randn(b, n, w, device=DEV) * 0.1                 # a pre-activation (sine applied on load)
    wt = torch.randn(b, w + 1, w, device=DEV) / math.sqrt(w)
    g = torch.randn(b, n, w, device=DEV)
    nr = 256 if SMOKE else 131072                                # rendering: 8 INRs, a 131,072-point chunk
    xr = torch.randn(8, nr, w, device=DEV) * 0.1
    wr = wt[:8].contiguous()
    # name -> (kernel, call, FLOPs, whether its winner is used by the later sections)
    calls = {"forward": ("forward", lambda t: fused_sine.linear(x, wt, True, 30.0, prec, t), 2 * b * n * w * w, True),
             "grad_input": ("grad_input", lambda t: fused_sine.grad_input(g, wt, x, 30.0, gprec, t), 2 * b * n * w * w, True),
             "grad_weight": ("grad_weight", lambda t: fused_sine.grad_weight(x, g, True, 30.0, gprec, t), 2 * b * n * w * w, True),
             "render_forward": ("forward", lambda t: fused_sine.linear(xr, wr, True, 30.0, prec, t), 2 * 8 * nr * w * w, False)}
    shapes = TILE_SHAPES[:2] if SMOKE else TILE_SHAPES
    launches = [(2, 2)] if SMOKE else [(4, 3), (8, 3), (4, 4), (8, 4)]
    res: dict = {"shape": {"B": b, "N": n, "K": w, "M": w}, "render_shape": {"B": 8, "N": nr, "K": w, "M": w},
                 "precision": prec, "grad_precision": gprec, "kernels": {}}
    stop = time.perf_counter() + budget_s
    for i, (name, (kind, fn, flops, use)) in enumerate(calls.items()):
        names = fused_sine.BLOCKS[kind]
        kernel_stop = time.perf_counter() + (stop - time.perf_counter()) / (len(calls) - i)  # a fair share each
        ref = fn(None)
        base = bench_ms(lambda: fn(None))
        rows = [{"tiles": "built-in", "ms": base, "tflops": flops / base / 1e9}]
        for shape in shapes:
            for warps, stages in launches:
                if time.perf_counter() > kernel_stop or left() < 60:
                    break
                t = fused_sine.check_tiles(kind, {**dict(zip(names, shape)), "num_warps": warps, "num_stages": stages})
                row = {"tiles": t}
                try:
                    err = float((fn(t) - ref).norm() / ref.norm())
                    ms = bench_ms(lambda: fn(t))
                    row.update({"ms": ms, "tflops": flops / ms / 1e9, "rel_diff": err})
                except Exception as e:  # too much shared memory, a Triton that refuses the tile...
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                rows.append(row)
        valid = [r for r in rows[1:] if "ms" in r and r["rel_diff"] < 1e-4]
        best = min(valid, key=lambda r: r["ms"], default=None)
        applied = use and best is not None and best["ms"] < 0.97 * base
        if applied:
            TILE_SETS.extend(f"model.inr.tiles.{kind}.{k}={v}" for k, v in best["tiles"].items())
        res["kernels"][name] = {"kernel": kind, "built_in_ms": base, "best": best, "applied": applied,
                                "speedup": base / best["ms"] if best else None, "rows": rows}
        print("tiles", name, {k: v for k, v in res["kernels"][name].items() if k != "rows"}, flush=True)
        res["applied_sets"] = list(TILE_SETS)
        RESULTS["tiles"] = res
        save(out)
    return res


# -- training steps through the real trainer ----------------------------------------------------

def count_step_flops(modality: str, sets: list[str], batch: int) -> float:
    """Model FLOPs of one stage-1 step (forward + backward), counted on the PyTorch paths."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = Recipe.resolve("ldmi", PRESET, overrides=sets + ["model.inr.kernel=torch"], modality=modality).config
    model = LDMI.from_config(cfg).to(DEV)
    ds = open_dataset(model.domain, None, "train")
    x = torch.stack([ds[i % len(ds)] for i in range(batch)]).to(DEV)
    points = cfg["train"]["vae"].get("points")
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = model.stage_loss("vae", x, points=points, generator=torch.Generator().manual_seed(0))
        loss.backward()
    return float(counter.get_total_flops())


def trainer_steps(modality: str, sets: list[str], train: dict, steps: int, warm: int, profiler=None,
                  profile_steps: int = 0) -> dict:
    """Time steps ``warm+1..steps`` of stage 1 through ``Trainer.fit`` (no run directory); with
    ``profile_steps``, that many more steps run under ``profiler`` after the timed ones."""
    cfg = Recipe.resolve("ldmi", PRESET, overrides=sets + TILE_SETS + (["train.device=cpu"] if DEV.type == "cpu" else []),
                         modality=modality).config
    cfg["train"].update({k: v for k, v in train.items() if k != "vae"})
    total = steps + profile_steps
    cfg["train"]["vae"].update({"steps": total, "warmup": 0, **train.get("vae", {})})
    cfg["train"].update({"progress": False, "tensorboard": False, "log_every": total, "checkpoint_every": 0,
                         "sample_every": 0, "num_workers": 0})
    torch.manual_seed(0)
    model = LDMI.from_config(cfg)
    ds = open_dataset(model.domain, None, "train")
    marks = {}

    def on_step(stage, step, last):
        if step in (1, warm, steps, total):
            sync()
            marks[step] = time.perf_counter()
            if profiler is not None and step == (steps if profile_steps else warm):
                profiler.start()
            if profiler is not None and step == total:
                profiler.stop()

    reset_peak()
    t0 = time.perf_counter()
    trainer = Trainer(model, LDMITrainConfig(**cfg["train"]), None, on_step=on_step)
    summary = trainer.train_stage("vae", ds, trainer.stage_config("vae"))
    ms = (marks[steps] - marks[warm]) / (steps - warm) * 1e3
    batch = cfg["train"]["vae"]["batch_size"]
    out = {"step_ms": ms, "items_per_s": batch / ms * 1e3, "first_step_s": marks[1] - t0,
           "peak_gib": peak_gib(), "final_loss": summary["final"].get("loss"), "batch": batch}
    if profile_steps:
        out["profiled_wall_s"] = marks[total] - marks[steps]
    return out


NORM_NAMES = ("group_norm", "groupnorm", "welford", "batch_norm", "layer_norm")


def kernel_category(name: str) -> str:
    """A coarse class of a CUDA kernel, by its name (what the profile's time goes to). Inductor's
    kernels (``triton_*``) are named after every op they fused: they count as norm when a norm is
    among those ops, else as "inductor fused" (a fused ``permute`` is no layout conversion).
    Tables recorded before 2026-12-03's last call counted them by the first matching rule below
    (a fused permute as layout, a fused cast as copy / cast)."""
    n = name.lower()
    if n.startswith("triton_"):
        return "norm" if any(k in n for k in NORM_NAMES) else "inductor fused"
    rules = [("layout", ("nchwtonhwc", "nhwctonchw", "transpose", "permute")),
             ("optimizer", ("adam", "multi_tensor")),
             ("sine (fused)", ("_sine", "sine_", "forward_kernel", "grad_input_kernel", "grad_weight_kernel")),
             ("norm", NORM_NAMES),
             ("attention", ("flash", "fmha", "attention", "sdpa")),
             ("conv", ("conv", "cudnn", "implicit", "dgrad", "wgrad", "fprop", "xmma")),
             ("gemm", ("gemm", "cutlass", "cublas", "sm90_", "sm80_", "nvjet")),
             ("copy / cast", ("copy", "cast", "memcpy", "memset", "fill")),
             ("reduction", ("reduce",)),
             ("elementwise", ("elementwise", "vectorized", "unrolled"))]
    return next((cat for cat, keys in rules if any(k in n for k in keys)), "other")


def summarize_profile(prof, n: int, wall_s: float) -> dict:
    """GPU busy share, launches, copies and syncs per step, time per kernel class and top kernels."""
    events = prof.key_averages()
    cuda = [e for e in events if e.device_type.name == "CUDA"]
    gpu_us = sum(e.self_device_time_total for e in cuda)
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC",
                                                         "cuLaunchKernelEx", "cudaGraphLaunch"))
    copies = sum(e.count for e in events if e.key in ("cudaMemcpyAsync", "cudaMemcpy"))
    syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    cats: dict[str, float] = {}
    for e in cuda:
        c = kernel_category(e.key)
        cats[c] = cats.get(c, 0.0) + e.self_device_time_total / 1e3 / n
    top = sorted(cuda, key=lambda e: -e.self_device_time_total)[:15]
    return {"steps": n, "gpu_busy_share": gpu_us / 1e6 / wall_s if wall_s else None,
            "gpu_ms_per_step": gpu_us / 1e3 / n,
            "launches_per_step": launches / n, "copies_per_step": copies / n, "syncs_per_step": syncs / n,
            "ms_per_step_by_class": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
            "top_kernels": [{"name": e.key[:90], "ms_per_step": e.self_device_time_total / 1e3 / n, "count": e.count} for e in top]}


EAGER_FP32 = {"precision": "fp32", "optimizer": "default", "channels_last": False, "data_on_device": "never", "compile": False}
FAST_EAGER = {"precision": "bf16", "optimizer": "fused", "data_on_device": "auto", "channels_last": False, "compile": False}
TORCH_INR, FUSED_INR = ["model.inr.kernel=torch"], ["model.inr.kernel=triton", "model.inr.matmul_precision=bf16x3"]
VARIANTS = [  # each adds one optimisation to the row before it, except the "instead" row
    ("fp32 eager (the old path)", TORCH_INR, EAGER_FP32),
    ("+ bf16 autocast", TORCH_INR, {**EAGER_FP32, "precision": "bf16"}),
    ("+ fused AdamW", TORCH_INR, {**EAGER_FP32, "precision": "bf16", "optimizer": "fused"}),
    ("+ data on device", TORCH_INR, FAST_EAGER),
    ("(instead) + channels-last", TORCH_INR, {**FAST_EAGER, "channels_last": True}),
    ("+ fused sine kernel (bf16x3)", FUSED_INR, FAST_EAGER),
    ("+ torch.compile", FUSED_INR, {**FAST_EAGER, "compile": True}),
    ("+ torch.compile reduce-overhead (CUDA graphs)", FUSED_INR, {**FAST_EAGER, "compile": "reduce-overhead"}),
]


def opt_section(out: Path) -> dict:
    res = {}
    variants = VARIANTS
    base = None
    for name, sets, train in variants:
        if left() < 60:
            res[name] = {"skipped": "time budget"}
            continue
        try:
            compiled = bool(train.get("compile"))
            steps, warm = (4, 2) if SMOKE else ((40, 15) if compiled else (30, 8))
            r = trainer_steps("image", sets, train, steps=steps, warm=warm)
        except Exception as err:
            r = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
        r["compiled"] = compiled
        if "step_ms" in r:
            base = base or r["step_ms"]
            r["speedup_vs_fp32_eager"] = base / r["step_ms"]
        res[name] = r
        print("opt", name, r, flush=True)
        RESULTS["opt"] = res
        save(out)
    return res


def profile_section(train: dict, sets: list[str], steps: int = 20, warm: int = 8) -> dict:
    """Where a steady step's time goes: GPU busy share, kernel launches and copies per step, top kernels."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV.type == "cuda" else [])
    prof = profile(activities=acts)
    r = trainer_steps("image", sets, train, steps=steps, warm=warm, profiler=prof)
    n = steps - warm
    return {"step_ms": r["step_ms"], **summarize_profile(prof, n, r["step_ms"] * n / 1e3), "settings": {**train, "sets": sets}}


LARGE_VARIANTS = {  # image-64, stage 1, at a large batch: where the eager step's time goes, and what compile buys
    # name -> (label, --set items, trainer settings, inductor options)
    "eager": ("eager", FUSED_INR, FAST_EAGER, {}),
    "eager-cl": ("eager + channels-last", FUSED_INR, {**FAST_EAGER, "channels_last": True}, {}),
    "compile": ("compile (default mode)", FUSED_INR, {**FAST_EAGER, "compile": True}, {}),
    "compile-cl": ("compile (default mode) + channels-last", FUSED_INR, {**FAST_EAGER, "compile": True, "channels_last": True}, {}),
    # inductor's own choice of channels-last for the graph's convolutions, forced on (its heuristic
    # can turn it off, e.g. for a graph with many nodes per convolution)
    "compile-lo": ("compile (default mode) + inductor layout optimisation forced", FUSED_INR,
                   {**FAST_EAGER, "compile": True}, {"force_layout_optimization": True}),
    # the channels-last step (the fastest on 2026-12-04) with inductor tuning its own kernels: block
    # sizes of the fused GroupNorm/pointwise reductions by coordinate descent, or (slow to compile,
    # run it last) autotuned matmul/convolution templates as well
    "compile-cl-cdt": ("compile (default mode) + channels-last + coordinate-descent tuning", FUSED_INR,
                       {**FAST_EAGER, "compile": True, "channels_last": True}, {"coordinate_descent_tuning": True}),
    "compile-cl-at": ("compile (max-autotune-no-cudagraphs) + channels-last", FUSED_INR,
                      {**FAST_EAGER, "compile": "max-autotune-no-cudagraphs", "channels_last": True}, {}),
    # the channels-last step with the fused sine layers' backward products in plain bf16 (one product
    # instead of bf16x3's three; the forward keeps bf16x3): model.inr.backward_precision
    "compile-cl-gb": ("compile (default mode) + channels-last + sine backward in bf16", [*FUSED_INR, "model.inr.backward_precision=bf16"],
                      {**FAST_EAGER, "compile": True, "channels_last": True}, {}),
    "compile-cl-gb-cdt": ("compile (default mode) + channels-last + sine backward in bf16 + coordinate-descent tuning",
                          [*FUSED_INR, "model.inr.backward_precision=bf16"],
                          {**FAST_EAGER, "compile": True, "channels_last": True}, {"coordinate_descent_tuning": True}),
}


def _inductor_options(options: dict):
    """torch._inductor.config patched with ``options`` (none: no change) while a variant compiles."""
    if not options:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return inductor_config.patch(options)


def large_section(out: Path, peak: float, batch: int, variants: list[str] | None = None, twice: bool = True) -> dict:
    """The image preset's step at a large batch, eager and compiled, each with a short profile
    (time per kernel class), MFU from FLOPs counted at batch 32; then the fastest at twice the batch."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV.type == "cuda" else [])
    flops_item = count_step_flops("image", [], 32) / 32
    res: dict = {"flops_per_item": flops_item, "batch": batch, "rows": {}}
    chosen = [LARGE_VARIANTS[v] for v in variants or LARGE_VARIANTS]
    runs = [(*spec, batch) for spec in chosen]
    done = 0
    while runs:
        name, sets, train, ind, b = runs.pop(0)
        compiled = bool(train.get("compile"))
        # seconds a variant needs; inductor tuning its kernels compiles for minutes (compile-cl-cdt
        # did not finish in the ~200 s a call had left on 2026-12-04, and took the call past its limit)
        tuned = any(k.endswith("tuning") for k in ind) or str(train.get("compile")).startswith("max-autotune")
        need = 360 if tuned else (150 if compiled else 45)
        if left() < need:
            res["rows"][f"{name} @ {b}"] = {"skipped": "time budget"}
            continue
        steps, warm, prof_n = (4, 2, 1) if SMOKE else ((18, 8, 3) if compiled else (16, 6, 3))
        if compiled:  # compile afresh: dynamo's cache would hand a later variant the graph (and inductor options) of an earlier one
            torch._dynamo.reset()
        prof = profile(activities=acts)
        try:
            with _inductor_options(ind):
                r = trainer_steps("image", sets, {**train, "vae": {"batch_size": b}}, steps=steps, warm=warm,
                                  profiler=prof, profile_steps=prof_n)
            r["mfu"] = flops_item * b / (r["step_ms"] / 1e3) / (peak * 1e12)
            r["profile"] = summarize_profile(prof, prof_n, r.pop("profiled_wall_s"))
        except torch.OutOfMemoryError:
            r = {"oom": True}
        except Exception as err:
            r = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
        r["compiled"] = compiled
        res["rows"][f"{name} @ {b}"] = r
        print("large", name, b, {k: v for k, v in r.items() if k != "profile"}, flush=True)
        torch.cuda.empty_cache() if DEV.type == "cuda" else None
        done += 1
        if done == len(chosen) and twice:
            timed = {k: v for k, v in res["rows"].items() if "step_ms" in v}
            if timed:
                best = min(timed, key=lambda k: timed[k]["step_ms"])
                spec = next(v for v in chosen if best.startswith(v[0] + " @"))
                runs.append((*spec, 2 * batch))
        RESULTS["large"] = res
        save(out)
    return res


def presets_section(out: Path, peak: float, best_train: dict, best_sets: list[str]) -> dict:
    res = {}
    for modality in ("image", "sphere", "occupancy"):
        for hypernet in ("hd", "mlp"):
            sets = best_sets + ([] if hypernet == "hd" else ["model.hypernet.name=mlp"])
            key = f"{modality}/{hypernet}"
            try:
                flops32 = count_step_flops(modality, [x for x in sets if not x.startswith("model.inr.")], 32)
            except Exception as err:
                res[key] = {"error": f"flops: {type(err).__name__}: {str(err)[:200]}"}
                continue
            rows = []
            for batch in ((4, 8) if SMOKE else (32, 128, 512)):
                if left() < 45:
                    rows.append({"batch": batch, "skipped": "time budget"})
                    break
                train = {**best_train, "vae": {"batch_size": batch}}
                try:
                    r = trainer_steps(modality, sets, train, steps=4 if SMOKE else 25, warm=2 if SMOKE else 10)
                    r["tflop_per_step"] = flops32 * batch / 32 / 1e12
                    r["mfu"] = r["tflop_per_step"] * 1e12 / (r["step_ms"] / 1e3) / (peak * 1e12)
                except torch.OutOfMemoryError:
                    r = {"batch": batch, "oom": True}
                except Exception as err:
                    r = {"batch": batch, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
                rows.append(r)
                print("preset", key, r, flush=True)
                torch.cuda.empty_cache()
                if r.get("oom"):
                    break
            res[key] = {"flops_per_item": flops32 / 32, "rows": rows}
            RESULTS["presets"] = res
            save(out)
    return res


def e2e_section(out: Path, best_sets: list[str], steps: int = 150, batch: int = 256, devices: int = 1,
                compile_modes: tuple[str, ...] = (), modalities: tuple[str, ...] = ("image", "sphere", "occupancy"),
                extra_sets: tuple[str, ...] = ()) -> dict:
    """``inrkit train`` as a user runs it; with ``devices`` > 1 also on one GPU, for the DDP speed-up
    (``batch`` is per process, so both runs see the same items per process and step); each of
    ``compile_modes`` (``train.compile`` values) trains each modality once more on one GPU, compiled."""
    res = {}
    runs = [(m, d, None) for m in modalities for d in sorted({1, devices})]
    runs += [(m, 1, mode) for m in modalities for mode in compile_modes]
    # NVLink multicast stays off (a program using it can take the host's GPUs down for others)
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
    for modality, n_dev, mode in runs:
        key = modality if n_dev == 1 else f"{modality} ×{n_dev} GPUs"
        key += f" compile={mode}" if mode else ""
        if left() < 70:
            res[key] = {"skipped": "time budget"}
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "inrkit_cli.main", "train", "ldmi", "--modality", modality, "--preset", PRESET,
                   "--out", str(run), "--stage", "vae",
                   "--set", f"train.vae.steps={steps}", "--set", f"train.vae.batch_size={batch}",
                   "--set", "train.vae.lr_scaling=sqrt", "--set", "train.vae.lr_reference_batch=32",
                   "--set", "train.progress=false", "--set", "train.tensorboard=false",
                   "--set", "train.checkpoint_every=0", "--set", "train.sample_every=0", "--set", "train.log_every=25",
                   *[x for s in best_sets + TILE_SETS for x in ("--set", s)], "--devices", str(n_dev),
                   *(("--set", f"train.compile={mode}") if mode else ()),
                   *[x for s in extra_sets for x in ("--set", s)]]  # --e2e-set last: it overrides everything
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            rec = {"command": " ".join(cmd[1:]), "wall_s": wall, "rc": proc.returncode, "batch": batch}
            if proc.returncode == 0 and (run / "summary.json").exists():
                summ = json.loads((run / "summary.json").read_text())
                vae = summ.get("stages", summ).get("vae", {})
                rec.update({"items_per_s": vae.get("items_per_s"), "first_step_s": vae.get("first_step_s"),
                            "train_wall_s": vae.get("wall_time_s")})
                metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
                rates = [m["items_per_s"] for m in metrics if m.get("items_per_s")]
                rec["steady_items_per_s"] = rates[-1] if rates else None
            else:
                rec["stderr_tail"] = proc.stderr[-800:]
            rec["devices"] = n_dev
            rec["compile"] = mode or False
            res[key] = rec
            print("e2e", key, rec, flush=True)
            RESULTS["e2e"] = res
            save(out)
    return res


def sample_section(out: Path, bmm: dict) -> dict:
    res = {}
    cfg = Recipe.resolve("ldmi", PRESET, modality="sphere").config
    model = LDMI.from_config(cfg).to(DEV).eval()
    for compiled in (False, True):
        if compiled:
            model.prior.denoiser = torch.compile(model.prior.denoiser)
        for steps in (50, 200):
            if left() < 30:
                break
            n = 4 if SMOKE else 256
            steps_run = 2 if SMOKE else steps
            fn = lambda: model.sample_latents(n, steps=steps_run, seed=0)
            fn()  # warm-up (and compilation)
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            dt = time.perf_counter() - t0
            res[f"ddim{steps}{'_compiled' if compiled else ''}"] = {"n": n, "seconds": dt, "latents_per_s": n / dt}
            print("sample", steps, compiled, dt, flush=True)
    # rendering: 8 image INRs (SIREN 2→256×4→3) at 256² and 1024²
    img = LDMI.from_preset("image", PRESET).to(DEV).eval()
    z = torch.randn(8, *img.latent_shape, device=DEV)
    with torch.no_grad():
        params = {k: v.float() for k, v in img.hypernet(z).items()}
    inr_flops_per_coord = 2 * sum(a * c for a, c in img.inr.param_shapes.values())
    for kernel in ("torch", "triton"):
        img.inr.config = img.inr.config.model_copy(update={"kernel": kernel})
        for res_px in ((16, 32) if SMOKE else (256, 1024)):
            coords = img.domain.grid((res_px, res_px)).to(DEV)
            with torch.no_grad():
                ms = bench_ms(lambda: img.inr.evaluate(params, coords, chunk=1 << 20), warmup=2, reps=5)
            n = 8 * coords.shape[0]
            tflops = n * inr_flops_per_coord / ms / 1e9
            res[f"render_{kernel}_{res_px}"] = {"ms": ms, "coords_x_inrs_per_s": n / ms * 1e3, "tflops": tflops,
                                                "share_of_bmm_bf16": tflops / bmm["bmm_bf16_tflops"],
                                                "share_of_bmm_fp32": tflops / bmm["bmm_fp32_tflops"]}
            print("render", kernel, res_px, res[f"render_{kernel}_{res_px}"], flush=True)
    RESULTS["sample"] = res
    save(out)
    return res


def markdown() -> str:
    r = RESULTS
    lines = [f"# GPU benchmark — {r['env']['card']}, {r['env']['date']}, preset {r['env'].get('preset')}",
             "", f"torch {r['env']['torch']}, triton {r['env']['triton']}; command: `{r['env']['command']}`", ""]
    c = r.get("ceil", {})
    if c:
        lines += ["## Ceilings (measured in this run)", "", "| what | TFLOP/s |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in c.items()] + [""]
    if r.get("kernel"):
        lines += ["## Fused sine layers (B=16, N=4096, SIREN 2→256×4→3)", "",
                  "| path | out rel. err vs fp64 | grad rel. err (max) | fwd ms | fwd TFLOP/s | fwd+bwd ms | peak GiB |",
                  "|---|---|---|---|---|---|---|"]
        for k, v in r["kernel"].items():
            if "error" in v:
                lines.append(f"| {k} | {v['error']} | | | | | |")
            else:
                lines.append(f"| {k} | {v['out_rel_err']:.1e} | {v['grad_rel_err_max']:.1e} | {v['fwd_ms']:.2f} |"
                             f" {v['fwd_tflops']:.1f} | {v['fwd_bwd_ms']:.2f} | {v['fwd_bwd_peak_gib']:.2f} |")
        lines.append("")
    if r.get("opt"):
        lines += ["## Image-64 paper preset, stage 1, batch 32: one optimisation at a time (Trainer.fit, built-in faces)", "",
                  "| variant | ms/step | items/s | speed-up vs fp32 eager | first step s | peak GiB |", "|---|---|---|---|---|---|"]
        for k, v in r["opt"].items():
            if "step_ms" in v:
                lines.append(f"| {k} | {v['step_ms']:.1f} | {v['items_per_s']:.0f} | {v['speedup_vs_fp32_eager']:.2f}× |"
                             f" {v['first_step_s']:.1f} | {v['peak_gib']:.1f} |")
            else:
                lines.append(f"| {k} | {v.get('error') or v.get('skipped')} | | | | |")
        lines.append("")
    if r.get("presets"):
        lines += ["## Paper presets, stage 1, fastest settings (MFU against the measured bf16 matmul rate)", "",
                  "| preset / hypernet | batch | ms/step | items/s | TFLOP/step | MFU | peak GiB |", "|---|---|---|---|---|---|---|"]
        for k, v in r["presets"].items():
            for row in v.get("rows", [{"error": v.get("error")}]):
                if "step_ms" in row:
                    lines.append(f"| {k} | {row['batch']} | {row['step_ms']:.1f} | {row['items_per_s']:.0f} |"
                                 f" {row['tflop_per_step']:.2f} | {100 * row['mfu']:.1f}% | {row['peak_gib']:.1f} |")
                else:
                    lines.append(f"| {k} | {row.get('batch', '')} | {'OOM' if row.get('oom') else row.get('error') or row.get('skipped')} | | | | |")
        lines.append("")
    if r.get("e2e"):
        first = next((v for v in r["e2e"].values() if "command" in v), {})
        steps = next((a.split("=", 1)[1] for a in first.get("command", "").split() if a.startswith("train.vae.steps=")), "?")
        lines += [f"## `inrkit train ldmi --preset {PRESET}` end to end (stage 1, {steps} steps at batch {first.get('batch', '?')};"
                  " items/s of the stage include its first step, compilation and kernel JIT included)", "",
                  "| modality | items/s (stage) | items/s (last window) | first step s | command wall s |", "|---|---|---|---|---|"]
        for k, v in r["e2e"].items():
            lines.append(f"| {k} | {v.get('items_per_s')} | {v.get('steady_items_per_s')} | {v.get('first_step_s')} |"
                         f" {v.get('wall_s', 0):.0f} |" if "wall_s" in v else f"| {k} | {v} | | | |")
        lines.append("")
    p = r.get("profile")
    if p and "error" not in p:
        lines += [f"## Profile of the fastest eager variant (image-64, batch 32, {p['steps']} steady steps)", "",
                  f"{p['step_ms']:.1f} ms/step; GPU busy {100 * (p['gpu_busy_share'] or 0):.0f}% of wall time;"
                  f" {p['launches_per_step']:.0f} kernel launches, {p['copies_per_step']:.1f} memcpy calls and"
                  f" {p['syncs_per_step']:.1f} synchronize calls per step.", "",
                  "| kernel | ms per step | calls |", "|---|---|---|"]
        lines += [f"| {k['name']} | {k['ms_per_step']:.2f} | {k['count']} |" for k in p["top_kernels"]] + [""]
    tl = r.get("tiles")
    if tl and "kernels" in tl:
        sh, rs = tl["shape"], tl.get("render_shape", {})
        lines += [f"## Fused sine kernel tiles (B={sh['B']}, N={sh['N']}, {sh['K']}→{sh['M']}, {tl['precision']})", "",
                  f"`render_forward` is the forward kernel at a rendering chunk (B={rs.get('B')}, N={rs.get('N')}); recorded only.", "",
                  "Later training sections of this run use the fastest valid tiles where they beat the built-in rule by ≥ 3%"
                  f" ({', '.join(f'`{x}`' for x in tl.get('applied_sets', [])) or 'none did'}).", "",
                  "| kernel | built-in ms | built-in TFLOP/s | fastest tiles | ms | TFLOP/s | speed-up | applied | tried (failed) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for kind, v in tl["kernels"].items():
            bt = v["best"] or {}
            tried = len(v["rows"]) - 1
            failed = sum(1 for x in v["rows"] if "error" in x)
            lines.append(f"| {kind} | {v['built_in_ms']:.3f} | {v['rows'][0]['tflops']:.1f} | {bt.get('tiles', '-')} |"
                         f" {bt.get('ms', float('nan')):.3f} | {bt.get('tflops', float('nan')):.1f} |"
                         f" {(v['speedup'] or float('nan')):.2f}× | {'yes' if v['applied'] else 'no'} | {tried} ({failed}) |")
        lines.append("")
    lg = r.get("large")
    if lg:
        lines += [f"## Image-64 stage 1 at large batches: eager and compiled, with where the GPU time goes", "",
                  "| variant @ batch | ms/step | items/s | MFU | first step s | peak GiB | GPU busy | launches/step | GPU ms per step by kernel class |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for k, v in lg["rows"].items():
            if "step_ms" in v:
                p = v["profile"]
                cls = ", ".join(f"{c} {ms:.1f}" for c, ms in p["ms_per_step_by_class"].items() if ms >= 0.5)
                lines.append(f"| {k} | {v['step_ms']:.1f} | {v['items_per_s']:.0f} | {100 * v['mfu']:.1f}% | {v['first_step_s']:.1f} |"
                             f" {v['peak_gib']:.1f} | {100 * (p['gpu_busy_share'] or 0):.0f}% | {p['launches_per_step']:.0f} | {cls} |")
            else:
                lines.append(f"| {k} | {'OOM' if v.get('oom') else v.get('error') or v.get('skipped')} | | | | | | | |")
        lines.append("")
    if r.get("sample"):
        lines += ["## Sampling and rendering", "", "| what | numbers |", "|---|---|"]
        lines += [f"| {k} | {json.dumps({a: round(b, 4) if isinstance(b, float) else b for a, b in v.items()})} |"
                  for k, v in r["sample"].items()] + [""]
    return "\n".join(lines)


def main() -> None:
    global BUDGET, DEV, PRESET, SMOKE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=540.0)
    ap.add_argument("--sections", default="ceil,kernel,opt,profile,sample,presets,e2e")
    ap.add_argument("--preset", default=PRESET, help="preset of every modality (default inrkit-v1; paper = the reference setup)")
    ap.add_argument("--devices", type=int, default=1,
                    help="e2e: also train on this many GPUs (inrkit train --devices N: DDP over NCCL), against one")
    ap.add_argument("--e2e-compile", default="",
                    help="e2e: also train each modality with these train.compile modes (e.g. reduce-overhead,default)")
    ap.add_argument("--e2e-modalities", default="image,sphere,occupancy")
    ap.add_argument("--e2e-batch", type=int, default=256, help="e2e: the stage-1 batch (lr by the sqrt rule from 32)")
    ap.add_argument("--e2e-steps", type=int, default=150, help="e2e: stage-1 steps of each run")
    ap.add_argument("--e2e-set", action="append", default=[], metavar="PATH=VALUE",
                    help="e2e: one more --set for every run (repeatable), e.g. train.channels_last=true")
    ap.add_argument("--tiles-budget-s", type=float, default=150.0, help="tiles: seconds for the whole sweep (a fair share per kernel)")
    ap.add_argument("--tiles-grad-precision", default=None, choices=fused_sine.PRECISIONS,
                    help="tiles: the gradient kernels' precision (e.g. bf16, the opt-in backward; default: the forward's)")
    ap.add_argument("--large-variants", default="eager,eager-cl,compile,compile-cl,compile-lo",
                    help="large: which variants (eager, eager-cl, compile, compile-cl, compile-lo, compile-cl-cdt,"
                         " compile-cl-at, compile-cl-gb, compile-cl-gb-cdt; -cl = channels-last, -lo = inductor's layout optimisation"
                         " forced on, -cdt = coordinate-descent tuning, -at = max-autotune, -gb = the sine layers'"
                         " backward in bf16)")
    ap.add_argument("--large-batch", type=int, default=512, help="large: the batch of the image-preset variants (then twice it)")
    ap.add_argument("--no-large-twice", dest="large_twice", action="store_false",
                    help="large: skip the fastest variant at twice the batch (at 2,048 the image step fails in cuDNN's attention)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny presets: check the script runs (numbers mean nothing)")
    args = ap.parse_args()
    unknown = [v for v in args.large_variants.split(",") if v and v not in LARGE_VARIANTS]
    if unknown:
        ap.error(f"--large-variants: unknown {', '.join(unknown)} (expected {', '.join(LARGE_VARIANTS)})")
    BUDGET = args.budget_s
    PRESET = args.preset
    if args.smoke:
        DEV, PRESET, SMOKE = torch.device("cpu"), "tiny", True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = args.sections.split(",")
    try:
        import triton
        triton_version = triton.__version__
    except Exception:
        triton_version = None
    RESULTS["env"] = {"card": torch.cuda.get_device_name() if DEV.type == "cuda" else "cpu (smoke)", "date": datetime.date.today().isoformat(),
                      "torch": torch.__version__, "triton": triton_version, "inrkit": inrkit.__version__,
                      "python": platform.python_version(), "command": "python " + " ".join(sys.argv), "preset": PRESET}
    torch.backends.cuda.matmul.allow_tf32 = False
    RESULTS["ceil"] = ceilings()
    print("ceilings", RESULTS["ceil"], flush=True)
    save(out)
    peak = RESULTS["ceil"]["bf16_matmul_tflops"]
    if "kernel" in sections:
        RESULTS["kernel"] = kernel_section()
        save(out)
    if "tiles" in sections:
        RESULTS["tiles"] = tiles_section(out, args.tiles_budget_s, args.tiles_grad_precision)
        save(out)
    best, best_sets = FAST_EAGER, FUSED_INR
    if "opt" in sections:
        opt = opt_section(out)
        timed = {k: v for k, v in opt.items() if "step_ms" in v and not v.get("compiled")}
        if timed:
            RESULTS["fastest_eager_variant"] = min(timed, key=lambda k: timed[k]["step_ms"])
            best_sets, best = next((s_, t) for n, s_, t in VARIANTS if n == RESULTS["fastest_eager_variant"])
    if "profile" in sections:
        try:
            RESULTS["profile"] = profile_section(best, best_sets)
        except Exception as err:
            RESULTS["profile"] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
        print("profile", RESULTS["profile"], flush=True)
        save(out)
    if "large" in sections:
        large_section(out, peak, args.large_batch, [v for v in args.large_variants.split(",") if v], args.large_twice)
    if "e2e" in sections:
        # as a user trains: channels-last by its default (auto: on when compiled on CUDA)
        e2e_train = {**best, "channels_last": "auto"}
        e2e_section(out, [f"train.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in e2e_train.items()] + best_sets,
                    steps=args.e2e_steps, batch=args.e2e_batch, devices=args.devices, compile_modes=tuple(m for m in args.e2e_compile.split(",") if m),
                    modalities=tuple(m for m in args.e2e_modalities.split(",") if m), extra_sets=tuple(args.e2e_set))
    if "presets" in sections:
        presets_section(out, peak, best, best_sets)
    if "sample" in sections:
        sample_section(out, RESULTS["ceil"])
    RESULTS["elapsed_s"] = time.perf_counter() - T_START
    save(out)
    (out / "bench.md").write_text(markdown())
    print(markdown())


if __name__ == "__main__":
    main()
