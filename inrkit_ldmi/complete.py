"""Completion of one item from a user's own observations, and what it writes.

The observations (``inrkit.observations.Observations``, from the domain's reader) are points in
the domain with model-space values; :func:`complete` draws n latents from the prior guided
towards them (the decoded INR is compared *at those points*), decodes them at any resolution,
and measures the fit at the observed points, guided and, for reference, unguided from the same
noise. :func:`write_completion` renders the samples, their mean and per-location spread in the
domain's formats and writes ``complete.json``. Nothing here names a modality.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from inrkit.io import write_json
from inrkit.observations import Observations
from inrkit.outputs import output_folder

from .guidance import check_guidable, guided_latents, values_at


@dataclass
class Completion:
    samples: torch.Tensor    # (n, c, *shape) model space
    latents: torch.Tensor    # (n, *latent_shape)
    fit: dict[str, Any]      # agreement with the observations, guided and unguided
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> torch.Tensor:
        return self.samples.mean(0, keepdim=True)

    @property
    def std(self) -> torch.Tensor:
        """Per-location standard deviation across the n samples (population; 0 for n = 1)."""
        return self.samples.std(0, keepdim=True, correction=0)


def observation_fit(model, z: torch.Tensor, obs: Observations, batch_size: int = 16) -> dict[str, Any]:
    """RMSE at the observed points in the observations' units (and in model space), per sample and overall."""
    pred = values_at(model, z, obs.coords, batch_size=batch_size)
    w = obs.observed.float()[None]
    sq = ((pred - obs.values[None]) ** 2 * w).flatten(1).sum(1) / w.flatten(1).sum(1)
    rmse = sq.sqrt()
    out: dict[str, Any] = {
        "rmse": float(sq.mean().sqrt()) * obs.value_scale, "rmse_model_space": float(sq.mean().sqrt()),
        "rmse_per_sample": [float(v) * obs.value_scale for v in rmse],
    }
    if model.domain.default_likelihood == "bernoulli":  # occupancies: thresholded agreement too
        hit = ((pred > 0.5) == (obs.values[None] > 0.5)).float() * w
        out["accuracy"] = float(hit.sum() / (w.sum() * pred.shape[0]))
    return out


def complete(model, obs: Observations, *, n: int = 4, resolution=None, steps: int = 50, guidance: float = 1.0,
             likelihood: str = "gaussian", seed: int | None = None, clip: float | None = None,
             batch_size: int = 16, use_ema: bool = True, reference: bool = True) -> Completion:
    """n completions of the item ``obs`` observes, decoded at ``resolution`` (default: the data grid)."""
    obs.check(model.domain.coord_dim, model.domain.channels)
    method = check_guidable(model)
    far = obs.far_outside()
    if far:
        top = float(obs.values[obs.observed].abs().max()) * obs.value_scale
        warnings.warn(f"{obs.source}: {far} of {int(obs.observed.sum())} observed values lie far outside the range"
                      f" the model was trained on (up to {top:.4g} {obs.units} from the middle of that range, which"
                      f" spans ±{obs.value_scale:.4g}): check their units; the completions follow them regardless")
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    kw = dict(n=n, steps=steps, likelihood=likelihood, seed=seed, use_ema=use_ema, batch_size=batch_size, clip=clip)
    weights = obs.observed.float()[None]
    z = guided_latents(model, obs.coords, obs.values[None], weights, guidance=guidance, **kw)
    fit: dict[str, Any] = {"units": obs.units, "guided": observation_fit(model, z, obs, batch_size),
                           "far_outside_range": far}
    if reference:
        z0 = guided_latents(model, obs.coords, obs.values[None], weights, guidance=0.0, **kw)
        fit["unguided"] = observation_fit(model, z0, obs, batch_size)
        fit["improvement"] = fit["unguided"]["rmse"] / max(fit["guided"]["rmse"], 1e-12)
    shape = model.domain.resolve_resolution(resolution)
    samples = model.decode(z, resolution=shape, batch_size=batch_size)
    settings = {"n": n, "resolution": list(shape), "steps": steps, "guidance": guidance, "likelihood": likelihood,
                "guidance_method": method, "seed": seed, "clip": clip, "use_ema": use_ema}
    return Completion(samples=samples, latents=z.cpu(), fit=fit, settings=settings)


def write_completion(model, obs: Observations, result: Completion, out: str | Path,
                     record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Samples, their mean and spread (domain formats), the observed preview, and ``complete.json``."""
    out = Path(out)
    s = result.settings
    size = "x".join(map(str, s["resolution"]))
    meta = {"observations": obs.source, "seed": s["seed"], "guidance": s["guidance"], "steps": s["steps"]}
    domain = model.domain
    with output_folder(out) as staged:  # replaces only what inrkit wrote there
        at = staged.path
        paths = [*domain.render(result.samples, at, stem=f"completions-{size}-seed{s['seed']}", meta=meta),
                 *domain.render(result.mean, at, stem=f"mean-{size}", meta={**meta, "quantity": f"mean of {s['n']} samples"}),
                 *domain.render_spread(result.std, at, stem=f"spread-{size}", meta=meta)]
        if obs.preview is not None:
            paths += domain.render(obs.preview[None], at, stem="observed", meta=meta)
        spread = result.std * obs.value_scale
        summary = {
            **(record or {}), "observations": obs.describe(), **s, "fit": result.fit,
            "spread": {"units": obs.units, "mean": float(spread.mean()), "max": float(spread.max())},
            "files": [str(p) for p in staged.finals(paths)],
        }
        write_json(at / "complete.json", summary)
    summary["files"].append(str(out / "complete.json"))
    return summary


def complete_file(model, path: str | Path, out: str | Path, options: dict[str, Any] | None = None,
                  record: dict[str, Any] | None = None, **kwargs) -> dict[str, Any]:
    """Read ``path`` with the domain's reader (``options``: its keyword options), complete, write; the summary."""
    obs = model.domain.read_observations(Path(path), **(options or {}))
    return write_completion(model, obs, complete(model, obs, **kwargs), out, record=record)
