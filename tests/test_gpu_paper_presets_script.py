"""benchmarks/gpu_paper_presets.py on CPU: the runs, the evaluation and the report files (a smoke run)."""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_paper_presets  # noqa: E402


def test_smoke_run_writes_the_report(tmp_path):
    out = tmp_path / "out"
    code = gpu_paper_presets.main(["--out", str(out), "--smoke", "--runs", "sphere:tiny", "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "paper-presets.json", "paper-presets.md"]
    report = json.loads((out / "paper-presets.json").read_text())
    (row,) = report["runs"]
    assert row["status"] == "ok" and row["steps"] == {"vae": 2, "prior": 2}
    assert {"psnr_sym", "psnr_sym_weighted", "psnr_unit", "rmse_k"} <= set(row["metrics"])
    assert report["paper"]["sphere"]["psnr_sym"] == 44.6
    md = (out / "paper-presets.md").read_text()
    assert "not ERA5" in md and "| sphere | tiny |" in md
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert "logs/sphere-tiny/eval.json" in names and not any("checkpoints" in n for n in names)
    assert not (out / "work").exists()


def test_a_failed_run_is_reported_not_hidden(tmp_path):
    out = tmp_path / "out"
    assert gpu_paper_presets.main(["--out", str(out), "--smoke", "--runs", "sphere:nope", "--device", "cpu"]) == 1
    (row,) = json.loads((out / "paper-presets.json").read_text())["runs"]
    assert row["status"] == "failed" and row["train_exit"] == 2
