"""Evaluating a run (what ``inrkit evaluate RUN`` does): held-out reconstruction metrics, the
domain's sample metrics (FID for images) and, for a hyper-transformed run, its HD-vs-decoder report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inrkit.errors import ConfigError
from inrkit.io import plain, write_json
from inrkit.runs import Run, split_data_sets

EVAL_FILE = "eval.json"


def evaluate_run(run: str | Path | Run, data: str | Path | None = None, n_samples: int = 0,
                 features: str | Path | None = None, ddim_steps: int = 50, seed: int = 0, weights: str = "final",
                 device: str | None = None, batch_size: int = 16, runtime: list[str] | None = None) -> dict[str, Any]:
    """Evaluate ``run`` on its held-out split (or ``data``'s val split); writes RUN/eval.json and returns it.
    ``runtime``: ``model.PATH=value`` speed settings for this evaluation (``model.inr.kernel=torch``),
    and with ``data`` also ``data.FIELD=value`` items saying how that data is read
    (``data.units=degC``, ``data.variable=u10``; :func:`inrkit.runs.split_data_sets`).

    ``n_samples``: also draw that many samples for the domain's sample metrics; ``features``: the
    file those metrics need (images: FID's feature network), loaded before anything is sampled.
    """
    if features is not None and not n_samples:
        raise ConfigError("--fid-features needs --n-samples N (FID compares N samples with the held-out images)")
    label = str(run.path if isinstance(run, Run) else run)
    runtime, data_fields = split_data_sets(runtime, data)
    run = run if isinstance(run, Run) else Run.open(run)
    model = run.load_model(device=device, weights=weights, runtime=runtime)
    network = model.domain.load_sample_features(features) if n_samples else None  # a bad file fails here
    val = run.dataset("val", path=data, fields=data_fields)
    result: dict[str, Any] = {
        "run": label,
        "weights": weights,
        "data": {"path": run.data_path(data), "split": "val", "n_items": len(val),
                 **({"fields": data_fields} if data_fields else {})},
        "reconstruction": model.evaluate(val, batch_size=batch_size),
    }
    if n_samples:
        samples = model.sample(n_samples, steps=ddim_steps, seed=seed)
        real = torch.stack([val[i] for i in range(len(val))])
        result["samples"] = {"n": n_samples, "ddim_steps": ddim_steps, "seed": seed,
                             **model.domain.sample_metrics(samples, real, network)}
    from .hyper_transform import is_hyper_transform_run

    if is_hyper_transform_run(run.config):
        from .report import hyper_transform_report

        result["hyper_transform"] = hyper_transform_report(run, model, dataset=val, steps=ddim_steps, seed=seed,
                                                           batch_size=batch_size)
    write_json(run.path / EVAL_FILE, plain(result))
    return result
