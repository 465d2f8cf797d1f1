"""``inrkit compare``: a fair hypernetwork comparison (configs differ only under model.hypernet),
its report (JSON, markdown, PNGs), sweeps, OOM points, the minutes budget and resume."""
import json

import pytest
import torch
import yaml

import inrkit
from inrkit.errors import ConfigError
from inrkit_ldmi import compare as cmp
from inrkit_ldmi.presets import load_preset

from conftest import run_cli

# The tiny preset made tinier: 8x8 gray faces, latent 3x4x4, 2 items a batch, 1 DDIM step for previews.
TINY = ["model.domain.resolution=8", "model.encoder.base_channels=8", "data.n_items=6", "train.vae.batch_size=2",
        "train.n_renders=2", "train.sample_steps=1", "train.progress=false", "train.tensorboard=false",
        "model.prior.model_channels=8"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread beats two that wait on each other (3x faster on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def leaves(tree, prefix=""):
    """Flatten a nested config into {dotted path: value} (written here, independent of compare.py)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        out.update(leaves(v, f"{prefix}.{k}" if prefix else k))
    return out


def differing(a, b):
    fa, fb = leaves(a), leaves(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, "<absent>") != fb.get(k, "<absent>"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "sweep"
    args = ["compare", "--hypernets", "hd,mlp", "-m", "image", "--preset", "tiny", "--budget-steps", "3",
            "--seeds", "2", "--sweep", "inr.width=8,16", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    assert run_cli(args) == 0
    return out


def test_cli_sweep_writes_report(swept):
    report = json.loads((swept / "compare.json").read_text())
    assert report["settings"]["hypernets"] == ["hd", "mlp"]
    assert report["settings"]["seeds"] == [0, 1]
    assert [p["label"] for p in report["points"]] == ["inr.width=8", "inr.width=16"]
    for point, width in zip(report["points"], (8, 16)):
        inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=width, depth=2)
        hd, mlp = point["results"]
        assert [hd["hypernet"], mlp["hypernet"]] == ["hd", "mlp"]
        for row in (hd, mlp):
            assert row["status"] == "ok"
            assert row["inr_params"] == inr.num_params
            assert row["inr_per_hypernet_param"] == pytest.approx(inr.num_params / row["hypernet_params"])
            assert row["steps"]["mean"] == 3 and row["steps"]["n"] == 2
            psnr = row["metrics"]["psnr"]
            assert len(psnr["per_seed"]) == 2 and psnr["std"] is not None and psnr["mean"] > 0
            assert row["items_per_s"]["mean"] > 0
            assert row["peak_memory_mb"] is None and row["memory_note"] == "unavailable on cpu"
            assert row["decode_ms"] > 0
            assert [r["seed"] for r in row["runs"]] == [0, 1]
        # GASP's head emits every INR parameter from the last hidden layer (512 + bias).
        assert mlp["parameter_report"]["head"] == 513 * inr.num_params
        assert mlp["hypernet_params"] == mlp["parameter_report"]["trunk"] + 513 * inr.num_params
    hd_small, hd_large = (p["results"][0]["hypernet_params"] for p in report["points"])
    mlp_small, mlp_large = (p["results"][1]["hypernet_params"] for p in report["points"])
    assert mlp_large - mlp_small > 10 * (hd_large - hd_small)
    md = (swept / "compare.md").read_text()
    assert "| hd |" in md and "| mlp |" in md and "## inr.width=16" in md
    assert report["files"]["reconstructions"] == "reconstructions.png" and report["files"]["scaling_plot"] == "scaling.png"
    for name in ("reconstructions.png", "scaling.png"):
        assert (swept / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_differ_only_in_the_hypernetwork(swept):
    report = json.loads((swept / "compare.json").read_text())
    configs = {}
    for point in report["points"]:
        for row in point["results"]:
            for run in row["runs"]:
                cfg = yaml.safe_load((swept / run["run_dir"] / "config.yaml").read_text())
                assert cfg["train"]["seed"] == run["seed"]
                configs[point["label"], row["hypernet"], run["seed"]] = cfg
    for label in ("inr.width=8", "inr.width=16"):
        for seed in (0, 1):
            diff = differing(configs[label, "hd", seed], configs[label, "mlp", seed])
            assert diff and all(k.startswith("model.hypernet.") for k in diff), diff
        assert differing(configs[label, "hd", 0], configs[label, "hd", 1]) == ["train.seed"]
    assert differing(configs["inr.width=8", "mlp", 0], configs["inr.width=16", "mlp", 0]) == ["model.inr.width"]
    # A run directory is a normal run: the model is rebuilt from it alone.
    model = inrkit.load_run(swept / "inr.width-16" / "mlp-seed1", device="cpu")
    assert model.inr.num_params == report["points"][1]["results"][1]["inr_params"]


def test_resume_reuses_finished_runs(swept, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(cmp.execute, "train_one", no_training)
    before = json.loads((swept / "compare.json").read_text())
    logs = []
    report = cmp.compare(["hd", "mlp"], "image", preset="tiny", budget_steps=3, seeds=2, sweep="inr.width=8,16",
                         out=swept, set_overrides=TINY, resume=True, log=logs.append)
    assert sum("reused" in line for line in logs) == 8
    assert report["points"][0]["results"][1]["metrics"] == before["points"][0]["results"][1]["metrics"]


def test_full_disk_while_writing_the_report(swept, tmp_path, monkeypatch, capsys):
    """Issue #13, class 4: the report's figure fails half-written on a full disk: one line naming
    it and "no space left", exit 2, no temporary left, the earlier report files as they were."""
    import errno
    import shutil
    from pathlib import Path

    import inrkit.io

    work = tmp_path / "work"
    shutil.copytree(swept, work)
    before = {name: (work / name).read_bytes() for name in ("compare.json", "compare.md", "scaling.png")}
    monkeypatch.setattr(cmp.execute, "train_one", lambda *a, **k: pytest.fail("a finished run was trained again"))
    real = inrkit.io._write_file

    def write(tmp, data):
        if Path(tmp).name.startswith(".scaling.png."):
            Path(tmp).write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tmp, data)

    monkeypatch.setattr(inrkit.io, "_write_file", write)
    args = ["compare", "--hypernets", "hd,mlp", "-m", "image", "--preset", "tiny", "--budget-steps", "3",
            "--seeds", "2", "--sweep", "inr.width=8,16", "--out", str(work), "--resume"]
    for item in TINY:
        args += ["--set", item]
    capsys.readouterr()
    assert run_cli(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"error: cannot write {work / 'scaling.png'}: no space left on device"], lines
    assert {name: (work / name).read_bytes() for name in before} == before
    assert [p for p in work.rglob("*") if p.suffix == ".tmp"] == []


def test_plan_changes_only_the_hypernet_block():
    sets = TINY + ["hypernet.mlp.hidden=[16]", "train.vae.lr=0.002", "hypernet.hd.dim=24"]
    points = cmp.plan_configs(["hd", "mlp", "mixture"], "image", "tiny", None, "siren:width=8", 5, None,
                              ["inr.depth=2,3"], sets, "cpu")
    assert [p["label"] for p in points] == ["inr.depth=2", "inr.depth=3"]
    preset_hd = load_preset("image", "tiny")["model"]["hypernet"]
    for point in points:
        cfgs = point["configs"]
        for a, b in (("hd", "mlp"), ("hd", "mixture"), ("mlp", "mixture")):
            diff = differing(cfgs[a], cfgs[b])
            assert diff and all(k.startswith("model.hypernet.") for k in diff), diff
        assert cfgs["mlp"]["model"]["hypernet"]["hidden"] == [16]
        assert cfgs["mixture"]["model"]["hypernet"]["hidden"] == [256, 512]  # the registry's VAMoH-sized default
        hd = cfgs["hd"]["model"]["hypernet"]
        assert hd["dim"] == 24 and all(hd[k] == v for k, v in preset_hd.items() if k != "dim")
        for cfg in cfgs.values():
            assert cfg["train"]["vae"]["lr"] == 0.002 and cfg["train"]["vae"]["steps"] == 5
            assert cfg["model"]["inr"]["width"] == 8 and cfg["train"]["device"] == "cpu"
    assert differing(points[0]["configs"]["hd"], points[1]["configs"]["hd"]) == ["model.inr.depth"]


def test_check_fair_refuses_other_differences():
    points = cmp.plan_configs(["hd", "mlp"], "image", "tiny", None, None, 2, None, None, TINY, "cpu")
    cfgs = points[0]["configs"]
    cmp.check_fair(cfgs)
    cfgs["mlp"]["train"]["vae"]["lr"] = 0.5
    with pytest.raises(ConfigError, match="train.vae.lr"):
        cmp.check_fair(cfgs)


def test_same_seed_same_encoder_init():
    cfgs = cmp.plan_configs(["hd", "mlp"], "image", "tiny", None, None, 2, None, None, TINY, "cpu")[0]["configs"]
    models = {}
    for name in ("hd", "mlp"):
        for seed in (0, 1):
            cfg = json.loads(json.dumps(cfgs[name]))
            cfg["train"]["seed"] = seed
            models[name, seed] = cmp.seeded_model(cfg).encoder.state_dict()

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    assert same(models["hd", 0], models["mlp", 0]) and same(models["hd", 1], models["mlp", 1])
    assert not same(models["hd", 0], models["hd", 1])


def test_parse_sweep_and_keys():
    assert cmp.parse_sweep("inr.width=8,16") == [("model.inr.width", [8, 16])]
    assert cmp.parse_sweep(["hypernet.mlp.hidden=[8],[16,16]", "train.vae.lr=0.1"]) == [
        ("hypernet.mlp.hidden", [[8], [16, 16]]), ("train.vae.lr", [0.1])]
    assert cmp.parse_sweep({"model.beta": [0.1, 1.0]}) == [("model.beta", [0.1, 1.0])]
    for bad in ("inr.width", "inr.width=", "nonsense.x=1,2"):
        with pytest.raises(ConfigError):
            cmp.parse_sweep(bad)


def test_oom_point_is_recorded_not_a_crash(tmp_path, monkeypatch):
    from inrkit_ldmi.model import LDMI

    real_fit = LDMI.fit

    def fit(self, *args, **kwargs):
        if self.config.hypernet["name"] == "mlp":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(LDMI, "fit", fit)
    report = cmp.compare(["hd", "mlp"], "image", preset="tiny", budget_steps=2, seeds=2, out=tmp_path / "c",
                         set_overrides=TINY, keep="weights")
    hd, mlp = report["points"][0]["results"]
    assert hd["status"] == "ok" and mlp["status"] == "oom"
    assert mlp["runs"][0]["status"] == "oom" and "not run" in mlp["runs"][1]["note"]
    assert mlp["hypernet_params"] > 0 and mlp["metrics"] == {}  # counted from the built model, never trained
    assert "| mlp |" in (tmp_path / "c" / "compare.md").read_text()
    run = tmp_path / "c" / "hd-seed0"
    assert (run / "model.safetensors").exists() and not (run / "checkpoints").exists()
    assert cmp.is_oom(RuntimeError("CUDA error: out of memory")) and cmp.is_oom(MemoryError())
    assert not cmp.is_oom(RuntimeError("shape mismatch"))


def test_point_too_large_for_the_disk_is_not_run(tmp_path, monkeypatch):
    from inrkit_ldmi.compare import execute

    monkeypatch.setattr(execute, "free_disk", lambda path: 1000)
    report = cmp.compare(["mlp"], "image", preset="tiny", budget_steps=1, seeds=2, out=tmp_path / "c", set_overrides=TINY)
    row = report["points"][0]["results"][0]
    assert row["status"] == "disk" and row["runs"][0]["predicted"] and "GiB" in row["runs"][0]["error"]
    assert row["hypernet_params"] > 0 and "not run" in row["runs"][1]["note"]
    assert not (tmp_path / "c" / "mlp-seed0").exists()


def test_disk_preflight_counts_the_final_checkpoint_only_when_one_is_written(tmp_path, monkeypatch):
    from inrkit_ldmi.compare import execute
    from inrkit_ldmi.compare.plan import plan_configs

    config = plan_configs(["mlp"], "image", "tiny", None, None, 1, None, None, TINY, "cpu")[0]["configs"]["mlp"]
    with torch.device("meta"):
        n_all = sum(p.numel() for p in execute.seeded_model(config).parameters())
    weights = 4 * n_all
    monkeypatch.setattr(execute, "free_disk", lambda path: weights + 1)
    _, problem = execute.preflight(config, tmp_path, torch.device("cpu"))
    assert problem is not None and problem["status"] == "disk" and "checkpoint and weights" in problem["error"]
    config["train"]["final_checkpoint"] = False
    assert execute.preflight(config, tmp_path, torch.device("cpu"))[1] is None  # the weights file alone fits
    monkeypatch.setattr(execute, "free_disk", lambda path: weights - 1)
    _, problem = execute.preflight(config, tmp_path, torch.device("cpu"))
    assert problem["status"] == "disk" and "weights file needs" in problem["error"]


def test_other_errors_are_not_swallowed(tmp_path, monkeypatch):
    from inrkit_ldmi.model import LDMI

    def fit(self, *args, **kwargs):
        raise RuntimeError("shape mismatch in a bug")

    monkeypatch.setattr(LDMI, "fit", fit)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cmp.compare(["hd"], "image", preset="tiny", budget_steps=1, seeds=1, out=tmp_path / "c", set_overrides=TINY)


def test_minutes_budget_stops_at_wall_time(tmp_path):
    report = cmp.compare(["hd"], "image", preset="tiny", budget_minutes=1e-5, seeds=[3], out=tmp_path / "c",
                         set_overrides=TINY)
    row = report["points"][0]["results"][0]
    run = row["runs"][0]
    assert row["status"] == "ok" and run["stopped_by"] == "budget_minutes" and run["seed"] == 3
    assert 1 <= run["steps_reached"] < cmp.UNBOUNDED_STEPS
    assert "psnr" in row["metrics"]
    run_dir = tmp_path / "c" / run["run_dir"]
    assert (run_dir / "reconstructions" / "after-vae" / "reconstructions.png").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages"]["vae"]["steps"] == run["steps_reached"]
    assert inrkit.load_run(run_dir, device="cpu").hypernet.registry_name == "hd"


@pytest.mark.parametrize("extra", [
    ["--hypernets", "hd,hx"],
    ["--sweep", "inr.width"],
    ["--set", "hypernet.mixture.n_components=2"],
    ["--set", "hypernet.mlp.hiden=[8]"],
    ["--seeds", "two"],
    ["--budget-steps", "0"],
    ["--keep", "nothing"],
    ["--hypernets", ""],
    ["--hypernets", "hd,,mlp"],
], ids=["unknown-hypernet", "bad-sweep", "override-of-absent-hypernet", "misspelt-field", "seeds", "budget", "keep",
        "empty-hypernets", "empty-name"])
def test_bad_input_exits_2(tmp_path, extra):
    args = ["compare", "-m", "image", "--preset", "tiny", "--out", str(tmp_path / "c"), "--hypernets", "hd,mlp", *extra]
    assert run_cli(args) == 2
    assert not (tmp_path / "c" / "compare.json").exists()


def test_existing_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_cli(["compare", "-m", "image", "--preset", "tiny", "--out", str(out), "--budget-steps", "1"]) == 2
    assert run_cli(["compare", "-m", "image", "--preset", "tiny", "--out", str(out), "--overwrite"]) == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_partial_report_from_the_records_of_a_cut_off_comparison(swept, tmp_path):
    """benchmarks/compare_partial.py: a capped comparison's finished runs still make a report."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    work = tmp_path / "work"
    shutil.copytree(swept, work)
    for name in ("compare.json", "compare.md"):
        (work / name).unlink()
    shutil.rmtree(work / "inr.width-16" / "mlp-seed1")  # the run the cap cut off
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_partial.py"
    done = subprocess.run([sys.executable, str(script), str(work), str(tmp_path / "report")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "1 run(s) missing" in done.stdout
    full = json.loads((swept / "compare.json").read_text())
    part = json.loads((tmp_path / "report" / "compare.json").read_text())
    assert part["settings"]["partial"] == "1 run(s) did not finish"
    # finished rows carry the same numbers as the full report
    assert part["points"][0]["results"][0]["metrics"] == full["points"][0]["results"][0]["metrics"]
    mlp16 = part["points"][1]["results"][1]
    assert mlp16["status"] == "not run" and mlp16["steps"]["n"] == 1
    assert [r["status"] for r in mlp16["runs"]] == ["ok", "not run"]
    assert mlp16["inr_params"] == full["points"][1]["results"][1]["inr_params"]
    assert all(row["decode_ms"] > 0 for point in part["points"] for row in point["results"])
    assert "| not run |" in (tmp_path / "report" / "compare.md").read_text()


def test_the_axis_of_comparison_is_a_parameter_of_the_plan():
    """Another model section can be compared the same way: the configs then differ only there."""
    priors = cmp.Axis("prior", "priors", "--priors", "prior")
    points = cmp.plan_configs(["gaussian", "diffusion"], "image", "tiny", None, None, 2, None, None,
                              TINY + ["prior.diffusion.model_channels=8"], "cpu", axis=priors)
    cfgs = points[0]["configs"]
    assert cfgs["gaussian"]["model"]["prior"]["name"] == "gaussian"
    assert cfgs["diffusion"]["model"]["prior"]["model_channels"] == 8
    assert cmp.plan.config_differences(cfgs["gaussian"], cfgs["diffusion"])[0].startswith("model.prior")
    cmp.check_fair(cfgs, priors)
    with pytest.raises(ConfigError, match="differ outside model.hypernet"):
        cmp.check_fair(cfgs)
    with pytest.raises(ConfigError, match="--priors"):
        cmp.plan_configs(["gaussian", "gaussian"], "image", "tiny", None, None, 2, None, None, TINY, "cpu", axis=priors)


def test_jobs_train_runs_at_once_in_workers_with_the_sequential_results(swept, tmp_path):
    """--jobs 2: each run in its own process; same configs and seeds give the sequential numbers."""
    out = tmp_path / "jobs"
    args = ["compare", "--hypernets", "hd,mlp", "-m", "image", "--preset", "tiny", "--budget-steps", "3",
            "--seeds", "2", "--sweep", "inr.width=8", "--jobs", "2", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    assert run_cli(args) == 0
    report = json.loads((out / "compare.json").read_text())
    sequential = json.loads((swept / "compare.json").read_text())["points"][0]["results"]
    assert report["settings"]["jobs"] == 2
    for row, seq in zip(report["points"][0]["results"], sequential):
        assert row["hypernet"] == seq["hypernet"] and row["status"] == "ok"
        assert [r["jobs_at_once"] for r in row["runs"]] == [2, 2]
        for a, b in zip(row["metrics"]["psnr"]["per_seed"], seq["metrics"]["psnr"]["per_seed"]):
            assert a == pytest.approx(b, rel=1e-3)
        assert row["decode_ms"] > 0
    assert "Up to 2 runs trained at once" in (out / "compare.md").read_text()
    base = out / "inr.width-8"
    assert (base / "hd-seed0.log").exists() and not list(base.glob("*.job.json")) and not list(base.glob("*.result.json"))


def test_a_crashed_worker_is_recorded_as_failed_and_bad_input_stops_the_comparison(tmp_path):
    from inrkit_ldmi.compare.parallel import run_jobs

    crash = {"config": {"train": {"seed": 0}}, "run_dir": str(tmp_path / "hd-seed0"), "out": str(tmp_path), "keep": "all",
             "where": "[1/2] hd seed 0"}  # no train.vae: a KeyError, i.e. a crash, not bad input
    records = run_jobs([crash], 2, log=lambda msg: None, poll_s=0.05)
    record = records[crash["run_dir"]]
    assert record["status"] == "failed" and record["seed"] == 0 and record["jobs_at_once"] == 2
    assert "exit code 1" in record["error"] and "KeyError" in record["error"] and "hd-seed0.log" in record["error"]
    bad = dict(crash, config={**TINY_CONFIG(), "data": {"name": "no-such-dataset"}}, run_dir=str(tmp_path / "mlp-seed0"),
               where="[2/2] mlp seed 0")
    with pytest.raises(ConfigError, match=r"\[2/2\] mlp seed 0: .*no-such-dataset.*mlp-seed0\.log"):
        run_jobs([bad], 2, log=lambda msg: None, poll_s=0.05)


def TINY_CONFIG():
    points = cmp.plan_configs("hd", "image", "tiny", None, None, 2, None, None, TINY, "cpu")
    return cmp.resolved(points[0]["configs"]["hd"])


@pytest.mark.parametrize("jobs", ["0", "x"])
def test_bad_jobs_exit_2(tmp_path, jobs, capsys):
    code = run_cli(["compare", "-m", "image", "--preset", "tiny", "--jobs", jobs, "--out", str(tmp_path / "c")])
    assert code == 2
    assert not (tmp_path / "c").exists()


def test_overwrite_removes_only_what_the_comparison_wrote(tmp_path, capsys):
    """--overwrite of a comparison: its reports, runs, point folders and side files go; a user's
    notes beside them (top level, inside a point folder, inside a run folder) stay byte-identical,
    and a run folder holding some is trained again around them."""
    out = tmp_path / "c"
    args = ["compare", "--hypernets", "hd,mlp", "-m", "image", "--preset", "tiny", "--budget-steps", "1", "--seeds", "1",
            "--sweep", "inr.width=8", "--jobs", "2", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    assert run_cli(args) == 0
    point = out / "inr.width-8"
    assert (point / "hd-seed0" / "run.json").exists() and (point / "hd-seed0.log").exists()
    (out / "notes.txt").write_text("mine")
    (point / "my-plot.png").write_bytes(b"\x89PNG mine")
    (point / "hd-seed0" / "extra.txt").write_text("inside a run: the run's")
    stale = point / "hd-seed0" / "stale-marker"
    stale.write_text("x")
    before = (point / "mlp-seed0" / "run.json").stat().st_mtime_ns
    assert run_cli([*args, "--overwrite"]) == 0
    assert "kept 4 entries" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (point / "my-plot.png").read_bytes() == b"\x89PNG mine"
    assert stale.read_text() == "x" and (point / "hd-seed0" / "extra.txt").read_text() == "inside a run: the run's"
    assert (point / "hd-seed0" / "run.json").exists() and (point / "mlp-seed0" / "run.json").stat().st_mtime_ns != before
    report = json.loads((out / "compare.json").read_text())
    assert [r["status"] for r in report["points"][0]["results"]] == ["ok", "ok"]
