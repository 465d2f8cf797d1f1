"""Generic training: a distributed engine, a multi-stage trainer, checkpoints and logs."""
from .config import StageConfig, TrainConfig
from .engine import Engine, resolve_device
from .trainer import StageContext, Trainer

__all__ = ["Engine", "StageConfig", "StageContext", "TrainConfig", "Trainer", "resolve_device"]
