"""Where outputs go and what is said about them: ``data show --out`` and its default folder;
``sample`` on occupancy naming the items that produced no surface."""
from __future__ import annotations

from pathlib import Path

import torch

from inrkit_ldmi.model import LDMI

from conftest import run_cli


def test_data_show_writes_where_out_says_or_under_a_dataset_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["data", "show", "-m", "image", "--set", "domain.resolution=8", "--set", "domain.channels=1", "--n", "4"]
    capsys.readouterr()
    assert run_cli([*base, "--out", "pictures/faces.png"]) == 0
    assert (tmp_path / "pictures" / "faces.png").stat().st_size > 0
    assert "wrote     pictures/faces.png" in capsys.readouterr().out
    assert run_cli([*base, "--split", "val"]) == 0
    default = Path("inrkit-show") / "faces" / "show-val.png"  # a folder named for the built-in set
    assert (tmp_path / default).is_file() and f"wrote     {default}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inrkit-show", "pictures"]  # nothing loose, no scratch left
    data = tmp_path / "my_scans"
    data.mkdir()
    from PIL import Image

    for k in range(3):
        Image.new("L", (8, 8), color=40 * k).save(data / f"{k}.png")
    assert run_cli([*base, "--data", str(data)]) == 0
    assert (tmp_path / "inrkit-show" / "my_scans" / "show-all.png").is_file()
    assert sorted(p.name for p in data.iterdir()) == ["0.png", "1.png", "2.png"]  # the data folder is untouched


def test_sample_on_occupancy_names_items_without_a_surface(tmp_path, monkeypatch, capsys):
    run = LDMI.from_preset("occupancy", "tiny", overrides=["data.n_items=4"]).save_pretrained(tmp_path / "run")
    r = LDMI.from_pretrained(run).domain.grid_shape[0]

    def decode(self, z, resolution=None, chunk=None, batch_size=16):
        grids = torch.zeros(len(z), 1, r, r, r)
        grids[0, 0, 2:-2, 2:-2, 2:-2] = 1.0  # item 0: a box; item 1: nothing occupied
        return grids

    monkeypatch.setattr(LDMI, "decode", decode)
    capsys.readouterr()
    assert run_cli(["sample", str(run), "--n", "2", "--ddim-steps", "1", "--seed", "0", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    stem = f"samples-{r}x{r}x{r}-seed0"
    # one line for the batch: the box has one component, the empty item is named as having no surface
    line = next(l for l in err.splitlines() if "no surface" in l)
    assert "1 connected component" in line and line.count("no surface: every occupancy is <= 0.5, so no mesh is written") == 1
    assert (tmp_path / "s" / f"{stem}_000.ply").is_file() and not (tmp_path / "s" / f"{stem}_001.ply").exists()
