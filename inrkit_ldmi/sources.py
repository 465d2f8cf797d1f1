"""Pre-trained latent diffusion models to hyper-transform: where their parts and weights come from.

A *source* is either an inrkit ``ldm`` run directory (encoder, conv decoder and diffusion prior,
rebuilt from its config.yaml) or a local folder holding a diffusers ``AutoencoderKL``
(``config.json`` + ``diffusion_pytorch_model.safetensors``, or a pipeline folder with them under
``vae/``). The diffusers layout is read by inrkit's own modules (:mod:`.autoencoder_kl`), so
diffusers need not be installed; nothing is downloaded. An autoencoder has no prior: the prior is
then trained on its frozen latents, or taken from another run (``--prior-from RUN``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from inrkit.errors import CheckpointError, ConfigError, os_error_message
from inrkit.io import load_tensors
from inrkit.run_folder import is_run_dir
from inrkit.runs import read_run_config, weights_path

from .autoencoder_kl import AutoencoderKLConfig
from .config import build_part, validate_part

DIFFUSERS_CONFIG = "config.json"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
KIND_RUN = "inrkit-ldm"
KIND_DIFFUSERS = "diffusers-autoencoder-kl"


@dataclass
class Source:
    """The frozen parts of a pre-trained LDM: specs (registry plain data) and weights."""

    kind: str
    path: Path
    encoder: dict[str, Any]
    decoder: dict[str, Any]
    encoder_state: dict[str, torch.Tensor]
    decoder_state: dict[str, torch.Tensor]
    in_channels: int
    domain: dict[str, Any] | None = None  # the run's domain; a diffusers folder knows only its channels
    data: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None  # None: the source has no trained prior
    prior_state: dict[str, torch.Tensor] | None = None
    prior_origin: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def latent_shape(self, grid_shape) -> tuple[int, ...]:
        """The latent grid the source's encoder gives for data on ``grid_shape``."""
        enc = build_part("encoders", self.encoder, in_channels=self.in_channels, grid_shape=tuple(grid_shape))
        return tuple(int(n) for n in enc.latent_shape)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "prior": self.prior_origin, **self.info}


def load_source(path: str | Path, weights: str = "final") -> Source:
    """An inrkit LDM run or a diffusers AutoencoderKL folder → :class:`Source`; anything else is refused."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"--from: {path} does not exist")
    path = path.resolve()
    if is_run_dir(path):
        return _from_run(path, weights)
    for folder in (path, path / "vae"):
        if (folder / DIFFUSERS_CONFIG).is_file():
            return _from_diffusers(folder)
    raise ConfigError(f"--from: {path} is neither an inrkit ldm run (config.yaml) nor a diffusers AutoencoderKL"
                      f" folder ({DIFFUSERS_CONFIG} + {DIFFUSERS_WEIGHTS})")


def _split(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _from_run(run_dir: Path, weights: str) -> Source:
    config = read_run_config(run_dir)
    model = config["model"]
    if model["name"] != "ldm":
        hint = " (an LDMI run already decodes into INRs)" if model["name"] == "ldmi" else ""
        raise ConfigError(f"--from: {run_dir} is an '{model['name']}' run; hyper-transforming needs an 'ldm' run"
                          f" (encoder + conv decoder + prior){hint}")
    model = validate_part("models", model, f"{run_dir}/config.yaml: model")
    state = load_tensors(weights_path(run_dir, weights))
    prior_state = _split(state, "prior.")
    domain = build_part("domains", model["domain"])
    trained_prior = _prior_trained(prior_state)
    return Source(
        kind=KIND_RUN, path=run_dir, encoder=model["encoder"], decoder=model["decoder"],
        encoder_state=_split(state, "encoder."), decoder_state=_split(state, "decoder."),
        in_channels=domain.channels, domain=model["domain"], data=config.get("data"),
        prior=model["prior"] if trained_prior else None, prior_state=prior_state if trained_prior else None,
        prior_origin=str(run_dir) if trained_prior else None,
        info={"likelihood": model["likelihood"]},
    )


def _prior_trained(prior_state: dict[str, torch.Tensor]) -> bool:
    """A run trained only to its vae stage saved an untrained prior (its latent scale never set)."""
    flag = prior_state.get("scale_is_set")
    return bool(prior_state) and (flag is None or bool(flag))


def _from_diffusers(folder: Path) -> Source:
    cfg_file, weights_file = folder / DIFFUSERS_CONFIG, folder / DIFFUSERS_WEIGHTS
    try:
        raw = json.loads(cfg_file.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{cfg_file}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{cfg_file}: not valid JSON (not UTF-8 text)") from None
    except OSError as err:
        raise ConfigError(f"cannot read {os_error_message(err, cfg_file)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_file}: expected a JSON object, got {type(raw).__name__}")
    cls = raw.get("_class_name", "AutoencoderKL")
    if cls != "AutoencoderKL":
        raise ConfigError(f"{cfg_file}: _class_name is '{cls}'; only a diffusers AutoencoderKL can be hyper-transformed")
    if raw.get("act_fn", "silu") != "silu":
        raise ConfigError(f"{cfg_file}: act_fn '{raw['act_fn']}' is not supported (AutoencoderKL uses silu)")
    for key in ("down_block_types", "up_block_types"):
        kinds = set(raw.get(key) or [])
        if kinds - {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
            raise ConfigError(f"{cfg_file}: {key} {sorted(kinds)} are not the standard AutoencoderKL blocks")
    fields = {k: raw[k] for k in AutoencoderKLConfig.model_fields if raw.get(k) is not None}
    spec = validate_part("encoders", {"name": "autoencoder_kl", **fields}, str(cfg_file))
    in_ch, out_ch = int(raw.get("in_channels", 3)), int(raw.get("out_channels", 3))
    if in_ch != out_ch:
        raise ConfigError(f"{cfg_file}: in_channels {in_ch} != out_channels {out_ch}; the HD learns to rebuild its input")
    state = load_tensors(weights_file)
    enc = {**_split(state, "encoder."), **{k: v for k, v in state.items() if k.startswith("quant_conv.")}}
    dec = {**_split(state, "decoder."), **{k: v for k, v in state.items() if k.startswith("post_quant_conv.")}}
    if not enc or not dec:
        raise CheckpointError(f"{weights_file}: no encoder.* / decoder.* weights (not an AutoencoderKL checkpoint)")
    info = {"scaling_factor": spec["scaling_factor"], "sample_size": raw.get("sample_size")}
    return Source(kind=KIND_DIFFUSERS, path=folder, encoder=spec, decoder=dict(spec), encoder_state=_legacy_names(enc),
                  decoder_state=_legacy_names(dec), in_channels=in_ch, info=info)


_LEGACY = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def _legacy_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Older diffusers checkpoints name the mid-block attention query/key/value/proj_attn (as 1×1 convs
    in the original LDM): today's names and Linear shapes."""
    out = {}
    for k, v in state.items():
        for old, new in _LEGACY.items():
            if old in k:
                k = k.replace(old, new)
                if v.dim() == 4:
                    v = v[:, :, 0, 0]
        out[k] = v
    return out


def load_prior(run: str | Path, weights: str = "final") -> tuple[dict[str, Any], dict[str, torch.Tensor], tuple[int, ...]]:
    """The trained prior of any inrkit run (``--prior-from``): its spec, weights and latent shape."""
    run_dir = Path(run).expanduser()
    config = read_run_config(run_dir)
    model = validate_part("models", config["model"], f"{run_dir}/config.yaml: model")
    if "prior" not in model:
        raise ConfigError(f"--prior-from: the '{model['name']}' run {run_dir} has no prior")
    state = _split(load_tensors(weights_path(run_dir, weights)), "prior.")
    if not _prior_trained(state):
        raise ConfigError(f"--prior-from: the prior of {run_dir} was never trained (run its prior stage first)")
    domain = build_part("domains", model["domain"])
    enc = build_part("encoders", model["encoder"], in_channels=domain.channels, grid_shape=tuple(domain.grid_shape))
    return model["prior"], state, tuple(int(n) for n in enc.latent_shape)


def check_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``module`` exactly; a mismatch names the first differing key and both shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        first = f"missing '{missing[0]}'" if missing else f"unexpected '{extra[0]}'"
        raise CheckpointError(f"{where}: weights do not match the model ({len(missing)} missing, {len(extra)} unexpected;"
                              f" {first})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{where}: '{k}' has shape {tuple(v.shape)} in the source, {tuple(own[k].shape)} in the model")
    module.load_state_dict(state)


__all__ = ["KIND_DIFFUSERS", "KIND_RUN", "Source", "check_weights", "load_prior", "load_source"]
