"""Generic training configs: what every trainable model shares, and one block per stage.

A model's own train config subclasses :class:`TrainConfig` and adds one :class:`StageConfig`
field per stage, named like the stage (``vae``, ``prior``...); the trainer looks them up by name.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..registry import SEED_MAX, PartConfig


class StageConfig(PartConfig):
    steps: int = Field(1000, ge=0, description="optimiser steps of this stage")
    batch_size: int = Field(16, ge=1, description="items per step and per process")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = Field(1.0, description="max gradient norm; null or 0 = no clipping")
    warmup: int = Field(0, ge=0, description="steps of linear learning-rate warm-up")
    points: int | None = Field(
        None, ge=1, description="random coordinates per step (null = every grid coordinate)"
    )
    max_minutes: float | None = Field(
        None, gt=0, description="wall-clock budget of this stage, counted from its start with compilation included"
                    " (train.compile: allow for first_step_s): it ends (with a checkpoint) at the first step past it"
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after warm-up: constant, or cosine decay to lr_min over `steps`"
    )
    lr_min: float = Field(0.0, ge=0)
    lr_scaling: Literal["none", "sqrt", "linear"] = Field(
        "none", description="scale lr and lr_min with the global batch: sqrt (Adam's square-root rule) or linear")
    lr_reference_batch: int | None = Field(
        None, ge=1, description="the global batch that lr is given for (default: batch_size)")


class TrainConfig(PartConfig):
    seed: int = Field(0, ge=0, le=SEED_MAX)
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU")
    compile: bool | Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        False, description="torch.compile the training step (true = default mode; reduce-overhead adds CUDA graphs);"
                           " the first step's time, compilation included, is in the stage summary as first_step_s")
    optimizer: Literal["auto", "fused", "foreach", "plain", "default"] = Field(
        "auto", description="AdamW implementation: auto = fused on CUDA, PyTorch's default elsewhere")
    data_on_device: Literal["auto", "always", "never"] = Field(
        "auto", description="hold the training set on the device and index it there (auto: on CUDA, for"
                            " tensor-backed sets within a quarter of free memory; always: also gather file-backed sets)")
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="channels-last convolutions, the encoders' GroupNorm keeping the layout (auto: the 2D"
                            " ones when train.compile is on and the device is CUDA, where it is faster; eager it is"
                            " slower, 3D is not measured: benchmarks/RESULTS.md; true: 2D and 3D)")
    num_workers: int = Field(0, ge=0)
    find_unused_parameters: bool = Field(False, description="DDP option for models with optional branches")
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(500, ge=0, description="0 = only at the end of each stage")
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept per stage")
    final_checkpoint: bool = Field(
        True, description="write a checkpoint when a stage ends (false: only the weights file and the periodic"
                          " checkpoints, e.g. for comparison runs whose checkpoints are dropped anyway; such a stage"
                          " cannot be continued with --resume past its last periodic checkpoint)")
    sample_every: int = Field(0, ge=0, description="previews every N steps (0 = only after each stage)")
    tensorboard: bool = Field(True, description="write TensorBoard events when tensorboard is installed")
    progress: bool = Field(True, description="show a progress bar")
