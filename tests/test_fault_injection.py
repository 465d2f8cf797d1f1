"""Runs killed with SIGKILL at random moments (some inside checkpoint writes, one while pruning)
lose nothing: after every kill each checkpoint loads, ``resume`` continues from the newest one,
and the chain of interrupted runs reaches bit-identical final weights to an unbroken run. Also:
the same seed gives bit-identical CPU losses."""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

import inrkit.io
from conftest import toy_run_config
from inrkit.io import load_tensors
from inrkit.train import checkpoint as ckpt

# 20 + 12 steps with a checkpoint every 2: sixteen checkpoints to be killed in, a few seconds of work
CFG = toy_run_config(vae={"steps": 20, "batch_size": 4, "lr": 3e-3}, prior={"steps": 12, "batch_size": 4, "lr": 1e-3},
                     checkpoint_every=2, keep_checkpoints=2, log_every=1)


def _fit(run: Path, **kwargs):
    from inrkit_ldmi.model import LDMI

    return LDMI.from_config(CFG).fit(out=run, resume=True, **kwargs)


def _child(run: Path, how: str, k: int, loaded, started) -> None:
    """Train (resuming whatever is there) and SIGKILL ourselves at the moment ``how``/``k`` names."""
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    real_write, real_load, real_discard = inrkit.io._write_file, ckpt.load_checkpoint, ckpt._discard
    writes = 0

    def write(tmp, data):
        nonlocal writes
        if (how == "write" and f"{os.sep}checkpoints{os.sep}" in tmp) or (how == "prior" and "checkpoint-prior-" in tmp):
            writes += 1
            if writes == k:  # a torn write: half the bytes reach the disk, then the process dies
                with open(tmp, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                die()
        real_write(tmp, data)

    def load(path, **kw):
        state = real_load(path, **kw)
        loaded.put(Path(path).name)
        return state

    def discard(path):  # killed after the rename, before the deletion
        os.replace(path, path.with_name(f".trash-{path.name}"))
        die()

    inrkit.io._write_file = write
    ckpt.load_checkpoint = load
    if how == "prune":
        ckpt._discard = discard
    _fit(run, on_step=lambda stage, step, logs: started.set())
    ckpt._discard = real_discard


def _newest(run: Path) -> dict[str, str]:
    return {stage: ref.path.name for stage in ("vae", "prior") if (ref := ckpt.latest_checkpoint(run, stage))}


def _all_checkpoints_load(run: Path) -> None:
    for ref in ckpt.list_checkpoints(run):
        assert ckpt.verify_checkpoint(ref.path) is None, ref.path
        assert ckpt.read_state(ref.path)["step"] == ref.step


@pytest.fixture
def one_thread():
    """One intra-op thread while the test runs: a forked child must not enter a parallel region of
    the parent's OpenMP pool (its threads do not exist after fork: the child would hang, as it did
    under plain ``pytest`` without ``OMP_NUM_THREADS=1``), and the reference run must sum in the
    same order as the children for their weights to be bit-identical."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sigkill_at_random_moments_loses_nothing(tmp_path, one_thread):
    reference = tmp_path / "reference"
    _fit(reference)
    rng = random.Random(13)
    context = multiprocessing.get_context("fork")
    run = tmp_path / "run"
    # "write"/"prior": torn k-th checkpoint write (any stage / the prior's); "prune": between the
    # rename and the deletion of an old checkpoint; "timed": whenever the parent's random delay ends
    plan = ["write", "timed", "prune", "write", "prior", "timed", "prior"]
    kills = []
    for how in plan:
        loaded, started = context.SimpleQueue(), context.Event()
        newest_before = _newest(run)
        child = context.Process(target=_child, args=(run, how, rng.randint(1, 14), loaded, started))
        child.start()
        if how == "timed":
            while not started.wait(0.05) and child.exitcode is None:
                pass  # bounded by steps: the child sets the event at its first step
            time.sleep(rng.uniform(0.0, 0.1))
            if child.exitcode is None:
                os.kill(child.pid, signal.SIGKILL)
        child.join()
        names = []
        while not loaded.empty():
            names.append(loaded.get())
        if child.exitcode == -signal.SIGKILL:
            kills.append(how)
        else:
            assert child.exitcode == 0, f"{how}: exit code {child.exitcode}"
        # the resumed child continued from the newest checkpoint there was (of the stage it trained)
        if names:
            assert names[0] in newest_before.values(), (names, newest_before)
        _all_checkpoints_load(run)
    assert len(kills) >= 5 and kills.count("write") + kills.count("prior") >= 3, kills

    summary = _fit(run)  # the last resume, unbroken
    _all_checkpoints_load(run)
    assert summary["stages"]["prior"]["steps"] == 12
    mine, theirs = load_tensors(run / "model.safetensors"), load_tensors(reference / "model.safetensors")
    assert mine.keys() == theirs.keys()
    different = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert not different, different[:5]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith((".tmp-", ".old-", ".trash-"))]


def test_the_same_seed_gives_bit_identical_cpu_losses(tmp_path):
    from inrkit_ldmi.model import LDMI

    runs = []
    for name in ("a", "b"):
        LDMI.from_config(CFG).fit(out=tmp_path / name)
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs.append([(r["stage"], r["step"], r["loss"]) for r in records])
    assert len(runs[0]) == 32 and runs[0] == runs[1]  # exact float equality, every step of both stages
    a, b = load_tensors(tmp_path / "a" / "model.safetensors"), load_tensors(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
