"""Conditional generation on one GPU, in one call of at most 10 minutes (issue #10, item 4).

Trains three small LDMI runs on the built-in data at once (faces, synthetic sphere fields,
procedural chairs; the ``tiny`` presets with more items and a wall-clock budget per stage), then:

* image inpainting: the centre box (half the side) of held-out faces is hidden; PSNR (dB, [0, 1])
  *inside the hole* of the guided completions (each sample, and the mean of the samples) against
  the unconditional mean (the training-set mean image, and the mean of unguided samples) and a
  nearest-neighbour fill (each hidden pixel takes the nearest observed pixel's value);
* sphere gap filling: 1 %, 5 % and 20 % of a held-out field's grid points given as stations
  (through ``Domain.read_observations`` of a station CSV, so at the points themselves); RMSE in
  kelvin on the *unobserved* grid points, latitude-weighted and not, of the guided completions'
  mean against bilinear (Delaunay on lat/lon, longitudes wrapped) and nearest-neighbour
  (great-circle) interpolation of the same stations;
* shape completion: the x >= 0 half of held-out chairs is hidden; IoU (p > 0.5) of the whole
  shape for the guided completions, the observed half alone, and unguided samples.

    python benchmarks/gpu_complete.py OUT [--vae-min 2.5] [--prior-min 1.5] [--items 8] [--n 4]

writes OUT/complete-bench.json and OUT/complete-bench.md (a table for docs/results.md), the
per-modality logs, and pictures; ``--quick`` runs a CPU-sized version to check the script.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

MODALITIES = ("image", "sphere", "occupancy")
TRAIN = {  # tiny presets, more items; steps are upper bounds, the wall-clock budget decides
    "image": ["data.n_items=100", "model.domain.resolution=32"],
    "sphere": ["data.n_items=512"],
    "occupancy": ["data.n_items=512"],
}
QUICK = {
    "image": ["data.n_items=24", "model.domain.resolution=8", "model.prior.model_channels=16", "model.prior.num_head_channels=8"],
    "sphere": ["data.n_items=24", "model.domain.n_lat=12", "model.domain.n_lon=24", "model.encoder.channel_mult=[1,2]",
               "model.encoder.latent_size=[3,6]", "model.prior.model_channels=16", "model.prior.num_head_channels=8"],
    "occupancy": ["data.n_items=24", "model.domain.resolution=8", "model.encoder.channel_mult=[1,2]",
                  "model.prior.model_channels=16", "model.prior.num_head_channels=8", "train.vae.points=null"],
}


def train(modality: str, out: Path, args) -> "torch.nn.Module":
    from inrkit_ldmi.model import LDMI

    steps = 40 if args.quick else 20000
    sets = (QUICK if args.quick else TRAIN)[modality] + [
        f"train.vae.steps={steps}", f"train.prior.steps={steps}", f"train.vae.max_minutes={args.vae_min}",
        f"train.prior.max_minutes={args.prior_min}", "train.vae.lr_schedule=cosine", "train.prior.lr_schedule=cosine",
        "train.progress=false", "train.checkpoint_every=0", "train.n_renders=4", "train.sample_steps=20"]
    model = LDMI.from_preset(modality, "tiny", overrides=sets)
    model.fit(out=out / modality, overwrite=True)
    return model


def heldout(model, count: int) -> torch.Tensor:
    val = model.recipe.dataset("val")
    return torch.stack([val[i] for i in range(min(count, len(val)))]).float()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(-1, 1) - b) / 2).pow(2).mean())
    return 10 * np.log10(1 / max(mse, 1e-12))


def bench_image(model, args, out: Path) -> dict:
    from scipy import ndimage

    from inrkit_ldmi.inpaint import inpaint, make_mask

    x = heldout(model, args.items)
    keep = ~make_mask("centre", x.shape[2:])  # observed: everything but the centre box
    hole = ~keep
    kw = dict(steps=args.steps, seed=0, n=args.n, clip=args.clip)
    observed = torch.where(keep, x, torch.zeros_like(x))
    guided = inpaint(model, observed, keep, guidance=args.guidance, **kw)
    free = inpaint(model, x, keep, guidance=0.0, **kw)
    t = x.repeat_interleave(args.n, 0)
    in_hole = lambda g, tt=t: psnr(g[..., hole], tt[..., hole])  # noqa: E731
    mean_of = lambda g: g.reshape(x.shape[0], args.n, *x.shape[1:]).mean(1)  # noqa: E731
    train_mean = torch.stack(list(model.recipe.dataset("train"))).mean(0)
    _, (iy, ix) = ndimage.distance_transform_edt(hole.numpy(), return_indices=True)
    nn_fill = x[..., torch.from_numpy(iy), torch.from_numpy(ix)]
    model.domain.render(torch.cat([torch.where(keep, x, -torch.ones_like(x)), mean_of(guided), x]), out, "image-inpaint",
                        labels=[f"{k} {i}" for k in ("observed", "guided mean", "truth") for i in range(x.shape[0])])
    return {"hole": "centre box, half the side", "items": x.shape[0], "n": args.n,
            "psnr_hole_guided_samples": in_hole(guided), "psnr_hole_guided_mean": psnr(mean_of(guided)[..., hole], x[..., hole]),
            "psnr_hole_unguided_samples": in_hole(free), "psnr_hole_training_mean": psnr(train_mean.expand_as(x)[..., hole], x[..., hole]),
            "psnr_hole_unguided_mean": psnr(mean_of(free)[..., hole], x[..., hole]),
            "psnr_hole_nearest_neighbour": psnr(nn_fill[..., hole], x[..., hole])}


def _interpolate(lat, lon, v, glat, glon):
    """Bilinear (Delaunay on lat/lon, longitudes wrapped, nearest outside the hull) and great-circle nearest."""
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import cKDTree

    def xyz(a, b):
        a, b = np.deg2rad(a), np.deg2rad(b)
        return np.stack([np.cos(a) * np.cos(b), np.cos(a) * np.sin(b), np.sin(a)], -1)

    nearest = v[cKDTree(xyz(lat, lon)).query(xyz(glat, glon))[1]]
    pts = np.concatenate([np.stack([lat, lon + s], -1) for s in (-360, 0, 360)])
    lin = LinearNDInterpolator(pts, np.tile(v, 3))(glat, glon % 360)
    return np.where(np.isfinite(lin), lin, nearest), nearest


def bench_sphere(model, args, out: Path) -> dict:
    from inrkit_ldmi.complete import complete

    d = model.domain
    x = heldout(model, args.items)
    lat, lon = np.meshgrid(d.latitudes(), d.longitudes(), indexing="ij")
    w = d.lat_weights()[:, None].expand(*d.grid_shape).numpy()
    kelvin = d.physical(x[:, 0]).numpy()
    rows = {}
    for frac in (0.01, 0.05, 0.2):
        errs = {"guided_mean": [], "bilinear": [], "nearest": [], "unguided_mean": []}
        for i in range(x.shape[0]):
            rng = np.random.default_rng(i)
            idx = rng.choice(lat.size, max(3, round(frac * lat.size)), replace=False)
            csv = out / f"stations-{frac}-{i}.csv"
            lon180 = (lon.ravel()[idx] + 180) % 360 - 180  # the -180..180 convention, as users have it
            csv.write_text("lat,lon,value [K]\n" + "".join(f"{a},{b},{c}\n" for a, b, c in
                                                         zip(lat.ravel()[idx], lon180, kelvin[i].ravel()[idx])))
            obs = d.read_observations(csv)
            r = complete(model, obs, n=args.n, steps=args.steps, guidance=args.guidance, seed=i, clip=args.clip)
            r0 = complete(model, obs, n=args.n, steps=args.steps, guidance=0.0, seed=i, clip=args.clip, reference=False)
            hidden = np.ones(lat.size, bool)
            hidden[idx] = False
            hidden = hidden.reshape(lat.shape)
            bil, near = _interpolate(lat.ravel()[idx], lon.ravel()[idx], kelvin[i].ravel()[idx], lat, lon)
            for k, field in (("guided_mean", d.physical(r.mean[0, 0]).numpy()), ("bilinear", bil), ("nearest", near),
                             ("unguided_mean", d.physical(r0.mean[0, 0]).numpy())):
                e = (field - kelvin[i]) ** 2
                errs[k].append((e[hidden].mean(), (e * w)[hidden].sum() / w[hidden].sum()))
            if i == 0:
                d.render(torch.cat([x[:1], r.mean, torch.from_numpy(d.to_model(bil)).float()[None, None]]),
                         out, f"sphere-gapfill-{frac}",
                         labels=["truth", f"guided mean, {frac:.0%} stations", f"bilinear, {frac:.0%} stations"])
        rows[f"{frac:.0%}"] = {k: {"rmse_k": float(np.sqrt(np.mean([a for a, _ in v]))),
                                   "rmse_k_weighted": float(np.sqrt(np.mean([b for _, b in v])))} for k, v in errs.items()}
    return {"items": x.shape[0], "n": args.n, "scored_on": "unobserved grid points", "by_station_fraction": rows}


def bench_occupancy(model, args, out: Path) -> dict:
    from inrkit_ldmi.inpaint import inpaint, make_mask

    x = heldout(model, args.items)
    keep = make_mask("half", x.shape[2:])
    kw = dict(steps=args.steps, seed=0, n=args.n, clip=args.clip)
    observed = torch.where(keep, x, torch.zeros_like(x))
    guided = inpaint(model, observed, keep, guidance=args.guidance, **kw)
    free = inpaint(model, x, keep, guidance=0.0, **kw)
    t = x.repeat_interleave(args.n, 0)

    def iou(p, q, where=None):  # where: the voxels to score (default all)
        if where is not None:
            p, q = p[..., where], q[..., where]
        a, b = p > 0.5, q > 0.5
        inter, union = (a & b).flatten(1).sum(1).float(), (a | b).flatten(1).sum(1).float()
        return float(torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).mean())

    model.domain.render(torch.cat([observed, guided[:: args.n], x]), out, "chairs-complete",
                        labels=[f"{k} {i}" for k in ("observed half", "guided", "truth") for i in range(x.shape[0])])
    return {"observed": "x < 0 half of the voxels", "items": x.shape[0], "n": args.n, "iou_guided": iou(guided, t),
            "iou_observed_half_only": iou(observed, x), "iou_unguided": iou(free, t),
            "iou_hidden_guided": iou(guided, t, ~keep), "iou_hidden_unguided": iou(free, t, ~keep)}


def child(modality: str, args) -> None:
    out = Path(args.out)
    torch.manual_seed(0)
    t0 = time.time()
    model = train(modality, out / "runs", args)
    trained = time.time() - t0
    model.eval()
    result = {"image": bench_image, "sphere": bench_sphere, "occupancy": bench_occupancy}[modality](model, args, out / "pictures")
    result.update(train_seconds=round(trained, 1), eval_seconds=round(time.time() - t0 - trained, 1),
                  device=str(model.device), steps=args.steps, guidance=args.guidance, clip=args.clip,
                  heldout_reconstruction=model.evaluate(heldout(model, 64)))
    (out / f"{modality}.json").write_text(json.dumps(result, indent=2, default=str))


def table(results: dict) -> str:
    lines = ["| task | guided | baselines |", "|---|---|---|"]
    if "image" in results:
        r = results["image"]
        lines.append(f"| face inpainting, PSNR in the hole (dB) | samples {r['psnr_hole_guided_samples']:.2f}, mean "
                     f"{r['psnr_hole_guided_mean']:.2f} | training mean {r['psnr_hole_training_mean']:.2f}, unguided mean "
                     f"{r['psnr_hole_unguided_mean']:.2f}, nearest fill {r['psnr_hole_nearest_neighbour']:.2f} |")
    if "sphere" in results:
        for frac, r in results["sphere"]["by_station_fraction"].items():
            lines.append(f"| sphere gap filling from {frac} stations, RMSE K (weighted) | {r['guided_mean']['rmse_k']:.2f}"
                         f" ({r['guided_mean']['rmse_k_weighted']:.2f}) | bilinear {r['bilinear']['rmse_k']:.2f}"
                         f" ({r['bilinear']['rmse_k_weighted']:.2f}), nearest {r['nearest']['rmse_k']:.2f}"
                         f" ({r['nearest']['rmse_k_weighted']:.2f}), unguided {r['unguided_mean']['rmse_k']:.2f} |")
    if "occupancy" in results:
        r = results["occupancy"]
        lines.append(f"| chair completion from half, IoU | {r['iou_guided']:.3f} | observed half alone "
                     f"{r['iou_observed_half_only']:.3f}, unguided {r['iou_unguided']:.3f} |")
        lines.append(f"| chair completion, IoU on the hidden half alone | {r['iou_hidden_guided']:.3f} | "
                     f"unguided {r['iou_hidden_unguided']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--modality", choices=MODALITIES, help=argparse.SUPPRESS)  # one child's work
    p.add_argument("--vae-min", type=float, default=2.5)
    p.add_argument("--prior-min", type=float, default=1.5)
    p.add_argument("--items", type=int, default=8, help="held-out items per task")
    p.add_argument("--n", type=int, default=4, help="completions per item")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--clip", type=float, default=3.0)
    p.add_argument("--quick", action="store_true", help="CPU-sized check of the script")
    args = p.parse_args()
    out = Path(args.out)
    (out / "pictures").mkdir(parents=True, exist_ok=True)
    if args.modality:
        child(args.modality, args)
        return 0
    forward = [a for a in sys.argv[1:] if a != args.out]
    procs = {m: subprocess.Popen([sys.executable, __file__, str(out), "--modality", m, *forward],
                                 stdout=open(out / f"{m}.log", "w"), stderr=subprocess.STDOUT, env=os.environ.copy())
             for m in MODALITIES}  # all three at once: one small run does not fill the GPU
    results = {}
    for m, proc in procs.items():
        code = proc.wait()
        path = out / f"{m}.json"
        if code == 0 and path.exists():
            results[m] = json.loads(path.read_text())
        else:
            print(f"{m}: failed (exit {code}); see {out / f'{m}.log'}")
    (out / "complete-bench.json").write_text(json.dumps(results, indent=2))
    (out / "complete-bench.md").write_text(table(results))
    print(table(results))
    return 0 if len(results) == len(procs) else 1  # a failed modality fails the benchmark, its table row absent


if __name__ == "__main__":
    sys.exit(main())
