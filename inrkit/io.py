"""Atomic file writes and safetensors weights (never pickle)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import CheckpointError, OutputError, os_error_message


_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_file(tmp: str, data: bytes) -> None:
    """Every byte inrkit writes goes through here (tests simulate a full disk by replacing it)."""
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic(path: Path, data: bytes) -> None:
    """``data`` → ``path`` through a temporary sibling renamed into place: readers see the old file
    or the new one, never half of one; on failure the temporary is removed and the old file kept."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        _write_file(tmp, data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs are ordinary files
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise OutputError.cannot_write(path, err) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """For writers that want a path of their own (NetCDF, zarr, a whole store): yield a temporary
    sibling of ``path`` (file or directory to be); it replaces ``path`` only on success. On failure
    the temporary is removed, ``path`` is left as it was, and an OSError (a full disk...) becomes
    one :class:`OutputError` naming ``path``."""
    path = Path(path)
    work = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        tmp = work / path.name
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = work / f".old-{path.name}"
            os.replace(path, old)  # the old store goes only once the new one is complete
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError.cannot_write(path, err) from None
    finally:
        if work is not None:
            remove_staging(work)


def remove_staging(folder: Path) -> None:
    """Remove a writer's staging folder (the temporary of :func:`atomic_output` or an output
    folder) once no write can still land in it.

    zarr 3 writes chunks and metadata concurrently, as tasks on its own event loop that run the
    file writes in threads. When one write fails the error comes back at once while the other
    writes go on; finishing after the folder is removed, they would create it again and leave it
    behind. So zarr's loop is first given time (up to 2 minutes) to finish every task it has; with
    nothing under way (every success, and any process that has not imported zarr) that costs nothing.
    """
    _wait_for_zarr(120.0)
    shutil.rmtree(folder, ignore_errors=True)


def _wait_for_zarr(timeout_s: float) -> None:
    sync = sys.modules.get("zarr.core.sync")  # zarr 2 has no loop of its own: nothing runs on
    loop = (getattr(sync, "loop", None) or [None])[0] if sync is not None else None
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def others_done() -> None:
        me, deadline = asyncio.current_task(), time.monotonic() + timeout_s
        while (pending := [t for t in asyncio.all_tasks() if t is not me and not t.done()]):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.wait(pending, timeout=left)  # finished tasks may have started others

    try:
        asyncio.run_coroutine_threadsafe(others_done(), loop).result(timeout_s + 5)
    except Exception:  # the loop went away meanwhile: nothing left to wait for
        pass


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, data)


def write_figure(fig, path: Path, **savefig_kwargs) -> Path:
    """A matplotlib figure → an image file (format from the suffix), written atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **savefig_kwargs)
    _atomic(Path(path), buf.getvalue())
    return Path(path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing file: {path}") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupt JSON (not UTF-8 text)") from None
    except OSError as err:
        raise CheckpointError(f"cannot read {os_error_message(err, path)}") from None


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors file, written atomically; tensors are made contiguous CPU copies."""
    flat = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    _atomic(Path(path), save(flat, metadata=metadata))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors. Missing, unreadable, corrupt, or holding NaN/inf in a float
    tensor (inrkit never writes such weights) is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file: {path}")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise CheckpointError(f"cannot read {os_error_message(err, path)}") from None
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: corrupt safetensors file ({str(err).splitlines()[0]})") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: '{name}' holds {bad} non-finite value(s) (NaN or inf); inrkit never"
                                  " writes such weights, so the file is damaged or was written elsewhere")
    return tensors


def save_state(module: torch.nn.Module, path: Path) -> None:
    save_tensors(module.state_dict(), path)


def load_state(module: torch.nn.Module, path: Path, strict: bool = True) -> None:
    state = load_tensors(path)
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the model ({first})") from None


def plain(x):
    """JSON-safe copy (numpy arrays and scalars, tensors, paths) of run metadata; non-finite floats → None."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return plain(x.tolist())
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no inf/nan; e.g. a Chamfer distance to an empty shape
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)
