"""Messages that never leave a user guessing, through the CLI: the wording and the exit code of
each (pasteable fixes, did-you-mean for config fields, untrained priors, --resume past a stage's
steps, split sizes and unavailable spreads), and compare's one number format per column."""
from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from conftest import cli, one_line_error, toy_run_config


def toy_run(tmp_path, capsys, n_items: int = 12, **train):
    """A toy LDMI trained through the CLI from a config file; returns (run dir, config file, stdout, stderr)."""
    cfg = toy_run_config(**train)
    cfg["data"]["n_items"] = n_items
    file = tmp_path / "toy.yaml"
    file.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    code, out, err = cli(["train", "ldmi", "--config", file, "--out", run, "--device", "cpu"], capsys)
    assert code == 0, err
    return run, file, out, err


def test_extra_dimension_fix_works_when_pasted(tmp_path, capsys):
    lat, lon = np.linspace(-88, 88, 12), np.arange(0, 360, 15.0)
    field = 250 + 40 * np.cos(np.deg2rad(lat))[None, None, :, None] + np.zeros((2, 3, 12, 24))
    store = tmp_path / "levels.zarr"
    xr.Dataset({"t2m": (("time", "level", "latitude", "longitude"), field, {"units": "K"})},
               coords={"time": pd.date_range("2020", periods=2), "level": np.array([500, 850, 1000], np.int64),
                       "latitude": lat, "longitude": lon}).to_zarr(store)
    code, _, err = cli(["data", "show", "-m", "sphere", "--data", store, "--out", tmp_path / "a.png"], capsys)
    line = one_line_error(code, err)
    assert "np.int64" not in line and "data.select={level: 500}" in line
    suggested = shlex.split(line[line.index("--set"):])  # what a user pastes
    code, _, err = cli(["data", "show", "-m", "sphere", "--data", store, *suggested, "--out", tmp_path / "b.png"], capsys)
    assert code == 0, err


def test_unknown_config_fields_get_did_you_mean(capsys):
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "train.vae.stpes=3"], capsys)
    assert "unknown field 'vae.stpes' (did you mean 'steps'?)" in one_line_error(code, err)
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "model.inr.widht=8"], capsys)
    assert "unknown field 'widht' (did you mean 'width'?)" in one_line_error(code, err)
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "trian.seed=1"], capsys)
    assert "unknown field 'trian' (did you mean 'train'?)" in one_line_error(code, err)
    # nothing close: the known fields are listed instead
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "train.vae.zzzzzz=1"], capsys)
    line = one_line_error(code, err)
    assert "unknown field 'vae.zzzzzz' (known: steps, batch_size, lr" in line


def test_a_bad_value_of_a_union_field_is_one_message(capsys):
    """A field that takes a boolean or a word (train.channels_last, train.compile) names itself
    once, with everything it accepts, not once per member of its type."""
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "train.channels_last=sometimes"], capsys)
    line = one_line_error(code, err)
    assert "'channels_last'='sometimes': should be a valid boolean or 'auto'" in line and "literal" not in line
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "train.compile=fast",
                        "--set", "train.seed=x"], capsys)
    line = one_line_error(code, err)
    assert "'compile'='fast': should be a valid boolean or 'default', 'reduce-overhead'" in line
    assert "'seed'='x': Input should be a valid integer" in line and line.count("compile") == 1
    # an int-or-list field: a bad item is named inside the member that wanted it
    code, _, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "model.domain.resolution=[1,x]"], capsys)
    line = one_line_error(code, err)
    assert "'resolution'=[1, 'x']: should be a valid integer or list[int] (item 1: a valid integer)" in line
    assert line.count("resolution") == 1
    code, out, err = cli(["debug", "config", "--modality", "image", "--preset", "tiny", "--set", "train.channels_last=auto"], capsys)
    assert code == 0 and "channels_last: auto" in out


def test_sample_refuses_a_checkpoint_without_trained_prior(tmp_path, capsys):
    run, file, _, _ = toy_run(tmp_path, capsys, checkpoint_every=0)
    vae = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("checkpoint-vae-"))[-1]
    prior = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("checkpoint-prior-"))[-1]
    code, _, err = cli(["sample", run, "--n", 1, "--ddim-steps", 2, "--seed", 0, "--weights", vae], capsys)
    line = one_line_error(code, err)
    assert f"checkpoint '{vae}' was saved during stage 'vae', before the prior was trained" in line
    assert f"use --weights {prior}" in line
    code, _, err = cli(["sample", run, "--n", 1, "--ddim-steps", 2, "--seed", 0, "--weights", prior], capsys)
    assert code == 0, err
    code, _, err = cli(["inpaint", run, "--weights", vae, "--ddim-steps", 2], capsys)
    assert "before the prior was trained" in one_line_error(code, err)

    # a run trained with --stage vae only: its final weights hold an untrained prior; the fix says how to train it
    run2 = tmp_path / "vae-only"
    code, _, err = cli(["train", "ldmi", "--config", file, "--out", run2, "--device", "cpu", "--stage", "vae"], capsys)
    assert code == 0, err
    code, _, err = cli(["sample", run2, "--n", 1, "--ddim-steps", 2, "--seed", 0], capsys)
    line = one_line_error(code, err)
    assert "prior stage never ran" in line and "--stage prior" in line
    fix = shlex.split(line[line.index("inrkit train"):])[1:]  # paste it (without the program name)
    code, _, err = cli([*fix], capsys)
    assert code == 0, err
    code, _, err = cli(["sample", run2, "--n", 1, "--ddim-steps", 2, "--seed", 0], capsys)
    assert code == 0, err


def test_resume_with_fewer_steps_says_the_stage_is_past_them(tmp_path, capsys):
    run, file, _, _ = toy_run(tmp_path, capsys)
    code, _, err = cli(["train", "ldmi", "--config", file, "--out", run, "--device", "cpu", "--resume",
                       "--set", "train.vae.steps=2"], capsys)
    assert code == 0, err
    assert ("stage 'vae' is already at step 6, past train.vae.steps=2: nothing was trained and the step-6 checkpoint"
            " is used; to train on, set train.vae.steps above 6 (--set train.vae.steps=12); to retrain with 2 steps,"
            " use --overwrite") in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"]["vae"]["trained_steps"] == 0 and "past train.vae.steps=2" in summary["stages"]["vae"]["note"]


def test_split_sizes_and_spread_unavailable_below_two_items(tmp_path, capsys):
    # toy_bumps holds 25% out: 4 items → 3 training items and 1 held out
    run, _, out, _ = toy_run(tmp_path, capsys, n_items=4)
    flat = " ".join(out.split())
    assert "data: 3 training items, 1 held-out item (held-out spread unavailable below 2 items)" in flat
    assert "mse" in flat and "(spread n/a)" in flat
    code, out, err = cli(["evaluate", run, "--device", "cpu"], capsys)
    assert code == 0, err
    flat = " ".join(out.split())
    assert "held-out reconstructions (1 item)" in flat and "n/a (< 2 items)" in flat and "no spread below 2 items" in flat
    rec = json.loads((run / "eval.json").read_text())["reconstruction"]
    assert rec["n_items"] == 1 and rec["mse"]["std"] is None and rec["mse"]["mean"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_val"] == 1 and summary["stages"]["vae"]["heldout"]["mse"]["std"] is None


def test_compare_markdown_keeps_one_number_format_per_column():
    from inrkit_ldmi.compare.report import markdown

    stat = {"mean": 20.0, "std": None, "n": 1, "per_seed": [20.0]}
    rows = [{"hypernet": name, "hypernet_params": hp, "inr_params": inr, "inr_per_hypernet_param": inr / hp,
             "steps": {"mean": 10, "std": None}, "metrics": {"psnr": stat}, "items_per_s": None, "peak_memory_mb": None,
             "memory_note": "unavailable on cpu", "decode_ms": 1.0, "status": "ok"}
            for name, hp, inr in (("hd", 823_000, 32_771), ("mlp", 32_771, 1_200))]
    report = {"settings": {"hypernets": ["hd", "mlp"], "modality": "image", "budget_steps": 10, "budget_minutes": None,
                           "preset": "tiny", "data": None, "seeds": [0], "device": "cpu", "precision": "fp32",
                           "torch": "2", "inrkit": "0"},
              "points": [{"label": "", "results": rows}]}
    table = [line for line in markdown(report).splitlines() if line.startswith("| hd") or line.startswith("| mlp")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert [c[1] for c in cells] == ["0.823M", "0.033M"]  # hypernet params: both in millions
    assert [c[2] for c in cells] == ["32,771", "1,200"]  # INR params: both with thousands separators
    assert not any(re.search(r"\dM", c[2]) for c in cells)


@pytest.mark.parametrize("args, needles", [
    (["sample", "RUN", "--n", "0"], ["Invalid value for '--n'", "greater than or equal to 1", "inrkit sample --help"]),
    (["sample", "RUN", "--n", "many"], ["Invalid value for '--n'", "valid integer"]),
    (["sample", "RUN", "--no-such-flag"], ["No such option: --no-such-flag"]),
    (["sample"], ["Missing argument"]),
    (["train", "ldmi", "--modality"], ["--modality", "requires an argument"]),
    (["no-such-command"], ["No such command 'no-such-command'"]),
])
def test_usage_errors_are_one_line_with_exit_2(tmp_path, capsys, args, needles):
    """What typer reports (a bad or missing value, an unknown option or command) is one
    ``error:`` line naming the problem, as inrkit's own errors are, not a boxed usage text."""
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    code, out, err = cli(args, capsys)
    one_line_error(code, err, *needles)


def test_help_and_a_group_alone_still_print_help(capsys):
    code, out, err = cli(["sample", "--help"], capsys)
    assert code == 0 and "Usage" in out and "--resolution" in out
    code, out, err = cli(["train"], capsys)
    assert code == 2 and "ldmi" in out and err == ""
