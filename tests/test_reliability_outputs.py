"""Issue #13 for every command that writes what a user asked for (docs/reliability.md, 1 and 4).

1. A file of the user's with exactly the name a command writes is never replaced: the command
   stops with one line and exit 2, and the user's folder is byte-identical; the same command run
   again into its own earlier output replaces it (``inrkit.outputs``: the folder's record).
4. A full disk while a command writes gives one line naming the output and "no space left",
   exit 2, no temporaries, and what the command wrote before still there as it was.
"""
from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import inrkit.io
from inrkit.errors import OutputError
from inrkit.outputs import MANIFEST, STAGING_PREFIX
from inrkit_ldmi.model import LDMI
from inrkit.recipe import Recipe

from conftest import cli, one_line_error

SMALL_IMAGE = ["model.domain.resolution=8", "model.encoder.base_channels=8", "model.prior.model_channels=16",
               "model.prior.num_head_channels=8", "data.n_items=8", "train.vae.steps=2", "train.prior.steps=2",
               "train.progress=false", "train.n_renders=1", "train.sample_steps=2", "train.log_every=1",
               "train.tensorboard=false"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A two-step image run (8x8), a user's photo and mask beside it."""
    run = tmp_path_factory.mktemp("outputs") / "run"
    LDMI.from_config(Recipe.resolve("ldmi", "tiny", overrides=SMALL_IMAGE, modality="image").config).fit(out=run)
    Image.fromarray((np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)).save(run.parent / "photo.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :4] = 255
    Image.fromarray(mask).save(run.parent / "mask.png")
    return run


def commands(run: Path) -> dict[str, tuple]:
    """Each writing command: a function of its output (a folder or a file) → its arguments."""
    photo, mask = run.parent / "photo.png", run.parent / "mask.png"
    return {
        "sample": lambda out: ["sample", run, "--n", 2, "--seed", 0, "--ddim-steps", 2, "--out", out],
        "inpaint": lambda out: ["inpaint", run, "--count", 1, "--n", 1, "--ddim-steps", 2, "--seed", 0, "--out", out],
        "complete": lambda out: ["complete", run, "--input", photo, "--mask", mask, "--n", 1, "--ddim-steps", 2,
                                 "--seed", 0, "--no-reference", "--out", out],
        "reconstruct": lambda out: ["reconstruct", run, "--input", photo, "--out", out],
        "report": lambda out: ["report", run, "--out", out / "report.html"],
        "data show": lambda out: ["data", "show", "-m", "image", "--set", "data.n_items=2", "--n", 2,
                                  "--out", out / "show.png"],
        "data prepare": lambda out: ["data", "prepare", "-m", "image", "--set", "data.name=digits",
                                     "--set", "data.n_items=3", "--overwrite", "--out", out / "digits.zarr"],
        "scale": lambda out: ["scale", "--hypernets", "mlp", "--inr", "siren:width=8,depth=2", "--latent", "8",
                              "--mlp", "mlp:hidden=[16]", "--resolution", 4, "--repeats", 1, "--json", out / "table.json"],
    }


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (a folder as None) with its bytes."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def written(folder: Path) -> list[str]:
    """The names a command put into ``folder`` (its record aside)."""
    return sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith((STAGING_PREFIX, ".tmp-")) or p.suffix == ".tmp"
            or ".partial-" in p.name]


@pytest.mark.parametrize("name", ["sample", "inpaint", "complete", "reconstruct", "report", "data show",
                                  "data prepare", "scale"])
def test_a_users_file_with_inrkits_output_name_is_never_replaced(name, image_run, tmp_path, capsys):
    args = commands(image_run)[name]
    ours = tmp_path / "ours"
    code, _, err = cli(args(ours), capsys)
    assert code == 0, err
    names = written(ours)
    assert names and (ours / MANIFEST).is_file() and leftovers(ours) == []

    # the user's folder holds a file (or a folder) under each name the command writes
    mine = tmp_path / "mine"
    mine.mkdir()
    for n in names:
        if (ours / n).is_dir():
            (mine / n).mkdir()
            (mine / n / "notes.txt").write_text("my own store")
        else:
            (mine / n).write_bytes(b"my own " + n.encode())
    before = snapshot(mine)
    code, _, err = cli(args(mine), capsys)
    one_line_error(code, err, "refusing to replace", str(mine / names[0]))
    assert snapshot(mine) == before  # byte-identical: no record, no staging folder left behind

    # the same command into its own earlier output: replaced
    stamp = {n: (ours / n).stat().st_mtime_ns for n in names if (ours / n).is_file()}
    code, _, err = cli(args(ours), capsys)
    assert code == 0, err
    assert written(ours) == names and leftovers(ours) == []
    assert all((ours / n).stat().st_mtime_ns != t for n, t in stamp.items()), "rewritten, not skipped"

    # an output of inrkit's that the user changed since is the user's now
    first = ours / names[0]
    edited = first / "notes.txt" if first.is_dir() else first
    edited.write_bytes(edited.read_bytes() + b" (edited)") if edited.exists() else edited.write_text("mine")
    before = snapshot(ours)
    one_line_error(*cli(args(ours), capsys)[::2], "refusing to replace", str(first), "changed since")
    assert snapshot(ours) == before


def test_new_names_join_a_users_folder_and_its_files_stay(image_run, tmp_path, capsys):
    """Outputs under names the folder does not hold are added; nothing of the user's is touched."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"my picture")
    assert cli(commands(image_run)["sample"](mine), capsys)[0] == 0
    assert (mine / "holiday.png").read_bytes() == b"my picture"
    assert any(n.startswith("samples-8x8-seed0") for n in written(mine))
    # the record itself is never taken over: a user's file of that name is refused
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST).write_text("my notes")
    (other / "samples-8x8-seed0.png").write_bytes(b"mine")
    one_line_error(*cli(commands(image_run)["sample"](other), capsys)[::2], "refusing to replace")
    assert (other / MANIFEST).read_text() == "my notes"


def test_sample_refuses_before_it_samples(image_run, tmp_path, capsys, monkeypatch):
    """Names of the user's under the stem ``sample`` writes are refused before any work is done."""
    from inrkit_ldmi.latent_model import LatentModel

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "samples-8x8-seed0-pixels.png").write_bytes(b"mine")
    monkeypatch.setattr(LatentModel, "sample_latents", lambda *a, **k: pytest.fail("sampled before refusing"))
    one_line_error(*cli(commands(image_run)["sample"](mine), capsys)[::2], "refusing to replace",
                   str(mine / "samples-8x8-seed0-pixels.png"))
    assert sorted(os.listdir(mine)) == ["samples-8x8-seed0-pixels.png"]


# 4. a full disk, for each kind of writer --------------------------------------------------------------
def full_disk_on(monkeypatch, suffix: str):
    """Every write through inrkit.io of a file ending in ``suffix`` fails half-way with ENOSPC."""
    real = inrkit.io._write_file

    def write(tmp, data):
        if f"{suffix}." in Path(tmp).name:  # _atomic's temporary: .NAME.XXXXXX.tmp
            with open(tmp, "wb") as fh:
                fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tmp, data)

    monkeypatch.setattr(inrkit.io, "_write_file", write)


def test_full_disk_while_sampling(image_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "samples"
    assert cli(commands(image_run)["sample"](out), capsys)[0] == 0  # seed 0, written before the disk filled
    before = snapshot(out)
    full_disk_on(monkeypatch, ".png")
    args = [str(a) for a in commands(image_run)["sample"](out)]
    args[args.index("--seed") + 1] = "1"
    code, _, err = cli(args, capsys)
    one_line_error(code, err, "no space left on device", str(out / "samples-8x8-seed1"))
    assert STAGING_PREFIX not in err  # the output's own name, not the temporary's
    assert snapshot(out) == before and leftovers(out) == []


def test_full_disk_while_preparing_data(tmp_path, capsys, monkeypatch):
    """zarr writes its chunks itself: the failure comes from inside zarr's store."""
    import zarr.storage._local as local

    store = tmp_path / "digits.zarr"
    prepare = ["data", "prepare", "-m", "image", "--set", "data.name=digits", "--set", "data.n_items=6",
               "--chunk-items", 2, "--out", store]
    assert cli(prepare, capsys)[0] == 0
    before = snapshot(tmp_path)
    real, calls = local._put, []
    returned, finished = threading.Event(), threading.Event()

    def put(path, value, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:  # after the group's metadata is on disk
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(bytes(value.to_bytes())[:7])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        if len(calls) != 2:
            return real(path, value, *args, **kwargs)
        # zarr runs this write beside the failing one, in its own thread: a slow write (a loaded
        # machine) that finishes after the failure must not land in a staging folder already
        # removed. It waits until the command has returned (or 1 s, if the command waits for it).
        returned.wait(1.0)
        try:
            return real(path, value, *args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(local, "_put", put)
    code, _, err = cli([*prepare, "--overwrite"], capsys)
    returned.set()
    assert finished.wait(60)
    one_line_error(code, err, "no space left on device", str(store))
    assert len(calls) == 3
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []  # the earlier store as it was


def test_full_disk_in_the_netcdf_zarr_mesh_and_figure_writers(tmp_path, monkeypatch):
    """The writers behind every domain's outputs: one OutputError naming the output, no
    temporaries, the earlier file intact. (HDF5 writing straight to a full disk raises a
    RuntimeError and can crash the process, so NetCDF is built in memory and written by inrkit.)"""
    import zarr.storage._local as local
    from matplotlib.figure import Figure

    from inrkit_modalities.occupancy.render import write_meshes
    from inrkit_modalities.sphere.render import to_dataset, write_netcdf, write_zarr_store

    ds = to_dataset(np.zeros((1, 3, 6)), np.array([60.0, 0.0, -60.0]), np.arange(0, 360, 60.0), "K")
    nc = write_netcdf(ds, tmp_path / "field.nc")
    store = write_zarr_store(ds, tmp_path / "field.zarr")
    before = snapshot(tmp_path)
    full_disk_on(monkeypatch, ".nc")
    with pytest.raises(OutputError, match=f"cannot write {nc}: no space left on device"):
        write_netcdf(ds, nc)

    def put(path, value, *args, **kwargs):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(local, "_put", put)
    with pytest.raises(OutputError, match=f"cannot write {store}: no space left on device"):
        write_zarr_store(ds, store)
    assert snapshot(tmp_path) == before

    full_disk_on(monkeypatch, ".ply")
    vol = np.zeros((8, 8, 8))
    vol[2:6, 2:6, 2:6] = 1
    with pytest.raises(OutputError, match="shape_000.ply: no space left on device"):
        write_meshes(vol[None], tmp_path / "meshes", "shape", ("ply",))
    assert list((tmp_path / "meshes").iterdir()) == []

    full_disk_on(monkeypatch, ".png")
    with pytest.raises(OutputError, match="scaling.png: no space left on device"):
        inrkit.io.write_figure(Figure(), tmp_path / "cmp" / "scaling.png")
    assert list((tmp_path / "cmp").iterdir()) == []


def test_full_disk_while_logging_metrics(tmp_path, monkeypatch):
    import builtins

    from inrkit.train.logging import MetricsLogger

    log = MetricsLogger(tmp_path, tensorboard=False)
    log.log({"step": 1, "loss": 1.0})
    real_open = builtins.open

    class Full:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: Full() if Path(path).name == "metrics.jsonl" else real_open(path, *a, **k))
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'metrics.jsonl'}: no space left on device"):
        log.log({"step": 2, "loss": 0.5})
    monkeypatch.undo()
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]


def test_the_record_never_blocks_a_folder_it_does_not_know(tmp_path):
    """An output folder made by an older inrkit (no record) still takes new names."""
    from inrkit.outputs import output_folder

    old = tmp_path / "old"
    old.mkdir()
    (old / "samples-8x8-seed0.png").write_bytes(b"written by an older inrkit")
    with output_folder(old) as staged:
        (staged.path / "samples-8x8-seed1.png").write_bytes(b"new")
    assert (old / "samples-8x8-seed1.png").read_bytes() == b"new"
    with pytest.raises(OutputError, match="refusing to replace"), output_folder(old) as staged:
        (staged.path / "samples-8x8-seed0.png").write_bytes(b"again")
    assert (old / "samples-8x8-seed0.png").read_bytes() == b"written by an older inrkit"
    assert sorted(os.listdir(old)) == [MANIFEST, "samples-8x8-seed0.png", "samples-8x8-seed1.png"]


def test_no_command_writes_into_the_data_folder(tmp_path, monkeypatch, capsys):
    """Every command that reads a user's data folder (train, compare, data show / prepare) refuses,
    in one line and before any work, an output inside that folder, also the default one when the
    command runs from inside it; the folder stays byte-identical. A data *file*'s folder is allowed."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(photos / "sub" / f"p{i}.png")
    before = snapshot(photos)
    small = [a for item in SMALL_IMAGE if not item.startswith("data.") for a in ("--set", item)]
    train = ["train", "ldmi", "--modality", "image", "--preset", "tiny", *small, "--device", "cpu"]
    cases = [
        [*train, "--data", photos, "--out", photos / "sub" / "run"],
        ["compare", "--hypernets", "hd,mlp", "--modality", "image", "--preset", "tiny", "--data", photos, *small,
         "--budget-steps", 1, "--device", "cpu", "--out", photos / "cmp"],
        ["compare", "--priors", "gaussian,flow", "--modality", "image", "--preset", "tiny", "--data", photos, *small,
         "--budget-steps", 1, "--device", "cpu", "--out", photos / "cmp"],
        ["data", "show", "-m", "image", "--data", photos, "--out", photos / "show.png"],
        ["data", "prepare", "-m", "image", "--data", photos, "--out", photos / "photos.zarr"],
    ]
    for args in cases:
        one_line_error(*cli(args, capsys)[::2], "inside the data folder", "photos")
        assert snapshot(photos) == before, args[:2]
    monkeypatch.chdir(photos)  # the defaults (runs/..., inrkit-show/...) would land in the data folder
    for args in ([*train, "--data", "."], ["data", "show", "-m", "image", "--data", "."]):
        one_line_error(*cli(args, capsys)[::2], "inside the data folder")
        assert snapshot(photos) == before, args[:2]
    # a data file's own folder is the user's project folder, not a data folder: allowed
    import pandas as pd
    import xarray as xr

    lat, lon = np.linspace(90, -90, 19), np.arange(0, 360, 10.0)
    field = 280 + 10 * np.cos(np.radians(lat))[None, :, None] * np.ones((3, 1, lon.size))
    xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), field, {"units": "K"})},
               coords={"time": pd.date_range("2021-01-01", periods=3), "latitude": lat, "longitude": lon}
               ).to_netcdf(tmp_path / "era5.nc", engine="h5netcdf")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["data", "show", "-m", "sphere", "--data", "era5.nc", "--out", "era5.png"], capsys)
    assert code == 0 and (tmp_path / "era5.png").is_file(), err
