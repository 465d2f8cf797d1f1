"""The hypernetwork comparison on one GPU, in one command: ``inrkit compare`` at paper size.

LDMI stage 1 on the CelebA-HQ 64 preset (``image``/``paper``: 64×64 RGB, latent 3×16×16, HD dim
192 with 6+6 layers; without ``--data`` the built-in LFW faces at 64×64) is trained once per
hypernetwork (hd, GASP's mlp, VAMoH's mixture), seed (2) and SIREN width (depth 4; widths 64,
256, 1024), with the same budget (100 steps of 32 items), and measured: parameters, held-out
PSNR/SSIM, training items/s after warm-up, CUDA peak memory while training, decode time. Points
that cannot fit the GPU (or the disk, for their checkpoint) are recorded as such. The defaults
took 413 s on one H200 (benchmarks/results-compare-h200); more widths or seeds take longer.

Writes four files under ``--out`` (compare.json, compare.md, reconstructions.png, scaling.png);
the run directories go under ``--work`` and keep logs, configs and renders but no weights
(``--keep logs``: the MLP heads of the wide points would fill the disk).

    python benchmarks/gpu_compare.py --out $OUT/compare
    python benchmarks/gpu_compare.py --out results --data /data/celeba_hq --steps 2000 --seeds 3

A killed run continues with ``--resume`` and the same ``--work``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from inrkit_ldmi.compare import compare
from inrkit_ldmi.compare.report import rich_tables

# Not part of what is measured: fewer DDIM steps for the post-stage previews, no event files.
QUIET = ["train.tensorboard=false", "train.progress=false", "train.sample_steps=10", "train.n_renders=8"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="where compare.json/.md and the figures go")
    ap.add_argument("--work", type=Path, default=None, help="run directories (default: a folder under /tmp)")
    ap.add_argument("--data", type=Path, default=None, help="a folder of face images (default: built-in LFW)")
    ap.add_argument("--modality", default="image")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--hypernets", default="hd,mlp,mixture")
    ap.add_argument("--widths", default="64,256,1024", help="SIREN widths swept (inr.width)")
    ap.add_argument("--steps", type=int, default=100, help="training steps of every run")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget of every run instead of/with --steps")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra overrides (repeatable)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_compare.py needs a CUDA GPU (inrkit compare --device cpu runs anywhere)")

    work = args.work or Path(tempfile.mkdtemp(prefix="inrkit-gpu-compare-"))
    t0 = time.perf_counter()
    report = compare(hypernets=args.hypernets, modality=args.modality, data=args.data, preset=args.preset,
                     budget_steps=args.steps, budget_minutes=args.minutes, seeds=args.seeds,
                     sweep=f"inr.width={args.widths}", out=work, set_overrides=[*QUIET, *args.sets], device="cuda",
                     keep="logs", resume=args.resume, overwrite=not args.resume,
                     log=lambda msg: print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True))
    from rich.console import Console

    console = Console(width=200)
    for table in rich_tables(report, max_metrics=2):
        console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("compare.json", "compare.md", report["files"]["reconstructions"], report["files"]["scaling_plot"]):
        if name:
            shutil.copy2(work / name, args.out / name)
    print(f"{time.perf_counter() - t0:.0f} s; wrote {args.out}/compare.json, compare.md and the figures; runs in {work}")


if __name__ == "__main__":
    main()
