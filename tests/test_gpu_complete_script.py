"""benchmarks/gpu_complete.py on CPU (``--quick``): three tiny runs, every task's numbers, titled pictures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_complete.py"


def test_quick_run_reports_every_task(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "--quick"], capture_output=True, text=True)
    logs = {p.name: p.read_text()[-2000:] for p in out.glob("*.log")}
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:], logs)
    results = json.loads((out / "complete-bench.json").read_text())
    assert set(results) == {"image", "sphere", "occupancy"}
    assert set(results["sphere"]["by_station_fraction"]) == {"1%", "5%", "20%"}
    for row in results["sphere"]["by_station_fraction"].values():
        assert set(row) == {"guided_mean", "bilinear", "nearest", "unguided_mean"}
        assert all(v["rmse_k"] >= 0 for v in row.values())
    assert all(0 <= results["occupancy"][k] <= 1 for k in ("iou_guided", "iou_hidden_guided", "iou_hidden_unguided"))
    assert abs(results["occupancy"]["iou_observed_half_only"] - 0.5) < 0.2  # half of a roughly symmetric chair
    md = (out / "complete-bench.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 7  # the header and six rows
    pictures = {p.name for p in (out / "pictures").iterdir()}
    assert {"image-inpaint.png", "sphere-gapfill-0.01.png", "chairs-complete.png"} <= pictures


def test_a_failed_modality_fails_the_benchmark(tmp_path):
    out = tmp_path / "out"
    (out / "pictures").mkdir(parents=True)
    (out / "runs").write_text("a file where the runs folder must go")  # every child fails to train
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "--quick"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "failed" in proc.stdout
    assert json.loads((out / "complete-bench.json").read_text()) == {}
