"""benchmarks/gpu_recipes.sh on CPU: two recipes at once, each trained, evaluated and sampled; the
logs in OUT as they grow, the small outputs packed (no weights), and the deadline that stops every
command so that a device call cut off at its limit still brings the logs back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = "--set data.n_items=16 --set train.sample_steps=2 --set train.vae.steps=3 --set train.prior.steps=2 --device cpu"


def _run(tmp_path: Path, recipes: str, **env_extra) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"   # given relative to the working folder: the packing runs from elsewhere
    (tmp_path / "recipes.txt").write_text(recipes)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path), **env_extra}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_recipes.sh"), "out", "recipes.txt",
                           "1", "1", "tiny"], env=env, capture_output=True, text=True, cwd=tmp_path)
    return proc, out


def test_recipes_run_at_once_and_pack_their_small_outputs(tmp_path):
    proc, out = _run(tmp_path, f"# a comment line\nlr-a sphere {TINY}\n\nlr-b sphere {TINY} --set train.vae.lr=1e-4\n")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["lr-a.log", "lr-b.log", "recipes.tar.gz"]
    for name in ("lr-a", "lr-b"):
        log = (out / f"{name}.log").read_text()
        assert "train exit 0" in log and f"done {name}" in log, log[-2000:]
    with tarfile.open(out / "recipes.tar.gz") as tar:
        names = set(tar.getnames())
        summary = json.loads(tar.extractfile("lr-b/summary.json").read())
        config = tar.extractfile("lr-b/config.yaml").read().decode()
    assert {"gpu.txt", "recipes.txt", "lr-a.log", "lr-a/eval.json", "lr-b/summary.json"} <= names
    assert not any(n.endswith(".safetensors") for n in names)   # weights never travel
    assert summary["stages"]["vae"]["steps"] == 3 and "0.0001" in config


def test_a_deadline_skips_what_it_cannot_finish_and_still_packs(tmp_path):
    proc, out = _run(tmp_path, f"only sphere {TINY}\n", DEADLINE_S="22")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "only.log").read_text()
    assert "deadline: skipped inrkit train" in log and "train exit 124" in log
    with tarfile.open(out / "recipes.tar.gz") as tar:
        assert "only.log" in tar.getnames()


def test_a_deadline_stops_a_running_command(tmp_path):
    """A run still training at the deadline is stopped (timeout's 124), the later commands skipped,
    and what exists is packed."""
    long = TINY.replace("train.vae.steps=3", "train.vae.steps=100000")
    proc, out = _run(tmp_path, f"long sphere {long}\n", DEADLINE_S="40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "long.log").read_text()
    assert "train exit 124" in log and "skipped inrkit train" not in log, log[-2000:]
    assert "deadline: skipped inrkit evaluate" in log
    with tarfile.open(out / "recipes.tar.gz") as tar:
        assert "long.log" in tar.getnames()
