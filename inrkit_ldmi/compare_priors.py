"""A fair comparison of latent priors: one frozen stage-1 model, stage 2 trained once per prior.

One base run config is planned as for hypernetworks (:func:`inrkit_ldmi.compare.plan_configs`,
along the :data:`~inrkit_ldmi.compare.PRIORS` axis): each prior's config is the base with ``model.prior`` replaced and
nothing else, checked before training. Stage 1 (encoder + hypernetwork, eq. 6) is trained once,
under the base config's seed; every prior's stage 2 starts from those frozen weights, with the
same step budget and the same seeds (which fix the prior's initial weights and its batches).

Per prior it records the prior's parameters, stage-2 training items/s (after warm-up), sampling
time per item (the prior alone, and decoding to the training grid), and sample quality against
the held-out set, named for what they measure:

* ``latent_nn_gen_to_heldout`` / ``latent_nn_heldout_to_gen``: mean Euclidean distance from each
  generated latent to its nearest held-out latent (posterior means of the frozen encoder), and
  from each held-out latent to its nearest generated one (a precision-like and a recall-like view);
* ``latent_frechet``: the Fréchet distance between Gaussians fitted to the two latent sets;
* ``data_nn_rmse_gen_to_heldout`` / ``data_nn_rmse_heldout_to_gen``: the same nearest-neighbour
  means in data space, as the RMSE (model-space values, unweighted) to the nearest item;
* ``fid``: images only, and only with a feature network from the user; otherwise unavailable.

A ``reference`` row measures the same distances with training items in place of samples: what a
prior that reproduced the training set would score at this sample size.

::

    out/
      compare_plan.json, compare.json, compare.md
      stage1/                 the frozen stage-1 run (vae only)
      <prior>-seed<k>/        a full run (stage-1 weights + that prior), compare_run.json beside
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from inrkit.distances import nn_distances, set_frechet_distance
from inrkit.errors import CheckpointError, ConfigError, DataError, InrkitError
from inrkit.io import atomic_write_text, load_tensors, save_state, write_json
from inrkit.recipe import Recipe
from inrkit.run_folder import SUMMARY_FILE, WEIGHTS_FILE, prepare_run_dir
from inrkit.runs import save_run_config
from inrkit.train import resolve_device
from inrkit.outputs import refuse_inside_data

from .compare import (PRIORS, StepClock, environment, is_oom, plan_configs, resolved, seed_list, seeded_model, slug, sync,
                      train_one)
from .compare.aggregate import stats
from .compare.folder import MARKDOWN_FILE, PLAN_FILE, RESULT_FILE, RUN_RECORD_FILE, prepare_out, reusable

STAGE1 = "stage1"
QUALITY = ("latent_nn_gen_to_heldout", "latent_nn_heldout_to_gen", "latent_frechet",
           "data_nn_rmse_gen_to_heldout", "data_nn_rmse_heldout_to_gen", "fid")
FidFn = Callable[[torch.Tensor, torch.Tensor], dict]


def compare_priors(
    priors: Sequence[str] | str = ("gaussian", "flow", "diffusion"),
    modality: str | None = None,
    data: str | Path | None = None,
    preset: str | None = None,
    inr: str | dict[str, Any] | None = None,
    budget_steps: int | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    out: str | Path = "runs/compare-priors",
    set_overrides: Iterable[str] | None = None,
    device: str | None = None,
    *,
    config_file: str | Path | None = None,
    n_samples: int | None = None,
    sample_steps: int = 50,
    fid: FidFn | None = None,
    fid_features: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train stage 1 once, then stage 2 per prior and seed; write and return the report.

    ``budget_steps`` sets ``train.prior.steps`` of every prior (stage 1 keeps the config's
    ``train.vae.steps``). ``set_overrides``: ``--set`` items; ``prior.<name>.<field>=v`` applies to
    that prior only. ``n_samples``: generated items per run (default: as many as held-out items).
    ``fid(real, fake)`` → ``{"fid", "fid_status"}``, or ``fid_features``: the feature network file
    the domain's ``sample_metrics`` reads (images: FID, see ``inrkit_modalities.image.fid``).
    """
    log = log or (lambda msg: None)
    seeds_ = seed_list(seeds)
    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"--budget-steps must be >= 1, got {budget_steps}")
    if n_samples is not None and n_samples < 2:
        raise ConfigError(f"--n-samples must be >= 2 (distances between sets need two items), got {n_samples}")
    if sample_steps < 1:
        raise ConfigError(f"--sample-steps must be >= 1, got {sample_steps}")
    sets = list(set_overrides or []) + ([f"train.prior.steps={budget_steps}"] if budget_steps is not None else [])
    point = plan_configs(priors, modality, preset, data, inr, None, None, None, sets, device,
                             config_file=config_file, axis=PRIORS)[0]
    configs, names = point["configs"], list(point["configs"])
    if fid_features is not None and fid is None:
        fid = _sample_metric(Recipe.from_config(configs[names[0]]).domain, fid_features)  # a bad file fails before training
    out = Path(out).expanduser()
    refuse_inside_data(out, data)
    prepare_out(out, resume=resume, overwrite=overwrite)
    first = configs[names[0]]
    settings = {
        "priors": names, "modality": first["model"]["domain"]["name"],
        "preset": preset if preset is not None or config_file is not None else "paper",
        "config_file": None if config_file is None else str(config_file), "data": None if data is None else str(data),
        "inr": inr, "budget_steps": budget_steps, "stage1_steps": first["train"]["vae"]["steps"],
        "stage1_seed": first["train"]["seed"], "seeds": seeds_, "set_overrides": list(set_overrides or []),
        "n_samples": n_samples, "sample_steps": sample_steps, **environment(first),
    }
    write_json(out / PLAN_FILE, {"settings": settings, "points": [point]})

    _check_heldout(first)
    stage1_dir = out / STAGE1
    stage1 = reusable(stage1_dir, first) if resume else None
    if stage1 is None:
        log(f"stage 1 (once, seed {first['train']['seed']}): training into {stage1_dir}")
        stage1 = train_one(first, stage1_dir, overwrite=stage1_dir.exists())
        stage1["run_dir"] = STAGE1
        write_json(stage1_dir / RUN_RECORD_FILE, stage1)
    else:
        log(f"stage 1: reused {stage1_dir}")
    if stage1["status"] != "ok":
        raise ConfigError(f"stage 1 ended with status {stage1['status']}: {stage1.get('error', '')}".strip())

    held = HeldOut(first, stage1_dir / WEIGHTS_FILE, n_samples)
    rows = []
    total, done = len(names) * len(seeds_), 0
    for name in names:
        runs = []
        for seed in seeds_:
            done += 1
            config = copy.deepcopy(configs[name])
            config["train"]["seed"] = seed
            config = resolved(config)
            run_dir = out / f"{slug(name)}-seed{seed}"
            where = f"[{done}/{total}] {name} seed {seed}"
            record = reusable(run_dir, config) if resume else None
            if record is not None:
                log(f"{where}: reused {run_dir}")
            else:
                log(f"{where}: stage 2 into {run_dir}")
                record = train_prior(config, run_dir, held, sample_steps, fid, out / f".{run_dir.name}-init.safetensors")
                record["run_dir"] = str(run_dir.relative_to(out))
                write_json(run_dir / RUN_RECORD_FILE, record)
            runs.append(record)
        rows.append(aggregate(name, configs[name]["model"]["prior"], runs))

    from .compare_priors_report import markdown

    report = {"schema_version": 1, "axis": "model.prior", "settings": settings,
              "fairness": {"differ_only_under": "model.prior", "checked_pairs": len(names) * (len(names) - 1) // 2,
                           "same_stage1": STAGE1, "same_seeds": seeds_, "same_budget": {"prior_steps": budget_steps}},
              "stage1": {k: stage1.get(k) for k in ("run_dir", "seed", "steps_reached", "wall_time_s", "heldout",
                                                    "hypernet_params", "inr_params", "encoder_params")},
              "reference": held.reference, "n_heldout": held.n_val, "results": rows,
              "files": {"json": RESULT_FILE, "markdown": MARKDOWN_FILE}}
    atomic_write_text(out / MARKDOWN_FILE, markdown(report))
    write_json(out / RESULT_FILE, report)
    return report


def _sample_metric(domain, path: str | Path) -> FidFn:
    features = domain.load_sample_features(Path(path))  # a domain whose metrics use none refuses the file
    return lambda real, fake: domain.sample_metrics(fake, real, features)


def _check_heldout(config: dict[str, Any]) -> None:
    n = len(Recipe.from_config(config).dataset("val"))
    if n < 2:
        raise ConfigError(f"the held-out split has {n} item(s); sample distances need at least 2 (add data)")


class HeldOut:
    """The held-out items and their latents under the frozen stage-1 encoder, and the reference
    distances of as many training items (what reproducing the training set would score)."""

    def __init__(self, config: dict[str, Any], stage1_weights: Path, n_samples: int | None):
        self.weights = stage1_weights
        model = load_stage1(config, stage1_weights)
        recipe = Recipe.from_config(config)
        val, train = recipe.dataset("val"), recipe.dataset("train")
        self.n_val = len(val)
        self.n = n_samples or self.n_val
        self.x = torch.stack([val[i] for i in range(len(val))]).float()
        self.z = model.encode_dataset(val)[0].cpu()
        n_ref = min(self.n, len(train))
        x_ref = torch.stack([train[i] for i in range(n_ref)]).float()
        self.reference = {"what": f"{n_ref} training items in place of samples", **self.quality(model.encode_dataset(
            [x_ref[i] for i in range(n_ref)])[0].cpu(), x_ref, None)}

    def quality(self, z: torch.Tensor, x: torch.Tensor, fid: FidFn | None) -> dict[str, Any]:
        lat = nn_distances(z, self.z)
        dat = nn_distances(x, self.x, rms=True)
        out = {"latent_nn_gen_to_heldout": lat[0], "latent_nn_heldout_to_gen": lat[1],
               "latent_frechet": set_frechet_distance(z, self.z) if len(z) >= 2 else None,
               "data_nn_rmse_gen_to_heldout": dat[0], "data_nn_rmse_heldout_to_gen": dat[1]}
        if fid is None:
            return {**out, "fid": None, "fid_status": "unavailable: no feature network given (--fid-features, images only)"}
        return {**out, **fid(self.x, x)}


def load_stage1(config: dict[str, Any], weights: Path):
    """The run's model with the stage-1 weights (everything but the prior, which stays as built)."""
    model = seeded_model(config)
    tensors = load_tensors(weights, device="cpu")
    own = model.state_dict()
    mine = {k: v for k, v in tensors.items() if not k.startswith("prior.")}
    missing = sorted(k for k in own if not k.startswith("prior.") and k not in mine)
    bad = sorted(k for k, v in mine.items() if k not in own or tuple(own[k].shape) != tuple(v.shape))
    if missing or bad:
        raise CheckpointError(f"{weights}: stage-1 weights do not match the model ({(missing + bad)[0]})")
    model.load_state_dict({**own, **mine})
    return model.to(resolve_device(config["train"]["device"]))


def train_prior(config: dict[str, Any], run_dir: Path, held: HeldOut, sample_steps: int, fid: FidFn | None,
                init_file: Path) -> dict[str, Any]:
    """Stage 2 of one prior and seed from the frozen stage-1 weights, then its samples' numbers;
    status ``ok``, ``failed`` (the loss diverged) or ``oom``, as :func:`inrkit_ldmi.compare.train_one`."""
    record: dict[str, Any] = {"seed": int(config["train"]["seed"]), "status": "ok"}
    try:
        _train_and_sample(config, run_dir, held, sample_steps, fid, init_file, record)
    except (ConfigError, DataError, CheckpointError):
        raise
    except InrkitError as err:
        record.update(status="failed", error=str(err))
    except Exception as err:  # noqa: BLE001 (only exhausted memory is an outcome; the rest is re-raised)
        if not is_oom(err):
            raise
        record.update(status="oom", error=str(err).splitlines()[0][:300])
    return record


def _train_and_sample(config, run_dir, held, sample_steps, fid, init_file, record) -> None:
    seed = int(config["train"]["seed"])
    device = resolve_device(config["train"]["device"])
    model = load_stage1(config, held.weights)
    record["prior_params"] = sum(p.numel() for p in model.prior.parameters())
    if run_dir.exists():
        prepare_run_dir(run_dir, overwrite=True)  # an unfinished run of this comparison: start it again
    if "prior" in model.stages:
        steps, batch = int(config["train"]["prior"]["steps"]), int(config["train"]["prior"]["batch_size"])
        clock = StepClock(device, steps, warmup=max(1, min(10, steps // 5)), stage="prior")
        save_state(model, init_file)
        try:
            summary = model.fit(out=run_dir, stages=("prior",), init_from=init_file, on_step=clock)
        finally:
            init_file.unlink(missing_ok=True)
        ips = clock.items_per_s(batch)
        record["train"] = {"steps": summary["stages"]["prior"]["steps"], "wall_time_s": summary["stages"]["prior"].get("wall_time_s"),
                           "items_per_s": ips, "note": None if ips is not None else "too few steps after the warm-up"}
    else:  # nothing to train (the standard normal): the run is the stage-1 model with this prior
        prepare_run_dir(run_dir)
        save_run_config(run_dir, config)
        save_state(model, run_dir / WEIGHTS_FILE)
        write_json(run_dir / SUMMARY_FILE, {"stages": {}, "parameters": model.parameter_report(), "device": str(device)})
        record["train"] = {"steps": 0, "wall_time_s": 0.0, "items_per_s": None, "note": "nothing to train"}
    model.eval()
    model.sample_latents(2, steps=sample_steps, seed=seed)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    z = model.sample_latents(held.n, steps=sample_steps, seed=seed)
    sync(device)
    t1 = time.perf_counter()
    x = model.decode(z)
    sync(device)
    t2 = time.perf_counter()
    record["sampling"] = {"n": held.n, "steps": sample_steps, "prior_ms_per_item": 1e3 * (t1 - t0) / held.n,
                          "decode_ms_per_item": 1e3 * (t2 - t1) / held.n, "total_ms_per_item": 1e3 * (t2 - t0) / held.n}
    record["quality"] = held.quality(z.cpu(), x, fid)
    paths = model.domain.render(x[:8], run_dir / "samples" / "compare", stem="samples")
    record["renders"] = [str(Path(p).relative_to(run_dir)) for p in paths]


def aggregate(name: str, spec: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One prior: its runs' numbers as mean ± std over seeds."""
    ok = [r for r in runs if r["status"] == "ok"]
    quality = {k: stats([(r.get("quality") or {}).get(k) for r in ok]) for k in QUALITY}
    fid_status = next((r["quality"].get("fid_status") for r in ok if r.get("quality")), None)
    return {
        "prior": name, "status": "ok" if len(ok) == len(runs) else next(r["status"] for r in runs if r["status"] != "ok"),
        "spec": spec, "prior_params": runs[0].get("prior_params"),
        "train_steps": stats([r["train"]["steps"] for r in ok]),
        "train_items_per_s": stats([r["train"]["items_per_s"] for r in ok]),
        "train_note": next((r["train"].get("note") for r in ok if r["train"].get("note")), None),
        "sample_prior_ms_per_item": stats([r["sampling"]["prior_ms_per_item"] for r in ok]),
        "sample_decode_ms_per_item": stats([r["sampling"]["decode_ms_per_item"] for r in ok]),
        "sample_total_ms_per_item": stats([r["sampling"]["total_ms_per_item"] for r in ok]),
        "quality": quality, "fid_status": fid_status,
        "runs": runs,
    }
