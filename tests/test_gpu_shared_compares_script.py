"""benchmarks/gpu_shared_compares.sh on CPU with tiny settings: a hypernet comparison trained in waves
(JOBS=1, SEEDS as a list) beside a prior comparison, the summary and the archive of small files (no weights)."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_shared_compares.sh"


def test_smoke_run_writes_summary_and_archive(tmp_path):
    env = dict(os.environ, DEVICE="cpu", PRESET="tiny", PY=sys.executable, MINUTES="0.02", SEEDS="1,", JOBS="1",
               PRIORS="sphere", S1_STEPS="2", PRIOR_STEPS="2", N_ITEMS="20", CAP_EXTRA_S="600", TMPDIR=str(tmp_path))
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "sphere:hd,mlp:8"], env=env, capture_output=True,
                          text=True, cwd=SCRIPT.parents[1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sphere-hd-mlp-w8: exit 0" in proc.stdout and "priors-sphere: exit 0" in proc.stdout
    summary = (out / "summary.md").read_text()
    assert "# Hypernetwork comparison: hd, mlp on sphere" in summary
    assert "seeds [1]" in summary  # SEEDS as a list (seed 1 alone) counts as one seed per part
    assert "| hd |" in summary and "| mlp |" in summary and "| diffusion |" in summary
    assert "Up to" not in summary.split("<!-- priors-sphere -->")[0]  # JOBS=1: one run at a time, not shared
    with tarfile.open(out / "shared-compares.tar.gz") as tar:
        names = tar.getnames()
    assert "./sphere-hd-mlp-w8/compare.json" in names and "./priors-sphere/compare.json" in names
    assert not any(n.endswith((".safetensors", ".pt")) for n in names)
