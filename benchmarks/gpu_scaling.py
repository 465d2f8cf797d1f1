"""Hypernetwork scaling on one GPU: parameters, decode cost and the largest trainable INR.

For SIREN 2→W×4→3 INRs of growing width W, each hypernetwork (HD with the CelebA-HQ 64 preset
over a 3×16×16 latent; GASP-style MLP over a 64-d latent) is measured for
  * parameters (hypernet, INR, ratio) and one batched decode's time and peak memory
    (inrkit.scale.scale_report), and
  * one training step (forward + backward of hypernet and INR on a 64×64 grid, batch 8, fp32
    and bf16 autocast): peak memory, or "oom".
Writes JSON and a markdown table under --out.

    python benchmarks/gpu_scaling.py --out $OUT/scaling
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import inrkit
from inrkit.scale import coordinate_grid, scale_report

HD = {"name": "hd", "dim": 192, "encoder_depth": 6, "decoder_depth": 6, "n_heads": 6, "head_dim": 48,
      "ff_dim": 768, "patch_size": 2, "latent_shape": [3, 16, 16]}
MLP = {"name": "mlp", "hidden": [256, 512], "latent_shape": [64]}


def train_step_memory(spec: dict, width: int, device, dtype) -> dict:
    spec = dict(spec)
    latent_shape = tuple(spec.pop("latent_shape"))
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        with torch.device(device):  # build on the GPU: a CPU build of a huge MLP head takes minutes
            inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=3, width=width, depth=4)
            hn = inrkit.build("hypernets", spec.pop("name"), context={"inr": inr, "latent_shape": latent_shape}, **spec)
        coords = coordinate_grid(64, 2, device)
        z = torch.randn(8, *latent_shape, device=device)
        target = torch.rand(8, coords.shape[0], 3, device=device)
        times = []
        for _ in range(3):
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                out = hn.decode(z, coords, chunk=None)
                loss = (out.float() - target).pow(2).mean()
            loss.backward()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
            hn.zero_grad(set_to_none=True)
        return {"status": "ok", "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30,
                "step_ms": 1000 * sorted(times)[1]}
    except torch.cuda.OutOfMemoryError:
        return {"status": "oom"}
    finally:
        for name in ("hn", "inr", "out", "loss", "z", "target"):
            locals().pop(name, None)
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--widths", default="64,128,256,512,1024,2048,4096")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda")
    rows = []
    for width in [int(w) for w in args.widths.split(",")]:
        inr_spec = {"name": "siren", "in_dim": 2, "out_dim": 3, "width": width, "depth": 4}
        for spec in (HD, MLP):
            row = {"hypernet": spec["name"], "width": width}
            inr_params = inrkit.build("inrs", "siren", **{k: v for k, v in inr_spec.items() if k != "name"}).num_params
            if spec["name"] == "mlp" and 513 * inr_params * 4 * 2 > 0.9 * torch.cuda.get_device_properties(device).total_memory:
                # head weights + their gradients alone exceed the card: computed, not run
                row.update(inr_params=inr_params, decode_status="too large", train_fp32={"status": "too large"},
                           train_bf16={"status": "too large"}, hypernet_params=513 * inr_params)
                print(json.dumps(row), flush=True)
                rows.append(row)
                continue
            try:
                rep = scale_report([spec], inr_spec, spec["latent_shape"], device=device, batch_size=8, resolution=64)[0]
                row.update({k: rep[k] for k in rep if k not in row})
            except torch.cuda.OutOfMemoryError:
                row["decode_status"] = "oom"
            torch.cuda.empty_cache()
            for dtype in ("fp32", "bf16"):
                row[f"train_{dtype}"] = train_step_memory(spec, width, device, dtype)
            print(json.dumps(row), flush=True)
            rows.append(row)
    (args.out / "scaling.json").write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2))
    lines = ["| hypernet | INR width | INR params | HN params | INR/HN | decode ms | decode peak GB | train fp32 GB / ms | train bf16 GB / ms |", "|---|---|---|---|---|---|---|---|---|"]
    def cell(r):
        return f"{r['peak_mem_gb']:.2f} / {r['step_ms']:.1f}" if r.get("status") == "ok" else r.get("status", "?")
    def decode_mem(r):
        return r["decode_status"] if "decode_status" in r else "%.2f" % ((r.get("peak_memory_mb") or 0) / 1024)
    for r in rows:
        lines.append(f"| {r['hypernet']} | {r['width']} | {r.get('inr_params', '')} | {r.get('hypernet_params', '')} | "
                     f"{r.get('inr_per_hypernet_param', float('nan')):.3g} | {r.get('decode_ms', float('nan')):.1f} | {decode_mem(r)} | "
                     f"{cell(r['train_fp32'])} | {cell(r['train_bf16'])} |")
    (args.out / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
