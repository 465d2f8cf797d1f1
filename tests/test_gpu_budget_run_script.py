"""benchmarks/gpu_budget_run.sh on CPU: probe, planned stage 1, prior, evaluate, samples, and what
comes back (the logs in OUT as they grow, the small outputs packed, no weights)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_budget_run_packs_its_logs_and_small_outputs(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PRESET": "tiny", "PROBE_STEPS": "12",
           "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_budget_run.sh"), str(out), "sphere", "0.02", "0.02",
                           "--set", "data.n_items=16", "--set", "train.sample_steps=2", "--device", "cpu"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["probe.log", "run.log", "run.tar.gz"]
    log = (out / "run.log").read_text()
    assert "train exit" in log
    with tarfile.open(out / "run.tar.gz") as tar:
        names = tar.getnames()
    assert {"plan.txt", "probe.log", "run.log", "run/summary.json", "run/config.yaml"} <= set(names)
    assert not any(n.endswith(".safetensors") for n in names)  # weights never travel
    plan = tar_text(out / "run.tar.gz", "plan.txt")
    assert plan.startswith("probe: stage 1 gets ") and " steps in 0.02 min" in plan


def tar_text(path: Path, name: str) -> str:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read().decode()


def test_budget_run_with_a_known_step_count_skips_the_probe(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PRESET": "tiny", "VAE_STEPS": "5", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_budget_run.sh"), str(out), "sphere", "0.02", "0.02",
                           "--set", "data.n_items=16", "--set", "train.sample_steps=2", "--set", "train.prior.steps=3",
                           "--device", "cpu"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["run.log", "run.tar.gz"]
    assert tar_text(out / "run.tar.gz", "plan.txt").startswith("given: stage 1 gets 5 steps")
    summary = json.loads(tar_text(out / "run.tar.gz", "run/summary.json"))
    assert summary["stages"]["vae"]["steps"] == 5, summary
