"""Option values and observation files that must be refused in one line (exit 2) rather than
run on: inf/nan where a finite number is meant, +/-inf inside an observation file, a file whose
only variable is not the one the model was trained on."""
from __future__ import annotations

import numpy as np
import pytest

import inrkit
from inrkit.errors import ConfigError, DataError

from conftest import cli, one_line_error


@pytest.mark.parametrize("args,needle", [
    (["sample", "RUN", "--eta", "inf"], "--eta"),
    (["sample", "RUN", "--eta", "nan"], "--eta"),
    (["complete", "RUN", "--observations", "OBS", "--guidance", "inf"], "--guidance"),
    (["complete", "RUN", "--observations", "OBS", "--clip", "nan"], "--clip"),
    (["inpaint", "RUN", "--guidance", "nan"], "--guidance"),
    (["inpaint", "RUN", "--clip", "inf"], "--clip"),
])
def test_non_finite_option_values_are_refused_before_anything_runs(tmp_path, capsys, args, needle):
    run = tmp_path / "run"
    args = [str(run) if a == "RUN" else str(tmp_path / "obs.csv") if a == "OBS" else a for a in args]
    code, _, err = cli(args, capsys)
    one_line_error(code, err, needle)  # nan may fail the range check first: refused either way
    assert not run.exists()


def test_samplers_refuse_non_finite_eta_and_clip():
    import torch

    from inrkit.priors.guided import _check
    from inrkit.priors.samplers import ddim_sample
    from inrkit.priors.schedule import NoiseSchedule

    schedule = NoiseSchedule(num_timesteps=10)
    for eta in (float("inf"), float("nan"), -0.5):
        with pytest.raises(ConfigError, match="eta must be a finite number"):
            ddim_sample(lambda x, t: torch.zeros_like(x), schedule, (1, 2), steps=2, eta=eta)
    with pytest.raises(ConfigError, match="clip must be a finite number"):
        _check(2, 1.0, float("inf"))


def _grid(path, name, field, units="K"):
    import xarray as xr

    lat, lon = np.linspace(80, -80, field.shape[0]), np.arange(0, 360, 360 / field.shape[1])
    xr.DataArray(field, dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon},
                 attrs={"units": units}).to_dataset(name=name).to_netcdf(path, engine="h5netcdf")


def test_infinite_values_in_observations_are_an_error_not_a_gap(tmp_path):
    d = inrkit.build("domains", "sphere", n_lat=12, n_lon=24)
    field = np.full((5, 6), 280.0)
    field[0, 0] = np.nan  # a gap: fine
    _grid(tmp_path / "gap.nc", "t2m", field)
    assert len(d.read_observations(tmp_path / "gap.nc")) == 29
    field[2, 3] = np.inf
    field[4, 1] = -np.inf
    _grid(tmp_path / "inf.nc", "t2m", field)
    with pytest.raises(DataError, match="2 infinite values"):
        d.read_observations(tmp_path / "inf.nc")
    whole = np.full((5, 6), 280.0)
    whole[1, 1] = np.inf
    _grid(tmp_path / "whole.nc", "t2m", whole)
    with pytest.raises(DataError, match="1 infinite value "):
        d.read_item(tmp_path / "whole.nc")


def test_observation_variable_is_picked_as_the_datasets_pick_it(tmp_path):
    d = inrkit.build("domains", "sphere", n_lat=12, n_lon=24)
    _grid(tmp_path / "tp.nc", "tp", np.full((5, 6), 0.001), units="m")  # precipitation, not temperature
    with pytest.raises(DataError, match="--variable"):
        d.read_observations(tmp_path / "tp.nc")
    # named explicitly it is read (units still checked against the domain's)
    _grid(tmp_path / "air.nc", "air", np.full((5, 6), 15.0), units="degC")
    obs = d.read_observations(tmp_path / "air.nc", variable="air")
    assert len(obs) == 30 and obs.units == "K"


@pytest.mark.parametrize("args", [
    ["sample", "RUN", "--seed", "99999999999999999999"],
    ["sample", "RUN", "--seed", "-1"],
    ["evaluate", "RUN", "--seed", "4294967296"],
    ["inpaint", "RUN", "--seed", "-5"],
    ["complete", "RUN", "--observations", "OBS", "--seed", "-5"],
])
def test_seeds_out_of_range_are_one_line(tmp_path, capsys, args):
    args = [str(tmp_path / "run") if a == "RUN" else str(tmp_path / "obs.csv") if a == "OBS" else a for a in args]
    code, _, err = cli(args, capsys)
    one_line_error(code, err, "--seed")


def test_configured_seeds_are_in_range_too(tmp_path, capsys):
    from inrkit.registry import SEED_MAX
    from inrkit_ldmi.compare.plan import seed_list

    for field in ("train.seed=-3", f"train.seed={SEED_MAX + 1}"):
        code, _, err = cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--out", tmp_path / "r",
                            "--set", field], capsys)
        one_line_error(code, err, "seed")
        assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="0..4294967295"):
        seed_list([0, -1])
    with pytest.raises(ConfigError, match="gate_seed"):
        inrkit.build("hypernets", "mixture", context={"inr": inrkit.build("inrs", "siren", width=8, depth=1),
                                                       "latent_shape": (2, 4, 4)}, gate_seed=-1)
