"""A later stage trained on an earlier stage that did not reach its steps.

How a run records how far a stage got: its checkpoints (``checkpoints/checkpoint-{stage}-{step}``,
``state.json`` holds the step, and ``stopped_early`` when the stage ended at its wall-clock
budget ``train.{stage}.max_minutes``). ``summary.json`` cannot tell: it is written only when a
command finishes, and a ``--stage prior`` command rewrites it with that stage alone.

An earlier stage is *finished* when its newest checkpoint reached ``train.{stage}.steps``, or
when it stopped at its time budget (the config asked for that). Anything else — a stage killed
or interrupted (Ctrl-C, SIGTERM, SIGKILL), or one whose ``steps`` were raised since — is
unfinished, and a later stage is not trained on it unasked: :func:`check_earlier_stages`
refuses, saying how far it got, before anything of the run is rewritten. To go on, finish it
(``--resume`` with every stage) or declare the steps it reached its length
(``--set train.{stage}.steps=N``, which ``config.yaml`` then records truthfully). A stage that
stopped at its time budget is used, with one line saying so (:func:`earlier_stage_note`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import checkpoint as ckpt


def stage_reached(run_dir: Path, stage: str) -> tuple[int, str | None] | None:
    """(the step of the newest checkpoint of ``stage``, why it stopped early or None), or None
    when the stage has no checkpoint."""
    ref = ckpt.latest_checkpoint(Path(run_dir), stage)
    if ref is None:
        return None
    try:
        stopped = ckpt.read_state(ref.path).get("stopped_early")
    except Exception:  # unreadable state: check_checkpoints reports it before this is asked
        stopped = None
    return ref.step, stopped


def check_earlier_stages(run_dir: Path, order: tuple[str, ...], first: str, train_config: Any,
                         resume: bool | str = False) -> None:
    """Refuse to train ``first`` (and the stages after it) on an earlier stage that neither reached
    its configured steps nor stopped at its time budget."""
    for earlier in order[: order.index(first)]:
        reached = stage_reached(run_dir, earlier)
        steps = getattr(train_config, earlier).steps
        if reached is None or reached[0] >= steps or reached[1]:
            continue
        step = reached[0]
        finish = "--stage all" if resume else "--resume and --stage all"
        raise ConfigError(
            f"stage '{earlier}' of {run_dir} did not finish: its newest checkpoint"
            f" ({ckpt.checkpoint_name(earlier, step)}) is at step {step} of train.{earlier}.steps={steps}, and"
            f" stage '{first}' would train on it; finish it first (the same command with {finish}), or train"
            f" '{first}' on it as it is with --set train.{earlier}.steps={step}")


def past_steps_note(stage: str, done: int, asked: int) -> str:
    """The note of a stage resumed at a checkpoint already past its configured steps."""
    return (f"stage '{stage}' is already at step {done}, past train.{stage}.steps={asked}: nothing was trained and"
            f" the step-{done} checkpoint is used; to train on, set train.{stage}.steps above {done}"
            f" (--set train.{stage}.steps={2 * done}); to retrain with {asked} steps, use --overwrite")


def earlier_stage_note(stage: str, reached: dict[str, tuple[int, str | None]], stage_config) -> str | None:
    """The one line said when ``stage`` starts from an earlier stage short of its steps (a time
    budget); ``reached``: each earlier stage's (step, why it stopped early); None when all finished."""
    for earlier, (step, stopped) in reached.items():
        steps = stage_config(earlier).steps
        if step < steps:
            why = f"at its time budget ({stopped})" if stopped else "early"
            return (f"stage '{stage}' trains on stage '{earlier}' as it stopped {why} at step {step} of"
                    f" train.{earlier}.steps={steps}")
    return None
