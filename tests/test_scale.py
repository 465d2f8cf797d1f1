"""The scalability report, part specs and the ``inrkit scale`` command."""
import json

import pytest
import torch

import inrkit
from inrkit.config import parse_part_spec
from inrkit.errors import ConfigError
from inrkit.scale import CPU_MEMORY_NOTE, coordinate_grid, scale_report

from conftest import cli

TINY_HD = {"name": "hd", "dim": 16, "encoder_depth": 1, "decoder_depth": 1, "n_heads": 2, "head_dim": 8,
           "ff_dim": 32, "tokenizer_heads": 2, "tokenizer_head_dim": 8, "n_groups": 4}
TINY_INR = {"name": "siren", "width": 8, "depth": 2}


def test_parse_part_spec():
    assert parse_part_spec("siren:depth=5,width=256") == {"name": "siren", "depth": 5, "width": 256}
    assert parse_part_spec("siren") == {"name": "siren"}
    assert parse_part_spec("dim=96, update=normalize") == {"dim": 96, "update": "normalize"}
    assert parse_part_spec("mlp:hidden=[64,128],head_init_scale=0.5,x=true") == {
        "name": "mlp", "hidden": [64, 128], "head_init_scale": 0.5, "x": True}
    for bad in ("siren:depth", ":depth=3", "siren:=3"):
        with pytest.raises(ConfigError):
            parse_part_spec(bad)


def test_coordinate_grid_cell_centres():
    g = coordinate_grid(4, 2)
    assert g.shape == (16, 2)
    assert torch.allclose(g[:4, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert coordinate_grid((2, 3, 5), 3).shape == (30, 3)
    with pytest.raises(ConfigError, match="does not match"):
        coordinate_grid((2, 3), 3)


def test_scale_report_counts_and_memory_note():
    rows = scale_report([TINY_HD, {"name": "mlp", "hidden": [16], "latent_shape": [8]}], TINY_INR,
                        latent_shape=(3, 4, 4), resolution=8, batch_size=2, repeats=1)
    inr = inrkit.build("inrs", "siren", width=8, depth=2)
    hd = inrkit.build("hypernets", "hd", context={"inr": inr, "latent_shape": (3, 4, 4)},
                      **{k: v for k, v in TINY_HD.items() if k != "name"})
    hd_row, mlp_row = rows
    assert hd_row["hypernet_params"] == hd.parameter_report()["reference_total"]
    assert hd_row["hypernet_params_total"] == sum(p.numel() for p in hd.parameters())
    assert hd_row["inr_params"] == inr.num_params
    assert hd_row["inr_per_hypernet_param"] == pytest.approx(inr.num_params / hd_row["hypernet_params"])
    assert mlp_row["latent_shape"] == [8]
    assert mlp_row["hypernet_params"] == 8 * 16 + 16 + 17 * inr.num_params
    for row in rows:
        assert row["n_coords"] == 64 and row["decode_ms"] > 0
        assert row["peak_memory_mb"] is None and row["memory_note"] == CPU_MEMORY_NOTE


def test_scale_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "scale.json"
    code, printed, err = cli(["scale", "--hypernets", "hd,mlp", "--inr", "siren:width=8,depth=2", "--latent", "3,4,4",
                              "--hd", "dim=16,encoder_depth=1,decoder_depth=1,n_heads=2,head_dim=8,ff_dim=32,tokenizer_heads=2,"
                                      "tokenizer_head_dim=8,n_groups=4",
                              "--mlp", "hidden=[16],latent_shape=[8]", "--in-dim", "3", "--out-dim", "1",
                              "--resolution", "4", "--repeats", "1", "--json", out], capsys)
    assert code == 0, err
    assert "hd" in printed and "mlp" in printed and "INR / hypernet" in printed
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == ["hd", "mlp"]
    assert rows[0]["spec"]["dim"] == 16 and rows[1]["spec"]["hidden"] == [16]
    assert rows[0]["inr"]["in_dim"] == 3 and rows[0]["n_coords"] == 64
    assert rows[0]["inr_params"] == (3 + 1) * 8 + 9 * 8 + 9 * 1


@pytest.mark.parametrize("args,message", [
    (["--latent", "3,x"], "--latent"),
    (["--hypernets", "hdd"], "unknown hypernet 'hdd'"),
    (["--inr", "siren:widht=3"], "unknown field 'widht'"),
    (["--hypernets", "hd,,mlp"], "an empty name between commas"),
    (["--hypernets", " , "], "give at least one name"),
    (["--opts", "garbage"], "expected NAME:key=value"),
    (["--hypernets", "hd", "--mlp", "hidden=[16]"], "'mlp' is not among the measured hypernetworks"),
    (["--hypernets", "mlp", "--opts", "hd:dim=16"], "'hd' is not among the measured hypernetworks"),
])
def test_scale_cli_bad_input_is_one_line(args, message, capsys):
    code, _, err = cli(["scale", "--inr", "siren:width=8,depth=1", *args], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
