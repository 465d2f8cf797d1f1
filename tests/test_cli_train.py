"""The CLI end to end on each modality's built-in data: train, resume, sample finer, evaluate;
and every user error as one line with exit code 2."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inrkit.runs import read_run_config

from conftest import cli, one_line_error

ROOT = Path(__file__).resolve().parents[1]

# Sizes that train in seconds; the modality's own tiny preset supplies the architecture.
FAST = ["--set", "data.n_items=8", "--set", "train.n_renders=2", "--set", "train.sample_steps=2",
        "--set", "train.log_every=1", "--set", "train.progress=false", "--set", "train.vae.batch_size=4",
        "--set", "train.prior.batch_size=4", "--device", "cpu"]


@pytest.mark.parametrize("modality, finer, expect", [
    ("image", 32, "samples-32x32-seed0"),
    ("sphere", 92, "samples-92x180-seed0"),
    ("occupancy", 24, "samples-24x24x24-seed0"),
])
def test_train_resume_sample_evaluate(modality, finer, expect, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "ldmi", "--modality", modality, "--preset", "tiny", "--out", run, *FAST,
            "--set", "train.prior.steps=2"]
    code, out, err = cli([*base, "--set", "train.vae.steps=2"], capsys)
    assert code == 0, err
    assert "run directory" in out
    # what the auto speed settings chose, once for both stages (the same on CPU)
    assert "speed settings (vae, prior): cpu, fp32, AdamW default, training set through a DataLoader, NCHW, not compiled" in out
    first = json.loads((run / "summary.json").read_text())
    assert first["stages"]["vae"]["steps"] == 2

    # The run "was too short": more VAE steps, resumed from its checkpoint; the prior starts over.
    code, out, err = cli([*base, "--set", "train.vae.steps=4", "--resume"], capsys)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"]["vae"]["resumed_from"] == 2 and summary["stages"]["vae"]["trained_steps"] == 2
    assert summary["stages"]["prior"]["resumed_from"] is None and summary["stages"]["prior"]["trained_steps"] == 2
    assert read_run_config(run)["train"]["vae"]["steps"] == 4
    steps = [(r["stage"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == [("vae", 1), ("vae", 2), ("prior", 1), ("prior", 2), ("vae", 3), ("vae", 4), ("prior", 1), ("prior", 2)]

    code, out, err = cli(["sample", run, "--n", 2, "--resolution", finer, "--ddim-steps", 2, "--seed", 0], capsys)
    assert code == 0, err
    written = sorted((run / "samples").glob(f"{expect}*"))
    assert written and all(p.stat().st_size > 0 for p in written), out
    if modality == "image":
        from PIL import Image

        with Image.open(written[0]) as im:  # 2 tiles of 32x32 plus borders
            assert im.size[1] >= 32

    code, out, err = cli(["evaluate", run, "--n-samples", 2, "--ddim-steps", 2], capsys)
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    rec = result["reconstruction"]
    assert rec["n_items"] == result["data"]["n_items"] >= 1
    metrics = {k: v for k, v in rec.items() if isinstance(v, dict)}
    assert metrics and all(set(v) == {"mean", "std"} for v in metrics.values())
    if modality == "image":
        assert result["samples"]["fid"] is None and result["samples"]["fid_status"].startswith("unavailable")
    else:
        assert "no sample metrics" in result["samples"]["status"]


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    one_line_error(*cli(["train", "ldmi", "--modality", "sphere", "--preset", "nope"], capsys)[::2],
                   "unknown preset 'nope'", "paper, tiny")
    one_line_error(*cli(["train", "ldmi", "--modality", "spheres"], capsys)[::2], "Did you mean 'sphere'")
    one_line_error(*cli(["debug", "config", "--modality", "sphere", "--preset", "tiny", "--set", "model.hypernet.dimm=3"],
                        capsys)[::2], "model.hypernet", "unknown field 'dimm'")
    one_line_error(*cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--set", "train.vae.steps=oops"],
                        capsys)[::2], "vae.steps")
    one_line_error(*cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--set", "nodots"], capsys)[::2],
                   "key=value")
    one_line_error(*cli(["train", "ldmi", "--modality", "sphere", "--stage", "both"], capsys)[::2], "--stage")
    one_line_error(*cli(["train", "ldmi", "--modality", "sphere", "--data", tmp_path / "missing"], capsys)[::2],
                   "does not exist")
    one_line_error(*cli(["sample", tmp_path / "no-run"], capsys)[::2], "run directory not found")
    one_line_error(*cli(["evaluate", tmp_path], capsys)[::2], "not an inrkit run")
    one_line_error(*cli(["train", "ldmi", "--modality", "image", "--preset", "tiny", "--config", tmp_path / "x.yaml"],
                        capsys)[::2], "config file not found")


def test_hyper_transform_paradigm_is_handed_over_or_reported_missing(capsys):
    args = ["train", "ldmi", "--modality", "image", "--paradigm", "hyper-transform"]
    if importlib.util.find_spec("inrkit_ldmi.hyper_transform") is None:
        one_line_error(*cli(args, capsys)[::2], "not available")
    else:  # handed over: that paradigm needs the pre-trained model to start from
        one_line_error(*cli(args, capsys)[::2], "--from")
    one_line_error(*cli(["train", "ldmi", "--modality", "image", "--prior-from", "x"], capsys)[::2], "hyper-transform")


def test_existing_runs_corrupt_weights_and_debug_config(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "ldmi", "--modality", "image", "--preset", "tiny", "--out", run, *FAST,
            "--set", "train.vae.steps=1", "--set", "train.prior.steps=1"]
    assert cli(base, capsys)[0] == 0
    one_line_error(*cli(base, capsys)[::2], "already exists", "--resume", "--overwrite")
    assert cli([*base, "--overwrite"], capsys)[0] == 0

    # --from a run of other parts names them; --from weights of another size names the tensors, briefly
    other = ["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--out", tmp_path / "o", *FAST,
             "--set", "train.vae.steps=1", "--set", "train.prior.steps=1"]
    line = one_line_error(*cli([*other, "--from", run], capsys)[::2], "other parts", "domain 'image' there, 'sphere' here")
    assert len(line) < 400
    wider = [*base[:7], tmp_path / "w", *base[8:], "--set", "model.inr.width=48"]
    line = one_line_error(*cli([*wider, "--from", run / "model.safetensors"], capsys)[::2], "do not match the model",
                          "of another shape", "in the file", "here")
    assert len(line) < 600 and "Error(s) in loading" not in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "w").exists()

    (run / "model.safetensors").write_bytes(b"garbage")
    one_line_error(*cli(["sample", run, "--n", 1], capsys)[::2], "model.safetensors", "corrupt")

    # debug config prints the resolved YAML; fed back as --config it resolves to itself.
    code, out, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "model.beta=1e-3"], capsys)
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["model"]["beta"] == 1e-3 and printed["model"]["inr"]["out_dim"] == 1
    (tmp_path / "c.yaml").write_text(out)
    code, out2, err = cli(["debug", "config", "--config", tmp_path / "c.yaml"], capsys)
    assert code == 0, err
    assert yaml.safe_load(out2) == printed


def test_devices_2_trains_with_ddp_on_cpu(tmp_path):
    """``--devices 2`` launches two processes (inrkit.train.launch; gloo on CPU); rank 0 alone writes the run."""
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "inrkit_cli.main", "train", "ldmi", "--modality", "image", "--preset", "tiny", "--out", str(run),
           *map(str, FAST), "--set", "train.vae.steps=3", "--set", "train.prior.steps=2", "--devices", "2"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = run / "checkpoints" / "checkpoint-vae-3"
    assert (ckpt / "rng-0.safetensors").is_file() and (ckpt / "rng-1.safetensors").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["stages"]["prior"]["steps"] == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5  # one writer, not two
