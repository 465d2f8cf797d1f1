"""Training logs: ``metrics.jsonl`` (one JSON object a line), a rich progress bar and, when the
``tensorboard`` package is importable, TensorBoard event files. Only the main process logs.

TensorBoard (``RUN/tensorboard/``) gets the training scalars by step (not the wall-clock
``time`` that metrics.jsonl keeps: TensorBoard has its own), the held-out metrics at each stage's
end (``heldout/<metric>``), the PNGs of every preview and stage end (``<stage>/samples``,
``<stage>/reconstructions``, ``<stage>/targets``), and the run's hyperparameters with its
final held-out metrics (``add_hparams``).
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import OutputError


def _tensorboard_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional extra: `pip install inrkit[tensorboard]`
        return None
    return SummaryWriter(log_dir=str(log_dir))


class MetricsLogger:
    """Appends records to ``metrics.jsonl`` (kept across resumes) and mirrors them to TensorBoard."""

    def __init__(self, run_dir: Path | None, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled and run_dir is not None
        self.path = Path(run_dir) / "metrics.jsonl" if run_dir is not None else None
        self._tb = _tensorboard_writer(Path(run_dir) / "tensorboard") if (self.enabled and tensorboard) else None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _plain(v) for k, v in record.items()}
        try:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as err:  # a full disk: one line naming the file (a partial last line is skipped on reading)
            raise OutputError.cannot_write(self.path, err) from None
        if self._tb is not None and "step" in record:
            stage = record.get("stage", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "time") and math.isfinite(value):
                    self._tb.add_scalar(f"{stage}/{key}", value, record["step"])

    def log_images(self, stage: str, step: int, paths) -> None:
        """The PNGs among ``paths`` (a preview's or a stage end's renders) as TensorBoard images."""
        if self._tb is None:
            return
        import numpy as np
        from PIL import Image

        for path in paths or ():
            path = Path(path)
            if path.suffix.lower() != ".png" or not path.is_file():
                continue
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
            self._tb.add_image(f"{stage}/{path.stem}", pixels, step, dataformats="HWC")

    def log_heldout(self, stage: str, step: int, metrics: dict[str, Any] | None) -> None:
        """Held-out metrics (``{name: {mean, std}}``) as ``heldout/<name>`` scalars at ``step``."""
        if self._tb is None or not metrics:
            return
        for key, value in _means(metrics).items():
            self._tb.add_scalar(f"heldout/{key}", value, step)

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, Any] | None) -> None:
        """The run's resolved config (flattened: ``model.hypernet.dim`` ...) and its final held-out metrics."""
        if self._tb is None:
            return
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v)) for k, v in _flatten(config).items()}
        # run_name ".": in the run's own event folder, not a new timestamped one beside it
        self._tb.add_hparams(hparams, {f"hparam/{k}": v for k, v in _means(metrics or {}).items()}, run_name=".")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _means(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v["mean"]) for k, v in metrics.items()
            if isinstance(v, dict) and isinstance(v.get("mean"), (int, float)) and math.isfinite(v["mean"])}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = value
    return out


def _plain(v):
    if hasattr(v, "item"):
        return v.item()
    return v


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves a partial last line
    return out


class StageProgress:
    """A progress bar for one stage showing step, loss and items/s; silent when disabled."""

    def __init__(self, stage: str, total: int, start: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.total = total
        self._last_print = 0.0
        self._progress = None
        if not enabled:
            return
        console = Console(file=sys.stderr)
        self._interactive = console.is_terminal
        self._progress = Progress(
            TextColumn(f"[bold]{stage}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self._interactive,
        )
        self._task = self._progress.add_task(stage, total=total, completed=start, info="")
        self._stage = stage
        self._progress.start()

    def update(self, step: int, loss: float | None = None, items_per_s: float | None = None) -> None:
        if self._progress is None:
            return
        info = []
        if loss is not None:
            info.append(f"loss {loss:.4g}")
        if items_per_s is not None:
            info.append(f"{items_per_s:.1f} items/s")
        text = "  ".join(info)
        self._progress.update(self._task, completed=step, info=text)
        # Without a terminal (CI logs, pipes) a live bar is noise; print a line now and then.
        now = time.monotonic()
        if not self._interactive and (now - self._last_print > 10 or step == self.total):
            self._last_print = now
            print(f"{self._stage} {step}/{self.total} {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
