"""Full training vs hyper-transforming, in one command: wall time and steps to the same held-out PSNR.

1. A conventional LDM is trained first (``inrkit train ldm``: encoder + conv decoder, then its
   prior): the pre-trained model that hyper-transforming starts from. Its cost is reported apart.
2. LDMI stage 1 from scratch (encoder + HD, eq. 6) and the hyper-transformed LDMI (HD only on
   the LDM's frozen encoder, eq. 8) train with the same preset, HD, INR, data, batch, optimiser,
   seed and step budget; every ``--eval-every`` steps each is scored on the held-out split
   (evaluation time is not counted as training time).
3. Reported: the final PSNR of each, and the steps and training seconds each needed to reach a
   common target (``--target-psnr``, by default the lower of the two finals, which both reach);
   the HD-vs-conv-decoder report of the hyper-transformed run (same latents; samples side by side,
   the HD also at 4×).

Writes under ``--out``: hyper_transform.json, hyper_transform.md (a table for docs/results.md),
psnr_curves.png, report/ (side_by_side.png, ...), and the run directories under runs/.

    python benchmarks/gpu_hyper_transform.py --out $OUT/ht                     # paper preset, built-in faces
    python benchmarks/gpu_hyper_transform.py --out /tmp/ht --preset tiny --device cpu \\
        --source-steps 30 --prior-steps 10 --steps 30 --eval-every 10         # a CPU smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# Not part of what is measured: previews, event files, progress bars, intermediate checkpoints.
QUIET = ["train.tensorboard=false", "train.progress=false", "train.sample_steps=10", "train.n_renders=8",
         "train.checkpoint_every=0", "train.sample_every=0"]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Curve:
    """Held-out metric every ``every`` steps against training seconds (evaluation time excluded)."""

    def __init__(self, model, val, every: int, metric: str, device: str):
        self.model, self.val, self.every, self.metric, self.device = model, val, every, metric, device
        self.points: list[dict] = []
        self.eval_s = 0.0
        self.t0 = 0.0

    def score(self) -> float:
        return float(self.model.evaluate(self.val)[self.metric]["mean"])

    def start(self) -> None:
        self.points.append({"step": 0, "train_s": 0.0, self.metric: self.score()})
        sync(self.device)
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, step: int, logs: dict) -> None:
        if step % self.every == 0:
            self.record(step)

    def record(self, step: int) -> None:
        sync(self.device)
        now = time.perf_counter()
        value = self.score()
        self.points.append({"step": step, "train_s": round(now - self.t0 - self.eval_s, 3), self.metric: value})
        sync(self.device)
        self.eval_s += time.perf_counter() - now

    def reach(self, target: float) -> dict | None:
        return next((p for p in self.points if p[self.metric] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--modality", default="image")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--data", type=Path, default=None, help="your data (default: the built-in dataset)")
    ap.add_argument("--source-steps", type=int, default=4000, help="LDM encoder + conv decoder steps")
    ap.add_argument("--prior-steps", type=int, default=1000, help="LDM prior steps (the samples of the report use it)")
    ap.add_argument("--steps", type=int, default=4000, help="stage-1 steps of full training and of hyper-transforming")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--metric", default="psnr", help="held-out metric to race on (higher is better)")
    ap.add_argument("--target-psnr", type=float, default=None, help="default: the lower of the two final values")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-samples", type=int, default=8)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="overrides for every run (repeatable)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: pass --device cpu (with tiny flags) for a smoke run")

    from inrkit.runs import Run
    from inrkit.io import plain
    from inrkit_ldmi.hyper_transform import keep_source_decoder, prepare_hyper_transform
    from inrkit.recipe import Recipe
    from inrkit_ldmi.report import hyper_transform_report
    from inrkit.train import resolve_device

    runs = args.out / "runs"
    common = [*QUIET, f"train.device={args.device}", f"train.seed={args.seed}", *args.sets]
    stage1 = [*common, f"train.vae.steps={args.steps}"]

    # 1. the pre-trained model
    ldm = Recipe.resolve("ldm", args.preset, data=args.data, modality=args.modality, overrides=[
        *common, f"train.vae.steps={args.source_steps}", f"train.prior.steps={args.prior_steps}"]).build_model()
    src_summary = ldm.fit(out=runs / "ldm", overwrite=True)
    val = Run.open(runs / "ldm").dataset("val")

    # 2. the race: full training (encoder + HD) against hyper-transforming (HD on the frozen encoder)
    results = {}
    full = Recipe.resolve("ldmi", args.preset, data=args.data, overrides=stage1, modality=args.modality).build_model()
    ht, source = prepare_hyper_transform(runs / "ldm", modality=args.modality, preset=args.preset, data=args.data,
                                         overrides=stage1)
    for name, model in (("full", full), ("hyper_transform", ht)):
        model.to(resolve_device(args.device))
        curve = Curve(model, val, args.eval_every, args.metric, args.device)
        curve.start()
        summary = model.fit(out=runs / name, stages=("vae",), overwrite=True, on_step=curve)
        if curve.points[-1]["step"] != args.steps:
            curve.record(args.steps)
        results[name] = {"curve": curve.points, "final": curve.points[-1][args.metric],
                         "stage_wall_s": summary["stages"]["vae"].get("wall_time_s"),
                         "items_per_s": summary["stages"]["vae"].get("items_per_s"),
                         "parameters": summary["parameters"], "curve_obj": curve}
    keep_source_decoder(runs / "hyper_transform", source)

    target = args.target_psnr if args.target_psnr is not None else min(r["final"] for r in results.values())
    for r in results.values():
        hit = r.pop("curve_obj").reach(target)
        r["reached"] = hit and {"step": hit["step"], "train_s": hit["train_s"]}

    ht_run = Run.open(runs / "hyper_transform")
    report = hyper_transform_report(ht_run, ht_run.load_model(device=args.device), out=args.out / "report",
                                     dataset=val, n_samples=args.report_samples)
    out = {
        "modality": args.modality, "preset": args.preset, "data": str(args.data) if args.data else "built-in",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__, "steps": args.steps, "eval_every": args.eval_every, "metric": args.metric,
        "target": target, "n_val": len(val),
        "source": {"steps": args.source_steps, "prior_steps": args.prior_steps,
                   "wall_s": {k: v.get("wall_time_s") for k, v in src_summary["stages"].items()},
                   "conv_decoder_heldout": src_summary["stages"]["vae"].get("heldout")},
        "runs": results, "report": report,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hyper_transform.json").write_text(json.dumps(plain(out), indent=2) + "\n")
    (args.out / "hyper_transform.md").write_text(markdown(out))
    plot(out, args.out / "psnr_curves.png")
    print(markdown(out))
    print(f"written under {args.out}")


def markdown(r: dict) -> str:
    m = r["metric"]
    lines = [f"Held-out {m} on {r['modality']}/{r['preset']} ({r['data']}, {r['n_val']} val items), {r['device']},"
             f" torch {r['torch']}; {r['steps']} stage-1 steps each, target {m} {r['target']:.2f}.", "",
             f"| paradigm | final {m} | steps to target | train s to target | stage-1 wall s | items/s |",
             "|---|---|---|---|---|---|"]
    for name, x in r["runs"].items():
        hit = x["reached"] or {}
        lines.append(f"| {name.replace('_', '-')} | {x['final']:.2f} | {hit.get('step', 'not reached')} |"
                     f" {hit.get('train_s', '-')} | {x['stage_wall_s']} | {x['items_per_s']} |")
    src = r["source"]
    lines += ["", f"Source LDM (not counted above): {src['steps']} encoder + conv decoder steps and {src['prior_steps']}"
              f" prior steps, wall s {src['wall_s']}. HD vs the source's conv decoder on the same latents: "
              + ", ".join(f"{k} {v:+.3g}" for k, v in r["report"]["reconstruction"]["hd_minus_conv"].items()), ""]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = r["metric"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, x in r["runs"].items():
        pts = x["curve"]
        axes[0].plot([p["step"] for p in pts], [p[m] for p in pts], marker="o", label=name.replace("_", "-"))
        axes[1].plot([p["train_s"] for p in pts], [p[m] for p in pts], marker="o", label=name.replace("_", "-"))
    for ax, xlabel in zip(axes, ("step", "training seconds (evaluation excluded)")):
        ax.axhline(r["target"], color="gray", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"held-out {m}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
