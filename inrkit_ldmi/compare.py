"""A fair comparison of hypernetworks: the same LDMI stage 1, trained once per hypernetwork.

One base run config is built (preset ← config file ← ``--data`` ← ``--set`` ← ``--inr`` ← the
sweep point); each hypernetwork's config is that base with ``model.hypernet`` replaced and
nothing else, which :func:`compare` checks before it trains anything. Every run of the same seed
also starts from the same encoder initialisation and sees the same batches, so the measured
differences belong to the hypernetwork.

Per hypernetwork and sweep point it records the parameter counts, held-out reconstruction
metrics (mean ± std over seeds), training throughput after warm-up, training peak memory (CUDA
only: on CPU there are no allocator statistics, so it is reported as unavailable), and the
decode time of ``inrkit.scale.scale_report``. A run that runs out of memory is recorded with
status ``oom`` and the comparison goes on.

::

    out/
      compare_plan.json     the settings and every run's resolved config (written first)
      compare.json          the results; compare.md the same as markdown tables
      reconstructions[-<point>].png   held-out targets and each hypernetwork's reconstructions
      scaling.png           (sweeps) parameters and peak memory against INR size, log-log
      [<point>/]<hypernet>-seed<k>/   a normal run directory (``inrkit evaluate`` accepts it)
      [<point>/]<hypernet>-seed<k>/compare_run.json   that run's numbers, written when it ends
      [<point>/]<hypernet>-decode.json   the decode timing, written when its seeds are done

A comparison cut off part-way keeps those records: ``--resume`` reuses them, and
``benchmarks/compare_partial.py`` writes a report from them alone.
"""
from __future__ import annotations

import copy
import errno
import gc
import itertools
import math
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

import inrkit
from inrkit.config import deep_merge, parse_override, parse_part_spec, parse_value
from inrkit.errors import CheckpointError, ConfigError, DataError, InrkitError
from inrkit.io import read_json, save_state, write_json
from inrkit.runs import SUMMARY_FILE, WEIGHTS_FILE, read_run_config
from inrkit.scale import scale_report
from inrkit.train import resolve_device

from .api import run_dataset
from .config import build_part, resolve_run_config

# Hypernetwork specs used when the base config's own hypernetwork is another one: the registry
# defaults, which are GASP's MLP (z → 256 → 512 → head) and a VAMoH-sized mixture of four.
DEFAULT_SPECS: dict[str, dict[str, Any]] = {
    "hd": {"name": "hd"},
    "mlp": {"name": "mlp", "hidden": [256, 512]},
    "mixture": {"name": "mixture"},
}
RUN_SECTIONS = ("model", "data", "train")
MODEL_FIELDS = ("domain", "encoder", "inr", "prior", "likelihood", "beta", "kl_reduction", "nll_reduction", "chunk")
KEEP = ("all", "weights", "logs")
PLAN_FILE, RESULT_FILE, MARKDOWN_FILE, SCALING_FILE = "compare_plan.json", "compare.json", "compare.md", "scaling.png"
RUN_RECORD_FILE = "compare_run.json"
DECODE_FILE = "{name}-decode.json"  # per point and hypernetwork
# Fields of a run record that belong to the model, not the run: reported once per hypernetwork.
PER_MODEL_KEYS = ("hypernet_params", "hypernet_params_total", "inr_params", "inr_per_hypernet_param",
                  "encoder_params", "parameter_report")
# Steps of a minutes-only budget: the clock, not this number, ends such a run.
UNBOUNDED_STEPS = 1_000_000_000


class _BudgetReached(Exception):
    """Raised from the trainer's step callback when the wall-clock budget is spent."""


# -- configs ---------------------------------------------------------------------------------
def normalise_key(key: str) -> str:
    """``inr.width`` → ``model.inr.width``; ``train.vae.lr`` and ``hypernet.mlp.hidden`` stay."""
    first = key.split(".", 1)[0]
    if first in RUN_SECTIONS or first == "hypernet":
        return key
    if first in MODEL_FIELDS:
        return f"model.{key}"
    raise ConfigError(f"'{key}': not a config field (start with model., data., train., hypernet.<name>. "
                      f"or one of {', '.join(MODEL_FIELDS)})")


def _nested(keys: Sequence[str], value: Any) -> dict[str, Any]:
    update: Any = value
    for key in reversed(keys):
        update = {key: update}
    return update


def split_overrides(items: Iterable[str] | None) -> tuple[list[str], dict[str, list[tuple[list[str], Any]]]]:
    """``--set`` items → (run-config overrides, hypernet name → [(field path, value)])."""
    general: list[str] = []
    per_hypernet: dict[str, list[tuple[list[str], Any]]] = {}
    for item in items or []:
        keys, value = parse_override(item)
        key = normalise_key(".".join(keys))
        keys = key.split(".")
        if keys[0] == "hypernet":
            if len(keys) < 3:
                raise ConfigError(f"--set {item}: per-hypernetwork overrides read hypernet.<name>.<field>=value")
            per_hypernet.setdefault(keys[1], []).append((keys[2:], value))
        else:
            general.append(f"{key}={item.split('=', 1)[1]}")
    return general, per_hypernet


def parse_sweep(sweep: str | Sequence[str] | dict[str, Sequence[Any]] | None) -> list[tuple[str, list[Any]]]:
    """``"inr.width=64,128"`` (or several, or ``{"inr.width": [64, 128]}``) → [(key, values)].

    Values are YAML: ``hypernet.mlp.hidden=[64],[128,128]`` sweeps two lists.
    """
    if sweep is None:
        return []
    if isinstance(sweep, dict):
        items = [(k, list(v)) for k, v in sweep.items()]
    else:
        items = []
        for text in [sweep] if isinstance(sweep, str) else sweep:
            key, eq, rest = text.partition("=")
            values = parse_value(f"[{rest}]") if eq and rest.strip() else None
            if not key.strip() or not isinstance(values, list) or not values:
                raise ConfigError(f"--sweep '{text}': expected key=value1,value2,...")
            items.append((key.strip(), values))
    out = []
    for key, values in items:
        if not values:
            raise ConfigError(f"--sweep {key}: no values")
        out.append((normalise_key(key), values))
    if len({k for k, _ in out}) != len(out):
        raise ConfigError("--sweep: the same field is swept twice")
    return out


def _with_inr(config: dict[str, Any], inr: str | dict[str, Any] | None) -> dict[str, Any]:
    """``--inr siren:width=512`` merges into the config's INR; another family's name replaces it."""
    if inr is None:
        return config
    spec = parse_part_spec(inr) if isinstance(inr, str) else dict(inr)
    if not spec:
        raise ConfigError(f"--inr: expected NAME[:key=value,...], got {inr!r}")
    current = config["model"]["inr"]
    if spec.get("name", current["name"]) == current["name"]:
        spec = {**current, **spec}
    return {**config, "model": {**config["model"], "inr": spec}}


def hypernet_spec(name: str, base: dict[str, Any], overrides: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """The base config's hypernet block if it is this hypernetwork, else its default spec; then
    this hypernetwork's own ``hypernet.<name>.*`` overrides."""
    spec = copy.deepcopy(base) if base.get("name") == name else copy.deepcopy(DEFAULT_SPECS.get(name, {"name": name}))
    for keys, value in overrides:
        spec = deep_merge(spec, _nested(keys, value))
    spec["name"] = name
    return spec


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths at which two plain-data configs differ (a whole sub-tree counts once per leaf)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                out.append(path)
            else:
                out += config_differences(a[key], b[key], path)
        return out
    return [] if a == b else [prefix]


def plan_configs(
    hypernets: Sequence[str],
    modality: str | None,
    preset: str | None,
    data: str | Path | None,
    inr: str | dict[str, Any] | None,
    budget_steps: int | None,
    budget_minutes: float | None,
    sweep: Any,
    set_overrides: Iterable[str] | None,
    device: str | None,
    config_file: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Every point of the comparison: ``{label, overrides, configs: {hypernet: resolved run config}}``.

    The seed is left at the base config's; :func:`compare` sets ``train.seed`` per run.
    Raises ConfigError if two hypernetworks' configs differ anywhere but under ``model.hypernet``.
    """
    from .presets import preset_config

    names = _check_hypernets(hypernets)
    general, per_hypernet = split_overrides(set_overrides)
    unknown = sorted(set(per_hypernet) - set(names))
    if unknown:
        raise ConfigError(f"--set hypernet.{unknown[0]}.*: '{unknown[0]}' is not among --hypernets {','.join(names)}")
    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"--budget-steps must be >= 1, got {budget_steps}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise ConfigError(f"--budget-minutes must be > 0, got {budget_minutes}")
    if device is not None:
        general.append(f"train.device={device}")
    if preset is None and config_file is None:
        preset = "paper"
    base = preset_config(modality, preset, general, config_file=config_file, data=data)
    base = _with_inr(base, inr)
    steps = budget_steps if budget_steps is not None else (UNBOUNDED_STEPS if budget_minutes is not None else None)
    if steps is not None:
        base = deep_merge(base, {"train": {"vae": {"steps": steps}}})
    base = resolve_run_config(base)

    sweeps = parse_sweep(sweep)
    points = []
    for values in itertools.product(*[v for _, v in sweeps]) if sweeps else [()]:
        overrides = {key: value for (key, _), value in zip(sweeps, values)}
        label = ",".join(f"{key.removeprefix('model.')}={_short(v)}" for key, v in overrides.items())
        point = base
        point_hn = {n: list(per_hypernet.get(n, [])) for n in names}
        for key, value in overrides.items():
            keys = key.split(".")
            if keys[0] == "hypernet":
                if keys[1] not in names or len(keys) < 3:
                    raise ConfigError(f"--sweep {key}: expected hypernet.<one of {','.join(names)}>.<field>")
                point_hn[keys[1]].append((keys[2:], value))
            else:
                point = deep_merge(point, _nested(keys, value))
        try:
            point = resolve_run_config(point)
            configs = {}
            for n in names:
                cfg = copy.deepcopy(point)
                cfg["model"]["hypernet"] = hypernet_spec(n, point["model"]["hypernet"], point_hn[n])
                configs[n] = resolve_run_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"sweep point {label}: {err}" if label else str(err)) from None
        check_fair(configs)
        points.append({"label": label, "overrides": overrides, "configs": configs})
    return points


def check_fair(configs: dict[str, dict[str, Any]]) -> None:
    """The comparison's promise: runs of one point differ only under ``model.hypernet``."""
    items = list(configs.items())
    for (a, ca), (b, cb) in itertools.combinations(items, 2):
        bad = [p for p in config_differences(ca, cb) if not (p == "model.hypernet" or p.startswith("model.hypernet."))]
        if bad:
            raise ConfigError(f"the configs of {a} and {b} differ outside model.hypernet ({', '.join(bad)}); "
                              "the comparison would not be fair")


def _check_hypernets(hypernets: Sequence[str] | str) -> list[str]:
    names = [n.strip() for n in (hypernets.split(",") if isinstance(hypernets, str) else hypernets) if n.strip()]
    if not names:
        raise ConfigError("--hypernets: give at least one hypernetwork name")
    if len(set(names)) != len(names):
        raise ConfigError(f"--hypernets: a name appears twice in {','.join(names)}")
    reg = inrkit.registry("hypernets")
    for n in names:
        reg.get(n)  # unknown names fail here with the known ones and the closest match
    return names


def _short(value: Any) -> str:
    return str(value).replace(" ", "")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "point"


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds: expected at least one seed, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"--seeds: expected distinct seeds, got {out}")
    return out


# -- one run ------------------------------------------------------------------------------------
def is_oom(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or an allocator's RuntimeError."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if (oom is not None and isinstance(err, oom)) or isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """The trainer's ``on_step`` callback: throughput after warm-up, peak memory, the minutes budget."""

    def __init__(self, device: torch.device, steps: int, warmup: int, deadline: float | None):
        self.device, self.steps, self.warmup, self.deadline = device, steps, warmup, deadline
        self.step = 0
        self.t_warm = self.t_end = None
        self.peak_mb: float | None = None
        self.stopped_by_budget = False

    def __call__(self, stage: str, step: int, logs: dict) -> None:
        if stage != "vae":
            return
        self.step = step
        if step == self.warmup:
            _sync(self.device)
            self.t_warm = time.perf_counter()
        over = self.deadline is not None and time.perf_counter() >= self.deadline
        if step >= self.steps or over:
            _sync(self.device)
            self.t_end = time.perf_counter()
            if self.device.type == "cuda":
                self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            if over and step < self.steps:
                self.stopped_by_budget = True
                raise _BudgetReached

    def items_per_s(self, batch_size: int) -> float | None:
        if self.t_warm is None or self.t_end is None or self.step <= self.warmup:
            return None
        return (self.step - self.warmup) * batch_size / max(self.t_end - self.t_warm, 1e-9)


def _val_dataset(model, config: dict[str, Any]):
    return run_dataset(model.domain, config["data"], "val")


def _finish_stopped_run(model, config: dict[str, Any], run_dir: Path, clock: StepClock, wall: float) -> dict[str, Any]:
    """What ``fit`` does after a stage, for a run the minutes budget ended: metrics, renders, weights."""
    model.eval()
    val = _val_dataset(model, config)
    stage: dict[str, Any] = {"steps": clock.step, "trained_steps": clock.step, "wall_time_s": round(wall, 3),
                             "stopped_by": "budget_minutes"}
    if len(val):
        stage["heldout"] = model.evaluate(val)
        n = min(int(config["train"].get("n_renders", 8)), len(val))
        x = torch.stack([val[i] for i in range(n)]).float()
        where = run_dir / "reconstructions" / "after-vae"
        paths = model.domain.render(model.reconstruct(x), where, stem="reconstructions")
        paths += model.domain.render(x, where, stem="targets")
        stage["renders"] = [str(Path(p).relative_to(run_dir)) for p in paths]
    save_state(model, run_dir / WEIGHTS_FILE)
    summary = {"stages": {"vae": stage}, "wall_time_s": round(wall, 3), "parameters": model.parameter_report(),
               "device": str(model.device), "stopped_by": "budget_minutes"}
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def build_model(config: dict[str, Any]):
    """The run's LDMI, built under its seed: the encoder is built before the hypernetwork, so
    every hypernetwork's run of one seed starts from the same encoder weights."""
    from .model import LDMI

    torch.manual_seed(int(config["train"]["seed"]))
    return LDMI.from_config(config)


def is_disk_full(err: BaseException) -> bool:
    return getattr(err, "errno", None) == errno.ENOSPC or "no space left on device" in str(err).lower()


def _free_disk(path: Path) -> int:
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def preflight(config: dict[str, Any], run_dir: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Parameter counts from a weightless (meta-device) build, and what cannot fit before trying.

    Lower bounds only, in fp32: training holds weights, gradients and two AdamW moments of the
    trained parameters (more than the card: out of memory, whatever the activations); the run's
    final checkpoint and weights file hold the weights twice and the moments once (more than the
    free disk: the run would die writing them).
    """
    try:
        with torch.device("meta"):
            model = build_model(config)
    except Exception:  # noqa: BLE001 (a part that cannot be built weightless is simply built for real)
        return {}, None
    counts = _param_counts(model)
    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.stage_parameters("vae"))
    del model
    gb = 2.0**30
    if device.type == "cuda":
        need, have = 4 * (n_all + 3 * n_train), torch.cuda.get_device_properties(device).total_memory
        if need > have:
            return counts, {"status": "oom", "predicted": True, "error": (
                f"not run: weights, gradients and AdamW state alone need {need / gb:.1f} GiB, the GPU has {have / gb:.1f} GiB")}
    need, have = 4 * (2 * n_all + 2 * n_train), _free_disk(run_dir)
    if need > have:
        return counts, {"status": "disk", "predicted": True, "error": (
            f"not run: its checkpoint and weights need {need / gb:.1f} GiB, the disk has {have / gb:.1f} GiB free")}
    return counts, None


def train_one(config: dict[str, Any], run_dir: Path, budget_minutes: float | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Stage 1 of one run config into ``run_dir``; returns its record (status ``ok``, ``oom`` (GPU
    memory), ``disk`` (no room for its checkpoint) or ``failed`` (the loss diverged))."""
    seed = int(config["train"]["seed"])
    steps = int(config["train"]["vae"]["steps"])
    batch = int(config["train"]["vae"]["batch_size"])
    device = resolve_device(config["train"]["device"])
    record: dict[str, Any] = {"seed": seed, "run_dir": str(run_dir), "status": "ok"}
    counts, problem = preflight(config, run_dir, device)
    record.update(counts)
    if problem is not None:
        return {**record, **problem}
    model = None
    try:
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = build_model(config)
        record.update(_param_counts(model))
        clock = StepClock(device, steps, warmup=max(1, min(10, steps // 5)),
                          deadline=None if budget_minutes is None else time.perf_counter() + 60.0 * budget_minutes)
        t0 = time.perf_counter()
        try:
            summary = model.fit(out=run_dir, stages=("vae",), overwrite=overwrite, on_step=clock)
        except _BudgetReached:
            summary = _finish_stopped_run(model, config, Path(run_dir), clock, time.perf_counter() - t0)
        stage = summary["stages"]["vae"]
        throughput = clock.items_per_s(batch)
        record.update({
            "steps_reached": int(stage.get("steps", clock.step)),
            "stopped_by": "budget_minutes" if clock.stopped_by_budget else "steps",
            "wall_time_s": stage.get("wall_time_s"),
            "items_per_s": throughput,
            "items_per_s_note": None if throughput is not None else f"too few steps after the {clock.warmup}-step warm-up",
            "peak_memory_mb": clock.peak_mb,
            "memory_note": None if device.type == "cuda" else f"unavailable on {device.type}",
            "heldout": stage.get("heldout"),
            "renders": stage.get("renders", []),
        })
    except (ConfigError, DataError, CheckpointError):
        raise
    except InrkitError as err:  # the trainer's "loss became nan": an outcome of this hypernetwork, not bad input
        record.update(status="failed", error=str(err))
    except Exception as err:  # noqa: BLE001 (only exhausted memory or disk is an outcome; the rest is re-raised)
        if is_oom(err):
            record.update(status="oom", error=str(err).splitlines()[0][:300])
        elif is_disk_full(err):
            record.update(status="disk", error=str(err).splitlines()[0][:300])
        else:
            raise
    finally:
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return record


def _param_counts(model) -> dict[str, Any]:
    report = model.hypernet.parameter_report()
    hyper = report.get("reference_total", report["total"])  # what `inrkit scale` counts too
    return {"hypernet_params": hyper, "hypernet_params_total": report["total"], "inr_params": model.inr.num_params,
            "inr_per_hypernet_param": model.inr.num_params / hyper, "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
            "parameter_report": report}


def decode_timing(config: dict[str, Any], repeats: int = 5) -> dict[str, Any]:
    """``scale_report`` for this run's hypernetwork at the training grid's size and batch size."""
    model_cfg = config["model"]
    domain = build_part("domains", model_cfg["domain"])
    encoder = build_part("encoders", model_cfg["encoder"], in_channels=domain.channels, grid_shape=tuple(domain.grid_shape))
    in_dim = model_cfg["inr"]["in_dim"]
    # scale_report lays a regular grid over the INR's input space; only the number of coordinates
    # matters for time, so a 2D lat/lon grid feeding a 3D INR becomes (lat, lon, 1).
    res = tuple(domain.grid_shape) + (1,) * max(0, in_dim - len(domain.grid_shape))
    device = resolve_device(config["train"]["device"])
    try:
        row = scale_report([model_cfg["hypernet"]], model_cfg["inr"], tuple(encoder.latent_shape), device=device,
                           batch_size=int(config["train"]["vae"]["batch_size"]), resolution=res, repeats=repeats,
                           chunk=model_cfg.get("chunk"))[0]
    except Exception as err:  # noqa: BLE001
        if not is_oom(err):
            raise
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"status": "oom", "decode_ms": None, "decode_peak_memory_mb": None}
    return {"status": "ok", "decode_ms": row["decode_ms"], "decode_peak_memory_mb": row["peak_memory_mb"],
            "decode_batch": row["batch_size"], "decode_coords": row["n_coords"]}


def _prune(run_dir: Path, keep: str) -> None:
    if keep in ("weights", "logs"):
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if keep == "logs":
        (run_dir / WEIGHTS_FILE).unlink(missing_ok=True)


# -- aggregation ----------------------------------------------------------------------------------
def _stats(values: list[float | None]) -> dict[str, Any] | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals), "per_seed": [None if v is None else float(v) for v in values]}


def aggregate(name: str, spec: dict[str, Any], runs: list[dict[str, Any]], decode: dict[str, Any] | None) -> dict[str, Any]:
    """One hypernetwork at one point: the runs' numbers as mean ± std over seeds."""
    ok = [r for r in runs if r["status"] == "ok"]
    status = "ok" if len(ok) == len(runs) else next(r["status"] for r in runs if r["status"] != "ok")
    first = runs[0]
    metric_names: list[str] = []
    for r in ok:
        for k, v in (r.get("heldout") or {}).items():
            if isinstance(v, dict) and k not in metric_names:
                metric_names.append(k)
    metrics = {k: _stats([(r.get("heldout") or {}).get(k, {}).get("mean") for r in ok]) for k in metric_names}
    return {
        "hypernet": name,
        "status": status,
        "spec": spec,
        "hypernet_params": first.get("hypernet_params"),
        "hypernet_params_total": first.get("hypernet_params_total"),
        "inr_params": first.get("inr_params"),
        "inr_per_hypernet_param": first.get("inr_per_hypernet_param"),
        "encoder_params": first.get("encoder_params"),
        "parameter_report": first.get("parameter_report"),
        "n_val": ((ok[0].get("heldout") or {}).get("n_items") if ok else None),
        "metrics": metrics,
        "steps": _stats([r.get("steps_reached") for r in ok]),
        "items_per_s": _stats([r.get("items_per_s") for r in ok]),
        "peak_memory_mb": _stats([r.get("peak_memory_mb") for r in ok]),
        "memory_note": next((r.get("memory_note") for r in runs if r.get("memory_note")), None),
        "decode_ms": (decode or {}).get("decode_ms"),
        "decode_peak_memory_mb": (decode or {}).get("decode_peak_memory_mb"),
        "decode_status": (decode or {}).get("status", "not measured"),
        "runs": [{k: v for k, v in r.items() if k not in PER_MODEL_KEYS} for r in runs],
    }


# -- the comparison --------------------------------------------------------------------------------
def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        is_compare = (out / PLAN_FILE).exists() or (out / RESULT_FILE).exists()
        if resume:
            if not is_compare:
                raise ConfigError(f"cannot resume {out}: it holds no {PLAN_FILE}")
        elif overwrite:
            if not is_compare:
                raise ConfigError(f"refusing to overwrite {out}: it is not an inrkit comparison (no {PLAN_FILE})")
            shutil.rmtree(out)
        else:
            raise ConfigError(f"{out} already exists (pass --resume to reuse its finished runs or --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)


def _reusable(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    record_file = run_dir / RUN_RECORD_FILE
    if not record_file.exists():
        return None
    try:
        if read_run_config(run_dir) != config:
            return None
        return read_json(record_file)
    except CheckpointError:
        return None


def compare(
    hypernets: Sequence[str] | str = ("hd", "mlp"),
    modality: str | None = None,
    data: str | Path | None = None,
    preset: str | None = None,
    inr: str | dict[str, Any] | None = None,
    budget_steps: int | None = None,
    budget_minutes: float | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    sweep: Any = None,
    out: str | Path = "runs/compare",
    set_overrides: Iterable[str] | None = None,
    device: str | None = None,
    *,
    config_file: str | Path | None = None,
    keep: str = "all",
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train LDMI's stage 1 once per hypernetwork, seed and sweep point; write and return the report.

    ``budget_steps`` sets ``train.vae.steps``; ``budget_minutes`` stops each run at that wall time
    (both: whichever comes first; neither: the config's steps). ``seeds``: a count or a list.
    ``sweep``: ``"inr.width=64,128"``, several of them (their product), or ``{key: values}``.
    ``set_overrides``: ``--set`` items; ``hypernet.<name>.<field>=v`` applies to that hypernetwork
    only. ``keep``: ``all``; ``weights`` (drop checkpoints); ``logs`` (drop weights too).
    Returns what ``compare.json`` holds.
    """
    log = log or (lambda msg: None)
    if keep not in KEEP:
        raise ConfigError(f"--keep must be one of {', '.join(KEEP)}, got '{keep}'")
    seed_list = _seeds(seeds)
    points = plan_configs(hypernets, modality, preset, data, inr, budget_steps, budget_minutes, sweep,
                          set_overrides, device, config_file=config_file)
    names = list(points[0]["configs"])
    out = Path(out).expanduser()
    _prepare_out(out, resume=resume, overwrite=overwrite)
    settings = {
        "hypernets": names, "modality": points[0]["configs"][names[0]]["model"]["domain"]["name"],
        "preset": preset if preset is not None or config_file is not None else "paper",
        "config_file": None if config_file is None else str(config_file), "data": None if data is None else str(data),
        "inr": inr, "budget_steps": budget_steps, "budget_minutes": budget_minutes, "seeds": seed_list,
        "sweep": [{"key": k, "values": v} for k, v in parse_sweep(sweep)], "set_overrides": list(set_overrides or []),
        "keep": keep, **_environment(points[0]["configs"][names[0]]),
    }
    write_json(out / PLAN_FILE, {"settings": settings, "points": points})

    total = len(points) * len(names) * len(seed_list)
    done = 0
    results = []
    for point in points:
        base_dir = out / _slug(point["label"]) if point["label"] else out
        rows = []
        for name in names:
            runs = []
            for seed in seed_list:
                done += 1
                config = copy.deepcopy(point["configs"][name])
                config["train"]["seed"] = seed
                config = resolve_run_config(config)
                run_dir = base_dir / f"{_slug(name)}-seed{seed}"
                where = f"[{done}/{total}] {name} seed {seed}" + (f" at {point['label']}" if point["label"] else "")
                if runs and runs[-1]["status"] in ("oom", "disk"):
                    # Deterministic sizes: the next seed would run out of memory or disk the same way.
                    runs.append({**runs[-1], "seed": seed, "run_dir": None, "note": f"not run: seed {runs[-1]['seed']} ended with {runs[-1]['status']}"})
                    log(f"{where}: skipped ({runs[-1]['status']})")
                    continue
                record = _reusable(run_dir, config) if resume else None
                if record is not None:
                    log(f"{where}: reused {run_dir}")
                else:
                    log(f"{where}: training into {run_dir}")
                    record = train_one(config, run_dir, budget_minutes=budget_minutes, overwrite=run_dir.exists())
                    record["run_dir"] = str(run_dir.relative_to(out))
                    if record["status"] == "ok":
                        _prune(run_dir, keep)
                    if run_dir.exists():
                        write_json(run_dir / RUN_RECORD_FILE, record)
                    log(f"{where}: {record['status']}" + (f" ({record['error']})" if record.get("error") else ""))
                runs.append(record)
            decode = decode_timing(point["configs"][name]) if any(r["status"] == "ok" for r in runs) else None
            if decode is not None and base_dir.is_dir():  # kept beside the runs: a cut-off comparison still has it
                write_json(base_dir / DECODE_FILE.format(name=_slug(name)), decode)
            rows.append(aggregate(name, point["configs"][name]["model"]["hypernet"], runs, decode))
        results.append({"label": point["label"], "overrides": point["overrides"], "results": rows})

    from .compare_report import write_reports

    report = {"schema_version": 1, "settings": settings,
              "fairness": {"differ_only_under": "model.hypernet", "checked_pairs": len(points) * math.comb(len(names), 2),
                           "same_seeds": seed_list, "same_budget": {"steps": budget_steps, "minutes": budget_minutes}},
              "points": results}
    report["files"] = write_reports(report, out)
    write_json(out / RESULT_FILE, report)
    return report


def _environment(config: dict[str, Any]) -> dict[str, Any]:
    device = resolve_device(config["train"]["device"])
    precision = config["train"].get("precision", "auto")
    if precision == "auto":  # the trainer's rule: bf16 autocast on CUDA, fp32 elsewhere
        precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    env = {"device": str(device), "torch": torch.__version__, "inrkit": inrkit.__version__, "precision": precision}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
