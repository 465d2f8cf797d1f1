"""Stage 2 on an unfinished stage 1, through the CLI: a stage 1 stopped short of its steps
(killed, interrupted, or its steps raised since) is refused in one line saying how far it got,
before anything of the run is rewritten; ``--set train.vae.steps=N`` trains on it as it is, and
``--resume`` finishes it first. A stage 1 that ended at its time budget is used, with one note."""
from __future__ import annotations

import json
import os
import signal

import pytest
import yaml

from inrkit.errors import ConfigError
from inrkit.runs import read_run_config
from inrkit.train import checkpoint as ckpt
from inrkit_ldmi.model import LDMI

from conftest import cli, one_line_error, toy_run_config


def toy_cli(tmp_path, run, *extra):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_run_config(tensorboard=False)))  # vae 6 steps, prior 4, checkpoints every 3
    return ["train", "ldmi", "--config", cfg, "--out", run, "--device", "cpu", *extra]


def files(run):
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def killed_at_step_2(tmp_path, capsys, monkeypatch):
    """A run whose stage 1 got SIGTERM during step 2 of 6: checkpoint-vae-2, no final weights."""
    import inrkit.train.trainer as trainer_mod

    real = trainer_mod.stage_lr

    def lr_then_signal(cfg, step, *rest):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(cfg, step, *rest)

    run = tmp_path / "run"
    with monkeypatch.context() as mp:
        mp.setattr(trainer_mod, "stage_lr", lr_then_signal)
        code, _, err = cli(toy_cli(tmp_path, run), capsys)
    assert code == 128 + signal.SIGTERM, err
    assert [r.path.name for r in ckpt.list_checkpoints(run)] == ["checkpoint-vae-2"]
    assert not (run / "model.safetensors").exists()
    return run


def test_stage_2_on_a_killed_stage_1_is_refused_naming_how_far_it_got(tmp_path, capsys, killed_at_step_2):
    run = killed_at_step_2
    before = files(run)
    for extra in ([], ["--resume"]):
        line = one_line_error(*cli(toy_cli(tmp_path, run, "--stage", "prior", *extra), capsys)[::2],
                              "stage 'vae'", "did not finish", "(checkpoint-vae-2) is at step 2 of train.vae.steps=6",
                              "--set train.vae.steps=2", "--stage all")
        assert ("with --stage all" if extra else "with --resume and --stage all") in line, line
        assert files(run) == before  # refused before config.yaml or run.json were rewritten

    # asked explicitly: the prior trains on the step-2 stage 1, and config.yaml says 2 steps
    code, _, err = cli(toy_cli(tmp_path, run, "--stage", "prior", "--set", "train.vae.steps=2"), capsys)
    assert code == 0, err
    assert "note:" not in err  # stage 1 is finished as configured now
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary["stages"]) == ["prior"] and summary["stages"]["prior"]["trained_steps"] == 4
    assert read_run_config(run)["train"]["vae"]["steps"] == 2


def test_resume_finishes_stage_1_before_stage_2(tmp_path, capsys, killed_at_step_2):
    run = killed_at_step_2
    code, _, err = cli(toy_cli(tmp_path, run, "--resume"), capsys)
    assert code == 0, err
    assert "note:" not in err
    stages = json.loads((run / "summary.json").read_text())["stages"]
    assert stages["vae"]["resumed_from"] == 2 and stages["vae"]["steps"] == 6 and stages["prior"]["steps"] == 4
    assert "earlier_stage_note" not in stages["prior"]


def test_raised_stage_1_steps_are_refused_for_stage_2_alone(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(toy_cli(tmp_path, run, "--stage", "vae"), capsys)[0] == 0
    one_line_error(*cli(toy_cli(tmp_path, run, "--stage", "prior", "--set", "train.vae.steps=9"), capsys)[::2],
                   "is at step 6 of train.vae.steps=9", "--set train.vae.steps=6")
    code, _, err = cli(toy_cli(tmp_path, run, "--stage", "prior"), capsys)  # the steps it was trained with
    assert code == 0 and "note:" not in err, err


def test_a_stage_1_ended_by_its_time_budget_is_used_with_one_note(tmp_path, capsys):
    run = tmp_path / "run"
    budget = ["--set", "train.vae.max_minutes=1e-9"]  # ends after its first step
    code, _, err = cli(toy_cli(tmp_path, run, "--stage", "vae", *budget), capsys)
    assert code == 0, err
    ref = ckpt.latest_checkpoint(run, "vae")
    assert ref.step == 1 and ckpt.read_state(ref.path)["stopped_early"] == "max_minutes=1e-09"
    code, _, err = cli(toy_cli(tmp_path, run, "--stage", "prior", *budget), capsys)
    assert code == 0, err
    note = ("stage 'prior' trains on stage 'vae' as it stopped at its time budget (max_minutes=1e-09) at step 1 of"
            " train.vae.steps=6")
    assert [line for line in err.splitlines() if line.startswith("note:")] == [f"note: {note}"], err
    assert json.loads((run / "summary.json").read_text())["stages"]["prior"]["earlier_stage_note"] == note
    # both stages in one command: the same note when stage 2 starts
    code, _, err = cli(toy_cli(tmp_path, tmp_path / "both", *budget), capsys)
    assert code == 0 and f"note: {note}" in err, err


def test_the_python_api_refuses_as_the_cli_does(tmp_path, killed_at_step_2):
    model = LDMI.from_config(toy_run_config(tensorboard=False))
    with pytest.raises(ConfigError, match=r"stage 'vae' of .* did not finish: .*is at step 2 of train.vae.steps=6"):
        model.fit(out=killed_at_step_2, stages=("prior",))
    summary = model.fit(out=killed_at_step_2, stages=("prior",), vae={"steps": 2})
    assert summary["stages"]["prior"]["steps"] == 4
