"""The generic multi-stage trainer: AdamW, clipping, autocast, DDP, checkpoints and resume.

It knows no model by name. A trainable model is an ``nn.Module`` with

- ``stages``: the stage names in training order (e.g. ``("vae", "prior")``);
- ``stage_parameters(stage)``: the parameters that stage optimises (all others are frozen);
- ``stage_loss(stage, batch, points=None, generator=None) -> (loss, logs)``: a scalar loss and a
  dict of scalar tensors to log; ``points`` is the stage's random-coordinate budget, ``generator``
  a CPU generator whose state the checkpoints carry;

and optionally

- ``prepare_stage(stage, dataset) -> dataset | None``: called before a stage (freeze, cache
  latents...); the dataset it returns is what the stage iterates;
- ``after_step(stage)``: after each optimiser step (EMA updates);
- ``preview(stage, step, context)``: every ``sample_every`` steps on the main process; the PNG
  paths it returns (if any) go to TensorBoard;
- ``after_stage(stage, context) -> dict``: on the main process when a stage ends (renders,
  held-out metrics); what it returns goes into the run summary (``heldout`` and ``renders`` to
  TensorBoard too).

The hooks' ``context`` (:class:`StageContext`) holds what the run gives them: the output folder,
the held-out data and the train config. A model keeps none of it.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import ConfigError, InrkitError, Interrupted, NonFiniteLoss, from_worker
from . import checkpoint as ckpt
from .config import StageConfig, TrainConfig
from .engine import Engine, to_device
from .fast import (DeviceData, StepLogs, all_finite, channels_last_dims, make_optimizer, speed_settings,
                   to_channels_last)
from .logging import MetricsLogger, StageProgress
from .sampler import StepBatchSampler
from .schedule import stage_lr
from .stage_order import earlier_stage_note, past_steps_note, stage_reached
from .stopping import StopOnSignals


@dataclass(frozen=True)
class StageContext:
    """What the end-of-stage and preview hooks get from the run."""

    run_dir: Path | None  # the output folder (None: a run that writes nothing)
    heldout: Any  # the held-out dataset, or None
    config: TrainConfig  # the whole train config (render counts, sampling steps...)


class _StageStep(nn.Module):
    """Routes ``forward`` to one stage's loss, so that DDP and torch.compile see a plain module."""

    def __init__(self, model: nn.Module, stage: str):
        super().__init__()
        self.model = model
        self.stage = stage

    def forward(self, batch, **kwargs):
        return self.model.stage_loss(self.stage, batch, **kwargs)


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        engine: Engine | None = None,
        on_step: Callable[[str, int, dict], None] | None = None,
        heldout=None,
        run_config: dict[str, Any] | None = None,
    ):
        self.model = model
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.engine = engine or Engine(config.device)
        self.on_step = on_step
        self.context = StageContext(self.run_dir, heldout, config)
        self.run_config = run_config  # the resolved run config, TensorBoard's hparams
        if self.run_dir is not None and self.engine.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = MetricsLogger(self.run_dir, enabled=self.engine.is_main, tensorboard=config.tensorboard)
        self.model.to(self.engine.device)
        # the convolutions actually put channels-last (the stage summary's speed.channels_last)
        self.channels_last_dims = to_channels_last(
            self.model, channels_last_dims(self.config.channels_last, self.config.compile, self.engine.device))
        self._stop = StopOnSignals(self.engine, config.log_every)

    def _interrupted(self, stage: str, step: int, start: int, model, optimizer, generator, logs_acc) -> Interrupted:
        name, signum = self._stop.name, self._stop.number
        if self.run_dir is None:
            return Interrupted(f"{name} at {stage} step {step} (no run directory: nothing saved)", signum)
        if step == start:
            return Interrupted(f"{name} before {stage} step {step + 1}: nothing new to save; continue with --resume"
                               f" ({self.run_dir})", signum)
        self._check_finite(stage, step, logs_acc)
        path = ckpt.save_checkpoint(self.run_dir, stage, step, model=model, optimizer=optimizer, engine=self.engine,
                                    generators={"train": generator}, keep=self.config.keep_checkpoints)
        return Interrupted(f"{name} at {stage} step {step}: saved {path}; continue with --resume", signum)

    # -- configuration -------------------------------------------------------------------
    def stage_config(self, stage: str) -> StageConfig:
        cfg = getattr(self.config, stage, None)
        if not isinstance(cfg, StageConfig):
            raise ConfigError(f"train.{stage}: the train config has no block for stage '{stage}'")
        return cfg

    @property
    def use_bf16(self) -> bool:
        p = self.config.precision
        return p == "bf16" or (p == "auto" and self.engine.device.type == "cuda")

    def _autocast(self):
        if not self.use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.engine.device.type, dtype=torch.bfloat16)

    # -- the whole run -------------------------------------------------------------------
    def fit(
        self,
        dataset,
        stages: tuple[str, ...] | list[str] | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train ``stages`` (default: all) in the model's order.

        With ``resume``, a stage whose newest checkpoint reached its step count is skipped (its
        weights are loaded), one that stopped early continues from that checkpoint, and every
        stage after a stage that trained again starts afresh (its old checkpoints are stale).
        A stage left out of ``stages`` contributes the weights of its newest checkpoint.
        """
        order = tuple(self.model.stages)
        todo = tuple(order if stages is None else stages)
        unknown = [s for s in todo if s not in order]
        if unknown:
            raise ConfigError(f"unknown stage '{unknown[0]}'; this model trains: {', '.join(order)}")
        summary: dict[str, Any] = {}
        stale = False  # an earlier stage changed: later checkpoints no longer match it
        with self._stop.installed():
            return self._fit_stages(dataset, order, todo, resume, summary, stale)

    def _fit_stages(self, dataset, order, todo, resume, summary, stale) -> dict[str, Any]:
        reached: dict[str, tuple[int, str | None]] = {}  # how far each earlier stage got (stage_order)
        try:
            for stage in order:
                ref = None
                if self.run_dir is not None and (resume or stage not in todo) and not stale:
                    ref = ckpt.latest_checkpoint(self.run_dir, stage)
                if stage not in todo:
                    if ref is not None:
                        ckpt.load_model_weights(self.model, ref.path / "model.safetensors")
                        reached[stage] = stage_reached(self.run_dir, stage)
                    continue
                cfg = self.stage_config(stage)
                if ref is not None and ref.step >= cfg.steps:
                    ckpt.load_model_weights(self.model, ref.path / "model.safetensors")
                    summary[stage] = {"steps": ref.step, "resumed_from": ref.step, "trained_steps": 0}
                    if ref.step > cfg.steps:
                        summary[stage]["note"] = past_steps_note(stage, ref.step, cfg.steps)
                        if self.engine.is_main:
                            print(f"warning: {summary[stage]['note']}", file=sys.stderr)
                else:
                    if self.run_dir is not None and self.engine.is_main:
                        self._drop_stale(order[order.index(stage) + 1 :], keep_current=ref is not None, stage=stage)
                    self.engine.barrier()
                    note = self._earlier_stage_note(stage, reached)
                    summary[stage] = self.train_stage(stage, dataset, cfg, ref)
                    if note:
                        summary[stage]["earlier_stage_note"] = note
                    stale = True
                reached[stage] = (int(summary[stage]["steps"]), summary[stage].get("stopped_early"))
                summary[stage].update(self._after_stage(stage))
                self._log_stage_end(stage, summary[stage])
            heldout = [s.get("heldout") for s in summary.values() if s.get("heldout")]
            self.logger.log_hparams(self.run_config or self.config.model_dump(mode="json"),
                                    heldout[-1] if heldout else None)
        finally:
            self.logger.close()
        return summary

    def _earlier_stage_note(self, stage: str, reached: dict[str, tuple[int, str | None]]) -> str | None:
        """One line when ``stage`` starts from an earlier stage short of its steps (a time budget)."""
        note = earlier_stage_note(stage, reached, self.stage_config)
        if note and self.engine.is_main:
            print(f"note: {note}", file=sys.stderr)
        return note

    def _drop_stale(self, later: tuple[str, ...], keep_current: bool, stage: str) -> None:
        if not keep_current:
            ckpt.remove_checkpoints(self.run_dir, stage)
        for s in later:
            ckpt.remove_checkpoints(self.run_dir, s)

    def _after_stage(self, stage: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        hook = getattr(self.model, "after_stage", None)
        if hook is not None and self.engine.is_main:
            self.model.eval()
            out = hook(stage, self.context) or {}
        self.engine.barrier()
        return out

    def _log_stage_end(self, stage: str, result: dict[str, Any]) -> None:
        step = int(result.get("steps", 0))
        self.logger.log_heldout(stage, step, result.get("heldout"))
        if self.run_dir is not None:
            self.logger.log_images(stage, step, [self.run_dir / p for p in result.get("renders", ())])

    # -- one stage ------------------------------------------------------------------------
    def train_stage(self, stage: str, dataset, cfg: StageConfig, resume_from: ckpt.CheckpointRef | None = None) -> dict[str, Any]:
        engine, model, tc = self.engine, self.model, self.config
        stage_index = tuple(model.stages).index(stage)
        # Fresh stages start from a known state; a resumed one gets its saved state back below.
        torch.manual_seed(tc.seed * 7919 + stage_index * 104729 + engine.rank)
        generator = torch.Generator().manual_seed(tc.seed * 7919 + stage_index * 104729 + engine.rank + 1)
        if resume_from is not None:
            ckpt.load_model_weights(model, resume_from.path / "model.safetensors")

        prepare = getattr(model, "prepare_stage", None)
        data = (prepare(stage, dataset) if prepare is not None else None) or dataset
        if len(data) == 0:
            raise InrkitError(f"stage '{stage}': the training set is empty")

        saved_flags = {p: p.requires_grad for p in model.parameters()}
        params = self._select_parameters(stage)
        optimizer = make_optimizer(params, cfg, tc.optimizer, engine.device)
        start = 0
        if resume_from is not None:
            state = ckpt.load_checkpoint(resume_from.path, model=model, optimizer=optimizer, engine=engine, generators={"train": generator})
            start = int(state["step"])

        step_module: nn.Module = engine.wrap(_StageStep(model, stage), find_unused_parameters=tc.find_unused_parameters)
        mode = None if tc.compile in (True, False, "default") else tc.compile
        if tc.compile:
            step_module = torch.compile(step_module, mode=mode)
        graphed = mode == "reduce-overhead" and engine.device.type == "cuda"
        sampler = StepBatchSampler(len(data), cfg.batch_size, cfg.steps, start=start, seed=tc.seed + stage_index,
                                   rank=engine.rank, world_size=engine.world_size)
        on_device = DeviceData.maybe(data, tc.data_on_device, engine.device)
        if on_device is not None:
            batches = on_device.batches(sampler)
        else:
            # The loader gets its own generator so that worker seeding never draws from the global RNG.
            batches = DataLoader(data, batch_sampler=sampler, num_workers=tc.num_workers,
                                 pin_memory=engine.device.type == "cuda", generator=torch.Generator().manual_seed(tc.seed))

        progress = StageProgress(stage, cfg.steps, start, enabled=tc.progress and engine.is_main)
        model.train()
        logs_acc = StepLogs(engine.device)
        after = getattr(model, "after_step", None)
        items_per_step = cfg.batch_size * engine.world_size
        window_t0 = t0 = time.perf_counter()
        first_step_s = None
        last: dict[str, float] = {}
        step = start
        stopped = None

        window_n = [0]  # steps timed in this window (the first step's compile time is kept out)

        def read_window(lr: float) -> dict[str, float]:
            elapsed = time.perf_counter() - window_t0
            n, window_n[0] = window_n[0], 0
            local, bad = logs_acc.read()
            if bad is not None:
                raise NonFiniteLoss(stage, bad)
            means = engine.all_reduce_mean(local)
            return {**means, "lr": lr, "items_per_s": n * items_per_step / elapsed if n and elapsed > 0 else None}

        try:
            for batch in self._stop.until_stopped(batches, start):
                step += 1
                lr = stage_lr(cfg, step, items_per_step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = to_device(batch, engine.device)
                if graphed:
                    torch.compiler.cudagraph_mark_step_begin()
                with self._autocast():
                    loss, logs = step_module(batch, points=cfg.points, generator=generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                logs = {"loss": loss.detach(), **{k: v.detach() for k, v in logs.items()}}
                if cfg.grad_clip:
                    logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).detach()
                optimizer.step()
                if after is not None:
                    after(stage)
                logs_acc.add(step, logs)
                if first_step_s is None:
                    # the first step pays for compilation (torch.compile) and allocator warm-up
                    if engine.device.type == "cuda":
                        torch.cuda.synchronize(engine.device)
                    first_step_s = time.perf_counter() - t0
                    window_t0, window_n[0] = time.perf_counter(), 0
                else:
                    window_n[0] += 1

                if step % tc.log_every == 0 or step == cfg.steps:
                    last = read_window(lr)
                    self.logger.log({"stage": stage, "step": step, **last, "time": time.time()})
                    progress.update(step, last["loss"], last["items_per_s"])
                    window_t0 = time.perf_counter()
                else:
                    progress.update(step)

                out_of_time = False
                if cfg.max_minutes is not None:
                    # every rank must stop at the same step: rank 0's clock decides
                    late = float(time.perf_counter() - t0 > 60.0 * cfg.max_minutes)
                    out_of_time = engine.all_reduce_mean({"late": late if engine.is_main else 0.0})["late"] > 0
                    if out_of_time and logs_acc.steps:
                        last = read_window(lr)
                        self.logger.log({"stage": stage, "step": step, **last, "time": time.time()})
                periodic = bool(tc.checkpoint_every and step % tc.checkpoint_every == 0)
                last_step = step == cfg.steps or out_of_time
                if last_step or (self.run_dir is not None and periodic):
                    self._check_finite(stage, step, logs_acc)  # before any checkpoint or the weights file
                if self.run_dir is not None and (periodic or (last_step and tc.final_checkpoint)):
                    # a stage ended by its time budget is finished as configured: its checkpoint says so
                    budget = {"stopped_early": f"max_minutes={cfg.max_minutes}"} if out_of_time else None
                    ckpt.save_checkpoint(self.run_dir, stage, step, model=model, optimizer=optimizer, engine=engine,
                                         generators={"train": generator}, keep=tc.keep_checkpoints, extra=budget)
                if tc.sample_every and step % tc.sample_every == 0 and step != cfg.steps and engine.is_main:
                    preview = getattr(model, "preview", None)
                    if preview is not None and self.run_dir is not None:
                        model.eval()
                        with torch.no_grad():
                            self.logger.log_images(stage, step, preview(stage, step, self.context))
                        model.train()
                if self.on_step is not None:
                    self.on_step(stage, step, last)
                if out_of_time:
                    stopped = f"max_minutes={cfg.max_minutes}"
                    break
        except InrkitError as err:  # a DataLoader worker's DataError comes back with its traceback as message
            raise from_worker(err) from None
        finally:
            progress.close()
            for p, flag in saved_flags.items():
                p.requires_grad_(flag)
        if step < cfg.steps and stopped is None:  # a signal (here or on a DDP peer) ended the loop
            raise self._interrupted(stage, step, start, model, optimizer, generator, logs_acc)
        wall = time.perf_counter() - t0
        trained = step - start
        extra = {}
        if stopped and first_step_s is not None and first_step_s > 30.0 * cfg.max_minutes:
            extra["note"] = self._budget_note(stage, cfg, first_step_s, trained)
        return {
            "steps": step,
            "resumed_from": start if resume_from is not None else None,
            "trained_steps": trained,
            "stopped_early": stopped,
            "wall_time_s": round(wall, 3),
            "items_per_s": round(trained * cfg.batch_size * engine.world_size / max(wall, 1e-9), 3),
            "first_step_s": round(first_step_s, 3) if first_step_s is not None else None,
            "final": {k: v for k, v in last.items() if k not in ("lr", "items_per_s")},
            "speed": speed_settings(tc, engine.device, self.use_bf16, self.channels_last_dims, on_device is not None),
            **extra,
        }

    def _budget_note(self, stage: str, cfg: StageConfig, first_step_s: float, trained: int) -> str:
        """The warning of a stage whose first step (train.compile's compilation, warm-up) took over
        half its wall-clock budget, which counts it."""
        note = (f"stage '{stage}' spent {first_step_s:.0f} s of its {60 * cfg.max_minutes:.0f} s budget on its first"
                f" step (compilation, warm-up) and trained {trained} steps; raise train.{stage}.max_minutes or set"
                " train.compile=false")
        if self.engine.is_main:
            print(f"warning: {note}", file=sys.stderr)
        return note

    def _check_finite(self, stage: str, step: int, logs_acc: StepLogs) -> None:
        """Refuse to checkpoint non-finite weights: the newest checkpoint on disk stays the last good one."""
        bad = logs_acc.first_bad_step()
        if bad is None and all_finite(self.model.state_dict().values()):
            return
        raise NonFiniteLoss(stage, bad if bad is not None else step, weights=True)

    def _select_parameters(self, stage: str) -> list[nn.Parameter]:
        wanted = list(self.model.stage_parameters(stage))
        ids = {id(p) for p in wanted}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in ids)
        params = [p for p in wanted if p.requires_grad]
        if not params:
            raise InrkitError(f"stage '{stage}' has no trainable parameters")
        return params
