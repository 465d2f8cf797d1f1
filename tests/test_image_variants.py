"""A user's own image folders as they come: 16-bit and float files, transparency, CMYK, frames,
mixed sizes, broken and foreign files, class folders, suffixes in any case, symlinks; each read as
docs/tutorials/data.md says, or refused in one line naming the file, and nothing written into the
data folder."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import inrkit
from inrkit.data import SmallSplitWarning, open_dataset
from inrkit.errors import DataError
from inrkit_modalities.image.pixels import read_pixels

from conftest import cli, error_line, one_line_error

FAST = ["--preset", "tiny", "--device", "cpu", "--set", "train.vae.steps=2", "--set", "train.prior.steps=2",
        "--set", "train.n_renders=2", "--set", "train.sample_steps=2", "--set", "train.progress=false",
        "--set", "train.tensorboard=false", "--set", "train.vae.batch_size=2", "--set", "train.prior.batch_size=2"]


def domain(channels=3, resolution=8):
    return inrkit.build("domains", "image", resolution=resolution, channels=channels)


def unit(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


def rgb(path, value=(10, 200, 90), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.tile(np.array(value, np.uint8), (*size, 1))).save(path)
    return path


def items(folder, channels=3, **fields):
    ds = open_dataset(domain(channels), folder, split="all", **fields)
    return ds, {label: unit(ds[i]) for i, label in enumerate(ds.item_labels(range(len(ds))))}


# -- bit depth ----------------------------------------------------------------------------------
def test_16_bit_and_float_images_keep_their_intensity(tmp_path):
    Image.fromarray(np.full((8, 8), 16384, np.uint16)).save(tmp_path / "i16.png")        # mode I;16
    Image.fromarray(np.full((8, 8), 0.75, np.float32)).save(tmp_path / "f32.tif")        # mode F
    tifffile.imwrite(tmp_path / "rgbf.tif", np.tile(np.array([0.2, 0.4, 0.6], np.float32), (8, 8, 1)),
                    photometric="rgb")  # Pillow cannot read RGB floats: tifffile does
    _, got = items(tmp_path)
    assert torch.allclose(got["i16.png"], torch.full((3, 8, 8), 16384 / 65535), atol=1e-4)  # not clipped at 255
    assert torch.allclose(got["f32.tif"], torch.full((3, 8, 8), 0.75), atol=1e-4)
    assert torch.allclose(got["rgbf.tif"].mean((1, 2)), torch.tensor([0.2, 0.4, 0.6]), atol=1e-4)


def test_float_images_outside_0_1_are_refused_naming_the_range(tmp_path):
    rgb(tmp_path / "ok.png")
    Image.fromarray(np.full((8, 8), 200.0, np.float32)).save(tmp_path / "hdr.tif")
    with pytest.raises(DataError, match=r"hdr\.tif: float pixels span \[200, 200\]; .*\[0, 1\]"):
        open_dataset(domain(), tmp_path, split="all")  # at open time: before anything trains


# -- transparency and colour spaces ------------------------------------------------------------
def test_transparency_is_composited_over_white_or_black(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., 0] = 255
    a[:, 4:, 3] = 255                                        # left half transparent (black stored under it)
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.zeros((8, 8, 2), np.uint8), "LA").save(tmp_path / "la.png")  # all transparent black
    p = Image.fromarray(np.array([[0, 1] * 4] * 8, np.uint8), "P")
    p.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    p.save(tmp_path / "palette.png", transparency=0)         # index 0 (black) transparent
    ds, white = items(tmp_path)
    assert torch.allclose(white["rgba.png"][:, :, :4], torch.ones(3, 8, 4))
    assert torch.allclose(white["rgba.png"][:, :, 4:], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 8, 4))
    assert torch.allclose(white["la.png"], torch.ones(3, 8, 8))
    assert torch.allclose(white["palette.png"][:, :, 0], torch.ones(3, 8)) and white["palette.png"][2, 0, 1] == 1
    assert "3 with transparency composited over white" in ds.meta["conversion"]
    _, black = items(tmp_path, background="black")
    assert torch.allclose(black["la.png"], torch.zeros(3, 8, 8))
    assert torch.allclose(black["rgba.png"][:, :, :4], torch.zeros(3, 8, 4))


def test_cmyk_jpeg_and_grey_rgb_mixes(tmp_path):
    Image.fromarray(np.tile(np.array([255, 0, 0], np.uint8), (8, 8, 1))).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "grey.png")
    rgb(tmp_path / "colour.png", (200, 100, 50))
    _, colour = items(tmp_path, channels=3)
    assert torch.allclose(colour["cmyk.jpg"].mean((1, 2)), torch.tensor([1.0, 0, 0]), atol=0.03)
    assert torch.equal(colour["grey.png"][0], colour["grey.png"][2])          # grey repeated into RGB
    ds, grey = items(tmp_path, channels=1)
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert grey["colour.png"].shape == (1, 8, 8) and torch.allclose(grey["colour.png"], torch.full((1, 8, 8), luma), atol=1e-3)
    assert "2 colour, 1 greyscale" in ds.meta["conversion"]


def test_animated_and_multi_page_files_give_their_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (60, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    ds, got = items(tmp_path)
    for name in ("anim.gif", "pages.tif"):
        assert torch.allclose(got[name], torch.full((3, 8, 8), 60 / 255), atol=1 / 255), name
    assert "2 multi-frame files: first frame used" in ds.meta["conversion"]


def test_extreme_aspect_ratios_are_covered_and_centre_cropped(tmp_path):
    strip = np.zeros((2, 200, 3), np.uint8)
    strip[:, 99:101] = 255                                # a white line in the middle of a 200x2 strip
    Image.fromarray(strip).save(tmp_path / "strip.png")
    rgb(tmp_path / "tiny.png", size=(3, 5))
    ds, got = items(tmp_path)
    assert got["strip.png"].shape == got["tiny.png"].shape == (3, 8, 8)
    assert got["strip.png"].mean() > 0.5                  # the 2x2 px centre, scaled to cover 8x8
    assert "5x3 to 200x2 px" in ds.meta["conversion"]  # the sizes' range, smallest to largest area


# -- broken and foreign files ------------------------------------------------------------------
def test_a_truncated_jpeg_among_good_ones_is_refused_when_the_data_opens(tmp_path):
    rgb(tmp_path / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "cut.jpg")
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: unreadable or corrupt image \(OSError: image file is truncated"):
        open_dataset(domain(), tmp_path, split="all")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.jpg").unlink()
    with pytest.raises(DataError, match=r"empty\.png: empty file \(0 bytes\), not an image"):
        open_dataset(domain(), tmp_path, split="all")


def test_a_bad_file_stops_train_in_one_line_before_a_run_exists(tmp_path, capsys):
    data = tmp_path / "photos"
    for k in range(3):
        rgb(data / f"{k}.png")
    (data / "broken.JPG").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    line = one_line_error(*cli(["train", "ldmi", "--modality", "image", "--data", data, "--out", tmp_path / "run", *FAST],
                               capsys)[::2], "broken.JPG", "unreadable or corrupt image")
    assert str(data) in line and not (tmp_path / "run").exists()


def test_a_file_broken_during_training_is_one_line_from_a_dataloader_worker(tmp_path, capsys, monkeypatch):
    """A file that passed the open-time check and breaks later (replaced while training): a
    DataLoader worker's error comes back as its own line, not torch's worker traceback."""
    import inrkit_modalities.image.datasets as image_datasets

    data = tmp_path / "photos"
    for k in range(3):
        rgb(data / f"{k}.png")
    real = image_datasets.inspect

    def check_then_break(path):
        info = real(path)
        path.write_bytes(b"")  # emptied after its check
        return info

    monkeypatch.setattr(image_datasets, "inspect", check_then_break)
    code, _, err = cli(["train", "ldmi", "--modality", "image", "--data", data, "--out", tmp_path / "run", *FAST,
                        "--set", "train.num_workers=1"], capsys)
    assert code == 2 and error_line(err).endswith(".png: empty file (0 bytes), not an image"), err
    assert "DataLoader worker" not in err


def test_foreign_and_hidden_files_are_skipped_and_counted(tmp_path, capsys):
    rgb(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "._a.png").write_bytes(b"\0\5\x16\7 AppleDouble")
    (tmp_path / ".thumbs").mkdir()
    rgb(tmp_path / ".thumbs" / "t.png")
    ds, got = items(tmp_path)
    assert list(got) == ["a.png"]
    assert "skipped 2 files that are not images (.db, .txt)" in ds.meta["conversion"]
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.md").write_text("x")
    (junk / ".DS_Store").write_bytes(b"x")
    one_line_error(*cli(["data", "show", "--modality", "image", "--data", junk, "--out", tmp_path / "s.png"], capsys)[::2],
                   "no images (", ".webp", "it holds only 1 file that is not an image (.md)")
    (tmp_path / "empty").mkdir()
    one_line_error(*cli(["data", "show", "--modality", "image", "--data", tmp_path / "empty", "--out", tmp_path / "s.png"],
                        capsys)[::2], "empty: no images")


def test_class_folders_and_suffixes_in_any_case(tmp_path):
    for cls in ("cat", "dog"):
        rgb(tmp_path / cls / "x.png")                     # the same name in two class folders
    rgb(tmp_path / "deep" / "er" / "y.PNG")
    for name, fmt in (("A.JPG", "JPEG"), ("B.jpeg", "JPEG"), ("C.WEBP", "WEBP"), ("D.bmp", "BMP"), ("E.TIFF", "TIFF")):
        Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(tmp_path / name, format=fmt)
    ds, got = items(tmp_path)
    assert list(got) == ["A.JPG", "B.jpeg", "C.WEBP", "D.bmp", "E.TIFF", "cat/x.png", "deep/er/y.PNG", "dog/x.png"]
    assert all(v.shape == (3, 8, 8) for v in got.values())


def test_one_image_trains_and_is_held_out_with_a_warning(tmp_path):
    rgb(tmp_path / "only.png")
    with pytest.warns(SmallSplitWarning, match="1 item"):
        train = open_dataset(domain(), tmp_path, split="train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSplitWarning)
        val = open_dataset(domain(), tmp_path, split="val")
    assert train.files == val.files and len(train) == 1


def test_symlinks_to_files_and_folders_are_followed_and_broken_ones_named(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    rgb(data / "a.png")
    rgb(elsewhere / "b.png")
    os.symlink(elsewhere / "b.png", data / "link.png")
    os.symlink(elsewhere, data / "more")
    os.symlink(data, data / "more" / "loop")               # a loop ends: every real folder is walked once
    _, got = items(data)
    assert list(got) == ["a.png", "link.png", "more/b.png"]
    os.symlink(tmp_path / "gone.png", data / "dangling.png")
    with pytest.raises(DataError, match=r"dangling\.png: a symbolic link to .*gone\.png, which does not exist"):
        open_dataset(domain(), data, split="all")


def test_folders_inrkit_wrote_inside_the_data_folder_are_not_data(tmp_path, capsys):
    data = tmp_path / "photos"
    for k in range(3):
        rgb(data / f"{k}.png", (40 * k, 90, 200))
    # inrkit now refuses to write into a data folder (test_reliability_outputs.py), but older versions
    # made these with `cd photos && inrkit train ldmi --data .`, and users move run folders around
    run = data / "runs" / "r"
    code, _, err = cli(["train", "ldmi", "--modality", "image", "--data", data, "--out", tmp_path / "r", *FAST], capsys)
    assert code == 0, err
    run.parent.mkdir()
    shutil.move(tmp_path / "r", run)
    assert any(run.rglob("*.png"))  # the run's samples and reconstructions
    code, _, err = cli(["data", "show", "--modality", "image", "--data", data, "--out", tmp_path / "show" / "s.png"], capsys)
    assert code == 0, err
    shutil.move(tmp_path / "show", data / "inrkit-show")
    ds = open_dataset(domain(), data, split="all")
    assert [p.name for p in ds.files] == ["0.png", "1.png", "2.png"]
    assert "inrkit's own folders inrkit-show, runs/r" in ds.meta["conversion"]


# -- the commands: nothing written into the data folder ------------------------------------------
def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_train_show_evaluate_reconstruct_complete_write_nothing_into_the_data_folder(tmp_path, capsys):
    data = tmp_path / "photos"
    rgb(data / "train" / "cats" / "a.PNG")
    Image.fromarray(np.full((12, 20), 30000, np.uint16)).save(data / "train" / "cats" / "deep.png")
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., 3] = 255
    a[:5, :, 3] = 0
    (data / "train" / "dogs").mkdir()
    Image.fromarray(a, "RGBA").save(data / "train" / "dogs" / "cut-out.png")
    rgb(data / "val" / "v.jpg")
    (data / "train" / "notes.txt").write_text("x")
    before = _snapshot(data)
    run = tmp_path / "run"
    code, _, err = cli(["train", "ldmi", "--modality", "image", "--data", data, "--out", run, *FAST], capsys)
    assert code == 0, err
    assert "1 with transparency composited over white" in err and "skipped 1 file that is not an image (.txt)" in err
    assert cli(["data", "show", "--modality", "image", "--data", data, "--out", tmp_path / "show.png"], capsys)[0] == 0
    code, _, err = cli(["evaluate", run, "--device", "cpu", "--data", data, "--n-samples", 1, "--ddim-steps", 1], capsys)
    assert code == 0, err
    assert json.loads((run / "eval.json").read_text())["reconstruction"]["n_items"] == 1  # val/ holds one image
    code, _, err = cli(["reconstruct", run, "--input", data / "train" / "dogs" / "cut-out.png", "--out", tmp_path / "rec"],
                       capsys)
    assert code == 0, err
    assert _snapshot(data) == before


def test_whole_image_inputs_are_read_as_training_images(tmp_path):
    """``reconstruct --input`` reads one file exactly as an image folder's item; ``complete``'s
    observation images read CMYK and 16-bit the same way and refuse transparency (the mask says what is seen)."""
    from inrkit_modalities.image.observations import _pixels, read_item

    a = np.zeros((8, 8, 4), np.uint8)
    a[:, 4:, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "cut.png")
    d = domain()
    ds = open_dataset(d, tmp_path, split="all")
    assert torch.equal(read_item(d, tmp_path / "cut.png"), ds[0])
    with pytest.raises(DataError, match="with transparency.*--mask"):
        _pixels(tmp_path / "cut.png", 3)
    Image.fromarray(np.tile(np.array([0, 0, 255], np.uint8), (8, 8, 1))).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert torch.allclose(_pixels(tmp_path / "c.jpg", 3).mean((1, 2)), torch.tensor([0.0, 0, 1]), atol=0.03)
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "w16.png")
    assert torch.allclose(_pixels(tmp_path / "w16.png", 1), read_pixels(tmp_path / "w16.png", 1))
