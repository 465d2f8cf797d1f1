"""FID over a user-given ``torch.export`` (.pt2) feature network: through compute_fid and through
``inrkit evaluate --fid-features``, and the one-line errors for missing, corrupt or ill-fitting archives."""
from __future__ import annotations

import json

import pytest
import torch

from inrkit.errors import DataError
from inrkit_modalities.image.fid import compute_fid, load_feature_network

from conftest import cli, one_line_error
from test_cli_train import FAST


class _Features(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, 6)

    def forward(self, x):
        return torch.tanh(self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)))


def export_features(net: torch.nn.Module, path, size: int, dynamic_batch: bool = True):
    example = torch.rand(4, 3, size, size)
    shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    torch.export.save(torch.export.export(net.eval(), (example,), dynamic_shapes=shapes), str(path))
    return path


def test_fid_from_a_pt2_archive(tmp_path):
    torch.manual_seed(0)
    net = _Features()
    pt2 = export_features(net, tmp_path / "features.pt2", size=8)
    real = torch.rand(40, 3, 8, 8) * 2 - 1
    near = (real + 0.3).clamp(-1, 1)
    far = (real * 0.2 + 0.7).clamp(-1, 1)  # brighter and with much less contrast

    same = compute_fid(real, real, pt2, batch_size=16)  # batches of 16, 16, 8: the batch dim must be dynamic
    assert same["fid_status"] == "ok" and same["fid_feature_dim"] == 6
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    fid_near = compute_fid(real, near, pt2, batch_size=16)["fid"]
    fid_far = compute_fid(real, far, pt2)["fid"]
    assert fid_near > 1e-3 and fid_far > 2 * fid_near
    # the archive computes what the module it was exported from computes
    assert fid_near == pytest.approx(compute_fid(real, near, net)["fid"], rel=1e-5)
    assert fid_far == pytest.approx(compute_fid(real, far, net)["fid"], rel=1e-5)
    # ExportedProgram.module() given directly (it refuses .eval())
    loaded = torch.export.load(str(pt2)).module()
    assert compute_fid(real, far, loaded)["fid"] == pytest.approx(fid_far, rel=1e-5)

    with pytest.raises(DataError, match="not found"):
        load_feature_network(tmp_path / "missing.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="junk.pt2: cannot load feature network"):
        load_feature_network(tmp_path / "junk.pt2")
    # exported with a fixed batch of 4: fed 40 at once, it fails as a DataError that says why
    static = export_features(net, tmp_path / "static.pt2", size=8, dynamic_batch=False)
    with pytest.raises(DataError, match=r"failed on a batch of shape \(40, 3, 8, 8\).*dynamic batch"):
        compute_fid(real, far, static)


def test_evaluate_cli_fid_features_pt2(tmp_path, capsys):
    from inrkit import load_run

    run = tmp_path / "run"
    code, _, err = cli(["train", "ldmi", "--modality", "image", "--preset", "tiny", "--out", run, *FAST,
                        "--set", "data.n_items=16", "--set", "train.vae.steps=1", "--set", "train.prior.steps=1"], capsys)
    assert code == 0, err
    model = load_run(run, device="cpu")
    size = model.domain.grid_shape[0]
    torch.manual_seed(1)
    net = _Features()
    pt2 = export_features(net, tmp_path / "features.pt2", size=size)

    code, out, err = cli(["evaluate", run, "--n-samples", 3, "--ddim-steps", 1, "--seed", 0, "--device", "cpu",
                          "--fid-features", pt2], capsys)
    assert code == 0, err
    samples = json.loads((run / "eval.json").read_text())["samples"]
    assert samples["fid_status"] == "ok" and samples["fid_n_fake"] == 3 and samples["fid_feature_dim"] == 6
    # the same number from the held-out images and the same seeded samples, with the module itself
    from inrkit.runs import Run

    val = Run.open(run).dataset("val")
    real = torch.stack([val[i] for i in range(len(val))])
    assert samples["fid_n_real"] == len(val) >= 2
    expected = compute_fid(real, model.sample(3, steps=1, seed=0), net)["fid"]
    assert samples["fid"] == pytest.approx(expected, rel=1e-4, abs=1e-8)
    assert "fid" in out

    base = ["evaluate", run, "--n-samples", 2, "--ddim-steps", 1, "--device", "cpu", "--fid-features"]
    one_line_error(*cli([*base, tmp_path / "missing.pt2"], capsys)[::2], "feature network file not found", "missing.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"\x00" * 64)
    one_line_error(*cli([*base, tmp_path / "junk.pt2"], capsys)[::2], "junk.pt2", "cannot load feature network")
    static = export_features(net, tmp_path / "static.pt2", size=size, dynamic_batch=False)
    one_line_error(*cli([*base, static], capsys)[::2], "feature network failed", "dynamic batch")
    one_line_error(*cli(["evaluate", run, "--fid-features", pt2], capsys)[::2], "--fid-features needs --n-samples")
