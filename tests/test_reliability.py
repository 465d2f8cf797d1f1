"""Issue #13's classes of failure, each through the CLI: exit code 2 (128 + signal for an
interrupt), one line on stderr, no traceback, nothing of the user's changed (docs/reliability.md)."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import inrkit.io
from inrkit.runlock import RunLock
from inrkit.train import checkpoint as ckpt

from conftest import cli, one_line_error, toy_run_config
from test_cli_train import FAST

ROOT = Path(__file__).resolve().parents[1]


def toy_cli(tmp_path: Path, run: Path, *extra, **train) -> list:
    """``train ldmi`` on the toy plugin's tiny config, written as the user's --config file."""
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_run_config(**train)))
    return ["train", "ldmi", "--config", cfg, "--out", run, "--device", "cpu", *extra]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (the run lock, which holds its holder's pid, aside)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def leftovers(run: Path) -> list[str]:
    return [str(p) for p in run.rglob("*") if p.name.startswith((".tmp-", ".old-", ".trash-")) or p.suffix == ".tmp"]


# 1. nothing a user made is deleted or rewritten -----------------------------------------------
def test_no_command_replaces_what_the_user_made(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    picture = tmp_path / "holiday.png"
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(picture)
    table = tmp_path / "table.json"
    table.write_text('{"mine": true}')
    before = {**snapshot(tmp_path)}

    one_line_error(*cli(["data", "prepare", "-m", "image", "--out", mine, "--overwrite"], capsys)[::2],
                   "refusing to replace", str(mine))
    one_line_error(*cli(["data", "prepare", "-m", "image", "--out", picture, "--overwrite"], capsys)[::2],
                   "refusing to replace")
    one_line_error(*cli(["data", "show", "-m", "image", "--out", picture], capsys)[::2], "refusing to replace")
    one_line_error(*cli(["scale", "--hypernets", "mlp", "--json", table], capsys)[::2], "refusing to replace")
    one_line_error(*cli(toy_cli(tmp_path, mine, "--overwrite"), capsys)[::2], "not an inrkit run")
    one_line_error(*cli(toy_cli(tmp_path, mine, "--resume"), capsys)[::2], "not an inrkit run")
    (tmp_path / "toy.yaml").unlink()
    assert snapshot(tmp_path) == before

    # what inrkit wrote itself it may replace: its own cache with --overwrite, its own picture
    store = tmp_path / "digits.zarr"
    prepare = ["data", "prepare", "-m", "image", "--set", "data.name=digits", "--set", "data.n_items=4", "--out", store]
    assert cli(prepare, capsys)[0] == 0
    one_line_error(*cli(prepare, capsys)[::2], "output exists", "--overwrite")
    assert cli([*prepare, "--overwrite"], capsys)[0] == 0
    shown = tmp_path / "shown.png"
    for _ in range(2):
        assert cli(["data", "show", "-m", "image", "--data", store, "--n", 2, "--out", shown], capsys)[0] == 0


# 2. no checkpoint holds a non-finite tensor ---------------------------------------------------------
def test_non_finite_weights_never_reach_a_checkpoint(tmp_path, capsys, monkeypatch):
    """A learning rate that blows up at step 5 (NaN: the loss of step 5 is still finite, the weights
    after it are not), checkpoints every step, logs never read: the run stops naming step 5, every
    checkpoint left is finite and the rotation kept the newest finite ones; --resume with another
    lr continues from step 4."""
    import inrkit.train.trainer as trainer_mod
    from inrkit.io import load_tensors

    real = trainer_mod.stage_lr
    monkeypatch.setattr(trainer_mod, "stage_lr", lambda cfg, step, *rest: float("nan") if step == 5 else real(cfg, step, *rest))
    run = tmp_path / "run"
    extra = ["--set", "train.checkpoint_every=1", "--set", "train.keep_checkpoints=2", "--set", "train.log_every=100"]
    code, _, err = cli(toy_cli(tmp_path, run, *extra), capsys)
    one_line_error(code, err, "non-finite", "step 5", "--resume", "train.vae.lr")
    refs = ckpt.list_checkpoints(run)
    assert [(r.stage, r.step) for r in refs] == [("vae", 3), ("vae", 4)]
    for ref in refs:
        assert all(torch.isfinite(t).all() for t in load_tensors(ref.path / "model.safetensors").values())
    assert not (run / "model.safetensors").exists()
    monkeypatch.undo()
    assert cli(toy_cli(tmp_path, run, *extra, "--resume", "--set", "train.vae.lr=1e-3"), capsys)[0] == 0
    assert json.loads((run / "summary.json").read_text())["stages"]["vae"]["resumed_from"] == 4


# 3. SIGINT / SIGTERM: a checkpoint at the current step, one line, resumable -------------------
def test_sigint_saves_the_current_step_and_resumes(tmp_path):
    run = tmp_path / "run"
    args = [str(a) for a in toy_cli(tmp_path, run, "--set", "train.vae.steps=100000", "--set", "train.log_every=1")]
    code = "import sys, conftest; from inrkit_cli.main import main; main(sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    while proc.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)  # bounded by steps: the run cannot finish 100000 steps before it has logged two
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stopped: SIGINT at vae step "), err[-3000:]
    step = int(lines[0].split("vae step ")[1].split(":")[0])
    assert "--resume" in lines[0] and str(run / "checkpoints" / f"checkpoint-vae-{step}") in lines[0]
    assert ckpt.latest_checkpoint(run, "vae").step == step
    assert all(ckpt.verify_checkpoint(r.path) is None for r in ckpt.list_checkpoints(run))
    assert not (run / "model.safetensors").exists()  # not finished: nothing claims it is

    assert cli(toy_cli(tmp_path, run, "--resume", "--set", f"train.vae.steps={step + 1}"))[0] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"]["vae"]["resumed_from"] == step and summary["stages"]["vae"]["trained_steps"] == 1


def test_sigterm_stops_at_the_step_it_arrives_in(tmp_path, capsys, monkeypatch):
    import inrkit.train.trainer as trainer_mod

    real = trainer_mod.stage_lr

    def lr_then_signal(cfg, step, *rest):  # SIGTERM arrives while step 2 is being computed
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(cfg, step, *rest)

    monkeypatch.setattr(trainer_mod, "stage_lr", lr_then_signal)
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = cli(toy_cli(tmp_path, run, "--set", "train.checkpoint_every=0"), capsys)
    assert code == 128 + signal.SIGTERM and err.strip().count("\n") == 0, err
    assert err.startswith("stopped: SIGTERM at vae step 2: saved ")
    state = ckpt.read_state(ckpt.latest_checkpoint(run, "vae").path)
    assert (state["stage"], state["step"]) == ("vae", 2)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the trainer's only while it trains


def test_sigterm_under_ddp_saves_one_checkpoint_and_resumes(tmp_path):
    """``--devices 2`` (gloo on CPU): SIGTERM to the launcher, as a scheduler sends it. Both ranks stop
    at the same step, one checkpoint at that step is saved (rank 0 writes it, each rank its RNG
    state), one line is printed, and the whole process group exits. SIGKILL of the launcher itself
    reaches the workers as SIGTERM (they stop the same way). Then --resume continues."""
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "inrkit_cli.main", "train", "ldmi", "--modality", "image", "--preset", "tiny", "--out", str(run),
            *map(str, FAST), "--set", "train.checkpoint_every=0", "--set", "train.prior.steps=1", "--devices", "2"]
    metrics = run / "metrics.jsonl"

    def stop(signum, *extra):
        """Train "forever" until ``metrics.jsonl`` has two more lines (bounded by steps), then signal."""
        logged = metrics.read_text().count("\n") if metrics.exists() else 0
        saved = {(r.stage, r.step) for r in ckpt.list_checkpoints(run)} if run.exists() else set()
        proc = subprocess.Popen([*base, "--set", "train.vae.steps=100000", *extra], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") >= logged + 2):
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate()  # returns when every worker has closed its end of stderr: all have exited
        assert "Traceback" not in err and "error:" not in err, err[-3000:]
        stopped = [line for line in err.splitlines() if line.startswith("stopped: ")]
        assert len(stopped) == 1 and stopped[0].startswith("stopped: SIGTERM at vae step "), err[-3000:]
        step = int(stopped[0].split("vae step ")[1].split(":")[0])
        assert str(run / "checkpoints" / f"checkpoint-vae-{step}") in stopped[0] and "--resume" in stopped[0]
        refs = ckpt.list_checkpoints(run)
        assert {(r.stage, r.step) for r in refs} - saved == {("vae", step)}  # saved once, at the step reached
        newest = ckpt.latest_checkpoint(run, "vae").path
        assert sorted(p.name for p in newest.iterdir() if p.name.startswith(("rng-", "model"))) == [
            "model.safetensors", "rng-0.json", "rng-0.safetensors", "rng-1.json", "rng-1.safetensors"]
        assert ckpt.verify_checkpoint(newest) is None and ckpt.read_state(newest)["world_size"] == 2
        steps = [json.loads(line).get("step") for line in metrics.read_text().splitlines()]
        assert max(s for s in steps if s is not None) == step and len(steps) == len(set(steps))  # one writer
        assert leftovers(run) == [] and not (run / "model.safetensors").exists()
        RunLock.acquire(run).release()  # no process of the group is left holding the run
        return proc.returncode, step

    code, first = stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    code, second = stop(signal.SIGKILL, "--resume")  # the launcher killed outright: the kernel tells the workers
    assert code == -signal.SIGKILL and second > first

    done = subprocess.run([*base, "--resume", "--set", f"train.vae.steps={second + 2}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["stages"]["vae"]["resumed_from"] == second and summary["stages"]["vae"]["trained_steps"] == 2


# 4. a full disk: one line naming the path, temporaries removed, older checkpoints intact -------
def test_full_disk_during_a_checkpoint(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real = inrkit.io._write_file

    def full_after_first_checkpoint(tmp, data):
        if "checkpoint-vae-6" in str(tmp) and "model" in str(tmp):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tmp, data)

    monkeypatch.setattr(inrkit.io, "_write_file", full_after_first_checkpoint)
    code, _, err = cli(toy_cli(tmp_path, run), capsys)
    one_line_error(code, err, "no space left on device", str(run / "checkpoints"), "model.safetensors")
    assert leftovers(run) == []
    refs = ckpt.list_checkpoints(run)
    assert [(r.stage, r.step) for r in refs] == [("vae", 3)]
    assert ckpt.verify_checkpoint(refs[0].path) is None

    monkeypatch.setattr(inrkit.io, "_write_file", real)  # space freed: the run continues from step 3
    assert cli(toy_cli(tmp_path, run, "--resume"), capsys)[0] == 0
    assert json.loads((run / "summary.json").read_text())["stages"]["vae"]["resumed_from"] == 3


# 5. one trainer per run ------------------------------------------------------------------------
def test_a_run_in_use_is_refused_naming_its_holder(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(toy_cli(tmp_path, run, "--set", "train.prior.steps=1"), capsys)[0] == 0
    before = snapshot(run)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from inrkit.runlock import RunLock; "
                               "lock = RunLock.acquire(sys.argv[1]); print('held', flush=True); sys.stdin.read()", str(run)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    for flag in ("--resume", "--overwrite"):
        one_line_error(*cli(toy_cli(tmp_path, run, flag), capsys)[::2], "in use", f"process {holder.pid}")
    assert snapshot(run) == before
    holder.kill()  # SIGKILL: no cleanup runs, and still the lock dies with the process
    holder.wait()
    RunLock.acquire(run).release()
    assert cli(toy_cli(tmp_path, run, "--resume", "--set", "train.prior.steps=2"), capsys)[0] == 0


# 6. non-finite values in every modality's files ---------------------------------------------
def _sphere_nc(path: Path, bad: float) -> None:
    import xarray as xr

    t = np.full((2, 5, 8), 280.0)
    t[1, 2, 3] = bad
    xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), t, {"units": "K"})},
               coords={"latitude": np.linspace(90, -90, 5), "longitude": np.arange(8) * 45.0,
                       "time": np.arange(2)}).to_netcdf(path, engine="scipy")


def _bad_files(tmp_path: Path) -> list[tuple]:
    from PIL import Image

    cases = []
    nc = tmp_path / "inf.nc"
    _sphere_nc(nc, np.inf)
    cases.append(("sphere", nc, ("2m_temperature", "non-finite"), "data.val_fraction=0.5"))
    npz = tmp_path / "npz"
    npz.mkdir()
    field = np.full((46, 90), 280.0)
    field[3, 4] = -np.inf
    np.savez(npz / "t0.npz", latitude=np.linspace(90, -90, 46), longitude=np.arange(90) * 4.0, temperature=field)
    cases.append(("sphere", npz, ("t0.npz", "temperature", "non-finite"), "data.val_fraction=0.5"))
    images = tmp_path / "images"
    images.mkdir()
    arr = np.full((8, 8), 0.5, np.float32)
    arr[1, 1] = np.inf
    Image.fromarray(arr, mode="F").save(images / "a.tif")
    # PNG and JPEG hold integers; a float TIFF (read when asked for by extension) can hold inf
    cases.append(("image", images, ("a.tif", "non-finite"), "data.name=image_folder", "data.extensions=[tif]"))
    voxels = tmp_path / "voxels"
    voxels.mkdir()
    vol = np.zeros((8, 8, 8), np.float32)
    vol[2, 2, 2] = np.nan
    np.save(voxels / "v.npy", vol)
    cases.append(("occupancy", voxels, ("v.npy", "non-finite"), "data.val_fraction=0.5"))
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    (meshes / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 inf 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    cases.append(("occupancy", meshes, ("m.obj", "non-finite"), "data.val_fraction=0.5"))
    return cases


def test_non_finite_values_are_refused_in_every_modality(tmp_path, capsys):
    for modality, path, needles, *extra in _bad_files(tmp_path):
        before = snapshot(tmp_path)
        sets = [a for item in extra for a in ("--set", item)]
        one_line_error(*cli(["data", "show", "-m", modality, "--data", path, *sets,
                             "--out", tmp_path / "out.png"], capsys)[::2], *needles)
        assert snapshot(tmp_path) == before, modality
    # a prepared store edited by hand: the item and the variable are named
    import zarr

    store = tmp_path / "c.zarr"
    assert cli(["data", "prepare", "-m", "image", "--set", "data.name=digits", "--set", "data.n_items=3", "--out", store],
               capsys)[0] == 0
    zarr.open_group(str(store), mode="r+")["data"][1, 0, 0, 0] = np.inf
    one_line_error(*cli(["data", "show", "-m", "image", "--data", store, "--out", tmp_path / "s.png"], capsys)[::2],
                   str(store), "variable 'data'", "non-finite")


# 7. every file a user names that cannot be read or parsed ------------------------------------
def test_unreadable_user_files_are_one_line(tmp_path, capsys):
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("model:\n  name: caf\xe9\n".encode("latin-1"))
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(bytes(range(256)))
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\xff" * 64)
    base = ["train", "ldmi", "--modality", "image", "--preset", "tiny", "--out", tmp_path / "r"]
    for config, needle in ((latin, "not UTF-8"), (binary, "not UTF-8"), (folder, "config file not found")):
        one_line_error(*cli([*base, "--config", config], capsys)[::2], str(config), needle)
        one_line_error(*cli(["debug", "config", "--config", config], capsys)[::2], str(config))
    one_line_error(*cli([*base, "--from", garbage, "--set", "train.vae.steps=1"], capsys)[::2], str(garbage))
    one_line_error(*cli(["train", "ldmi", "--paradigm", "hyper-transform", "--from", garbage, "--out", tmp_path / "h"],
                        capsys)[::2], str(garbage))
    one_line_error(*cli(["data", "show", "-m", "sphere", "--data", garbage], capsys)[::2], str(garbage))
    assert not (tmp_path / "r").exists() and not (tmp_path / "h").exists()


# 8. a corrupt newest checkpoint: nothing rewritten, the older one on request ------------------
def test_corrupt_newest_checkpoint_is_reported_before_anything_is_rewritten(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(toy_cli(tmp_path, run), capsys)[0] == 0  # vae checkpoints at steps 3 and 6
    newest = run / "checkpoints" / "checkpoint-vae-6"
    (newest / "model.safetensors").write_bytes(b"\x00" * 40)
    before = snapshot(run)
    more = ["--set", "train.vae.steps=9"]
    one_line_error(*cli(toy_cli(tmp_path, run, "--resume", *more), capsys)[::2],
                   "checkpoint-vae-6", "corrupt", "--resume-older", "checkpoint-vae-3")
    assert snapshot(run) == before  # config.yaml, run.json and the weights as they were

    assert cli(toy_cli(tmp_path, run, "--resume-older", *more), capsys)[0] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"]["vae"]["resumed_from"] == 3 and summary["stages"]["vae"]["steps"] == 9
    assert (run / "checkpoints" / "corrupt-checkpoint-vae-6").is_dir()  # kept for inspection, never loaded


@pytest.mark.parametrize("victim", ["optimizer.safetensors", "rng-0.json"])
def test_a_file_missing_from_the_newest_checkpoint_leaves_the_older_one(tmp_path, capsys, victim):
    run = tmp_path / "run"
    assert cli(toy_cli(tmp_path, run), capsys)[0] == 0  # vae checkpoints at steps 3 and 6
    (run / "checkpoints" / "checkpoint-vae-6" / victim).unlink()
    more = ["--set", "train.vae.steps=9"]
    one_line_error(*cli(toy_cli(tmp_path, run, "--resume", *more), capsys)[::2],
                   "checkpoint-vae-6", victim.split(".")[0], "--resume-older", "checkpoint-vae-3")
    assert cli(toy_cli(tmp_path, run, "--resume-older", *more), capsys)[0] == 0
    assert json.loads((run / "summary.json").read_text())["stages"]["vae"]["resumed_from"] == 3


# 9. no test waits on a clock ----------------------------------------------------------------------
def test_no_test_has_a_wall_clock_timeout():
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        text = path.read_text()
        assert "timeout=" not in text.replace('"timeout="', ""), f"{path.name}: bound tests by steps, not seconds"


# 10. data too small to hold anything out ----------------------------------------------------------
def test_one_item_data_warns_and_says_how_many_items_each_split_got(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = cli(toy_cli(tmp_path, run, "--set", "data.n_items=1", "--set", "train.vae.steps=1",
                                 "--set", "train.prior.steps=1"), capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "too few to hold any out" in warnings[0], err
    assert "data: 1 training items, 1 held out" in out


# A failure on rank 1 only: this sitecustomize (on the workers' PYTHONPATH) makes rank 1's
# learning-rate schedule raise at step 3, an InrkitError (bad input: exit 2) or a bug (RuntimeError).
RANK1_FAILS = r'''
import atexit, importlib.abc, importlib.machinery, os, sys
if os.environ.get("RANK") is not None and os.environ.get("INRKIT_TEST_TEARDOWN"):  # marks a rank's interpreter teardown
    atexit.register(lambda: open(os.path.join(os.environ["INRKIT_TEST_TEARDOWN"], "rank" + os.environ["RANK"]), "w").close())
if os.environ.get("RANK") == "1" and os.environ.get("INRKIT_TEST_RANK1_FAILS"):
    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "inrkit.train.trainer":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            run = spec.loader.exec_module

            def exec_module(mod):
                run(mod)
                real = mod.stage_lr

                def failing(cfg, step, *rest):
                    if step == 3:
                        if os.environ["INRKIT_TEST_RANK1_FAILS"] == "input":
                            from inrkit.errors import InrkitError
                            raise InrkitError("the data of rank 1 is unreadable (injected)")
                        raise RuntimeError("a bug on rank 1 (injected)")
                    return real(cfg, step, *rest)
                mod.stage_lr = failing
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, Finder())
'''


@pytest.mark.parametrize("fault", ["input", "bug"])
def test_a_rank_that_fails_under_ddp_is_the_one_that_explains(tmp_path, fault):
    """``--devices 2`` (gloo on CPU) where rank 1 alone fails at step 3: rank 1 says why (one line for
    bad input, its traceback for a bug); rank 0, whose collective then fails, prints one line instead of
    gloo's traceback; the command exits with rank 1's code; the run resumes from its checkpoint.
    Both failed ranks leave without the interpreter's teardown (no atexit handler runs): freeing the
    DDP model with a collective pending once hung a rank there (gloo's threads waiting for the GIL)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(RANK1_FAILS)
    teardown = tmp_path / "teardown"
    teardown.mkdir()
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": f"{hooks}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1",
           "INRKIT_TEST_RANK1_FAILS": fault, "INRKIT_TEST_TEARDOWN": str(teardown)}
    base = [sys.executable, "-m", "inrkit_cli.main", "train", "ldmi", "--modality", "image", "--preset", "tiny",
            "--out", str(run), *map(str, FAST), "--set", "train.checkpoint_every=2", "--set", "train.vae.steps=6",
            "--set", "train.prior.steps=1", "--devices", "2"]
    proc = subprocess.run(base, cwd=tmp_path, env=env, capture_output=True, text=True)
    err = proc.stderr
    assert proc.returncode == (2 if fault == "input" else 1), err[-3000:]
    peer = [line for line in err.splitlines() if "stopped because another process of this run ended" in line]
    assert len(peer) == 1 and peer[0].startswith("error: training process of rank 0 ") and "--resume" in peer[0]
    assert "gloo" not in err and "Connection closed" not in err and "[rank0]" not in err, err[-3000:]
    if fault == "input":
        assert "Traceback" not in err and "error: the data of rank 1 is unreadable (injected)" in err.splitlines()
    else:
        assert "RuntimeError: a bug on rank 1 (injected)" in err
    assert ckpt.latest_checkpoint(run, "vae").step == 2
    assert list(teardown.iterdir()) == []  # neither failed rank ran the interpreter's teardown
    RunLock.acquire(run).release()  # neither process is left holding the run
    env.pop("INRKIT_TEST_RANK1_FAILS")
    done = subprocess.run([*base, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in teardown.iterdir()) == ["rank0", "rank1"]  # a finished run exits normally
    assert json.loads((run / "summary.json").read_text())["stages"]["vae"]["resumed_from"] == 2


def test_peer_lost_recognises_a_closed_peer_and_nothing_else():
    from inrkit.train.launch import peer_lost

    gloo = RuntimeError("[../gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:29350")
    assert peer_lost(gloo)
    try:
        try:
            raise gloo
        except RuntimeError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert peer_lost(outer)
    assert not peer_lost(RuntimeError("CUDA out of memory")) and not peer_lost(ValueError("closed by peer"))
    if hasattr(torch.distributed, "DistError"):
        assert peer_lost(torch.distributed.DistError("store timeout"))
