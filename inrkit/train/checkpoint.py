"""Training checkpoints: ``checkpoints/checkpoint-{stage}-{step}/`` directories, written atomically.

A checkpoint holds the model (``model.safetensors``), the optimiser (tensors in
``optimizer.safetensors``, everything else in ``optimizer.json``), each process's random number
generator states (``rng-{rank}.safetensors`` + ``state.json``) and ``state.json`` (stage, step).
Nothing is pickled. A directory is assembled under a temporary name and renamed into place, so a
run killed mid-save leaves either the old checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..io import load_tensors, plain, read_json, save_tensors, write_json

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^checkpoint-(?P<stage>[A-Za-z0-9_]+)-(?P<step>\d+)$")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointRef:
    stage: str
    step: int
    path: Path


def checkpoint_name(stage: str, step: int) -> str:
    return f"checkpoint-{stage}-{step}"


def checkpoint_stage(name: str) -> str | None:
    """The stage of a checkpoint name (``checkpoint-vae-500`` → ``vae``), None for other names."""
    m = _NAME.match(name)
    return m["stage"] if m else None


def list_checkpoints(run_dir: Path, stage: str | None = None) -> list[CheckpointRef]:
    """Finished checkpoints of a run (temporary directories are ignored), oldest step first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    refs = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (stage is None or m["stage"] == stage):
            refs.append(CheckpointRef(m["stage"], int(m["step"]), p))
    return sorted(refs, key=lambda r: (r.stage, r.step))


def latest_checkpoint(run_dir: Path, stage: str) -> CheckpointRef | None:
    refs = list_checkpoints(run_dir, stage)
    return refs[-1] if refs else None


# -- optimiser state without pickle ------------------------------------------------------

def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` → (tensors for safetensors, the rest as JSON-able data)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for idx, slot in state["state"].items():
        plain = {}
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value
            else:
                plain[key] = value
        meta["state"][str(idx)] = plain
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta.get("state", {}).items()}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = []
    for group in meta["param_groups"]:
        # JSON turns tuples (Adam's betas) into lists; give optimisers back what they wrote.
        groups.append({k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in group.items()})
    return {"state": state, "param_groups": groups}


# -- random number generators ------------------------------------------------------------

def capture_rng(generators: dict[str, torch.Generator] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    for name, gen in (generators or {}).items():
        tensors[f"generator.{name}"] = gen.get_state()
    np_state = np.random.get_state()
    return tensors, {
        "python": plain(random.getstate()),  # tuples as JSON lists; restore_rng makes them tuples again
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(tensors["torch"].cpu())
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"].cpu())
    for name, gen in (generators or {}).items():
        key = f"generator.{name}"
        if key in tensors:
            gen.set_state(tensors[key].cpu())
    if "python" in plain:
        random.setstate(_tupled(plain["python"]))
    if "numpy" in plain:
        kind, keys, pos, has_gauss, cached = plain["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _tupled(x):
    return tuple(_tupled(v) for v in x) if isinstance(x, list) else x


# -- save / load ---------------------------------------------------------------------------

def save_checkpoint(
    run_dir: Path,
    stage: str,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    engine,
    generators: dict[str, torch.Generator] | None = None,
    extra: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path:
    """Every process calls this (each saves its RNG state); rank 0 writes the rest and renames."""
    root = Path(run_dir) / CHECKPOINT_DIR
    final = root / checkpoint_name(stage, step)
    tmp = root / f".tmp-{checkpoint_name(stage, step)}"
    try:
        if engine.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        engine.barrier()
        rng_tensors, rng_plain = capture_rng(generators)
        save_tensors(rng_tensors, tmp / f"rng-{engine.rank}.safetensors")
        write_json(tmp / f"rng-{engine.rank}.json", rng_plain)
        if engine.is_main:
            save_tensors(model.state_dict(), tmp / "model.safetensors")
            if optimizer is not None:
                opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
                save_tensors(opt_tensors, tmp / "optimizer.safetensors")
                write_json(tmp / "optimizer.json", opt_meta)
        engine.barrier()
        if engine.is_main:
            # state.json last: a directory without it was never finished.
            write_json(tmp / "state.json", {
                "format_version": FORMAT_VERSION, "stage": stage, "step": int(step),
                "world_size": engine.world_size, "saved_at": time.time(), **(extra or {}),
            })
            _replace_dir(tmp, final)
    except BaseException:
        # a full disk (or anything else) leaves no temporary behind, and the older checkpoints as they were
        if engine.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if engine.is_main and keep:
        prune_checkpoints(run_dir, stage, keep)
    engine.barrier()
    return final


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def _discard(path: Path) -> None:
    """Rename first, then delete: a process killed while deleting never leaves half a checkpoint
    under a checkpoint's name."""
    trash = path.with_name(f".trash-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def prune_checkpoints(run_dir: Path, stage: str, keep: int) -> None:
    """Keep the ``keep`` newest checkpoints of ``stage`` (each stage keeps its own)."""
    refs = list_checkpoints(run_dir, stage)
    for ref in refs[: max(0, len(refs) - keep)]:
        _discard(ref.path)


def remove_checkpoints(run_dir: Path, stage: str) -> None:
    for ref in list_checkpoints(run_dir, stage):
        _discard(ref.path)


def recover_interrupted(run_dir: Path) -> None:
    """Tidy what a killed process left in ``checkpoints/`` (all of it inrkit's own making).

    A kill between the two renames of :func:`_replace_dir` leaves ``.old-NAME`` (the previous
    copy) and maybe a finished ``.tmp-NAME``: the finished one goes back under NAME. Unfinished
    temporaries and half-deleted ``.trash-`` folders are removed.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return
    for old in sorted(root.glob(".old-checkpoint-*")):
        final = old.with_name(old.name[len(".old-"):])
        tmp = old.with_name(f".tmp-{final.name}")
        if not final.exists():
            os.replace(tmp if (tmp / "state.json").is_file() else old, final)
        shutil.rmtree(old, ignore_errors=True)
    for leftover in [*root.glob(".tmp-checkpoint-*"), *root.glob(".trash-checkpoint-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def verify_checkpoint(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be loaded (None: every file in it reads)."""
    try:
        read_state(path)
        for file in sorted(Path(path).iterdir()):
            if file.suffix == ".safetensors":
                load_tensors(file)
            elif file.suffix == ".json":
                read_json(file)
        if not (Path(path) / "model.safetensors").is_file():
            raise CheckpointError(f"missing weights file: {Path(path) / 'model.safetensors'}")
        for file in sorted(Path(path).glob("*.json")):  # tensors and the rest are written in pairs
            twin = file.with_suffix(".safetensors")
            if file.name != "state.json" and not twin.is_file():
                raise CheckpointError(f"missing weights file: {twin}")
        for file in sorted(Path(path).glob("*.safetensors")):
            twin = file.with_suffix(".json")
            if file.name != "model.safetensors" and not twin.is_file():
                raise CheckpointError(f"missing file: {twin}")
    except CheckpointError as err:
        return str(err)
    return None


def set_aside_corrupt(run_dir: Path, stage: str, use_older: bool) -> CheckpointRef | None:
    """The newest intact checkpoint of ``stage``: a corrupt newer one is an error, or, with
    ``use_older``, renamed ``corrupt-checkpoint-...`` (kept for inspection, never loaded again)."""
    for ref in reversed(list_checkpoints(run_dir, stage)):
        why = verify_checkpoint(ref.path)
        if why is None:
            return ref
        if not use_older:
            older = [r for r in list_checkpoints(run_dir, stage) if r.step < ref.step and verify_checkpoint(r.path) is None]
            fallback = (f"pass --resume-older to continue from {older[-1].path.name}, the newest intact one"
                        if older else f"no older intact '{stage}' checkpoint exists: start again with --overwrite")
            raise CheckpointError(f"cannot resume: the newest '{stage}' checkpoint is corrupt ({why}); {fallback}")
        os.replace(ref.path, ref.path.with_name(f"corrupt-{ref.path.name}"))
    return None


def read_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    state = read_json(path / "state.json")
    if not isinstance(state, dict) or "step" not in state or "stage" not in state:
        raise CheckpointError(f"{path / 'state.json'}: not a checkpoint state (needs 'stage' and 'step')")
    return state


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    engine=None,
    generators: dict[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; any missing or corrupt file is a CheckpointError."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint not found: {path}")
    state = read_state(path)
    load_model_weights(model, path / "model.safetensors")
    if optimizer is not None:
        tensors = load_tensors(path / "optimizer.safetensors")
        meta = read_json(path / "optimizer.json")
        try:
            optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta))
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{path}: optimizer state does not match ({str(err).splitlines()[0]})") from None
        _state_like_parameters(optimizer)
    if generators is not None or engine is not None:
        rank = engine.rank if engine is not None else 0
        rng_file = path / f"rng-{rank}.safetensors"
        if not rng_file.exists():  # resumed on more processes than saved: reuse rank 0's stream
            rng_file = path / "rng-0.safetensors"
        plain_file = rng_file.with_suffix(".json")
        restore_rng(load_tensors(rng_file), read_json(plain_file), generators)
    return state


def _state_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout.
    Checkpoints hold them contiguous; a channels-last parameter (train.channels_last) would otherwise
    meet NCHW moments, which fused AdamW rejects on CUDA and, on CPU, pairs element by element in
    memory order: a silently wrong update."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if (isinstance(value, torch.Tensor) and value.shape == p.shape and value.dim() > 1
                        and value.stride() != p.stride()):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def load_model_weights(model: torch.nn.Module, file: Path, strict: bool = True) -> None:
    """safetensors → model, on the model's own device; a mismatch is a CheckpointError."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    tensors = load_tensors(file, device=device)
    mismatch = weights_mismatch(model.state_dict(), tensors, strict)
    if mismatch:
        raise CheckpointError(f"{file}: weights do not match the model ({mismatch}); were they saved by a model"
                              " of another configuration?")
    try:
        model.load_state_dict(tensors, strict=strict)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        detail = "; ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise CheckpointError(f"{file}: weights do not match the model ({first} {detail})".strip()) from None


def weights_mismatch(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor], strict: bool = True) -> str:
    """What keeps ``given`` from loading into a model whose state is ``own``, in a few words
    (counts and the first names; empty when it loads)."""
    def first(names: list[str]) -> str:
        return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")

    shaped = [f"{k} {tuple(given[k].shape)} in the file, {tuple(v.shape)} here"
              for k, v in own.items() if k in given and tuple(given[k].shape) != tuple(v.shape)]
    parts = [f"{len(shaped)} of another shape: {first(shaped)}"] if shaped else []
    if strict:
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        parts += [f"{len(missing)} missing: {first(missing)}"] if missing else []
        parts += [f"{len(unexpected)} not in the model: {first(unexpected)}"] if unexpected else []
    return "; ".join(parts)

