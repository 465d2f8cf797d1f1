"""One ``train ldmi`` run resolves its configuration once and builds each part once (#14)."""
from __future__ import annotations

import pytest
import yaml

from conftest import count_parts, run_cli, toy_run_config


@pytest.mark.xfail(strict=True, reason="today the run config is resolved 4 times and the domain built 8 times;"
                   " the Recipe (#14 step 3) makes it once")
def test_train_ldmi_resolves_once_and_builds_each_part_once(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_run_config()))
    with count_parts() as (validated, built):
        code = run_cli(["train", "ldmi", "--config", str(config), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 0
    assert validated[("models", "ldmi")] == 1  # the recipe's one resolution
    parts = [("domains", "toy_grid"), ("encoders", "conv2d"), ("inrs", "siren"), ("hypernets", "hd"),
             ("priors", "diffusion"), ("likelihoods", "gaussian")]
    for part in parts:
        assert validated[part] == 1, (part, validated)
        assert built[part] == 1, (part, built)
    assert validated[("datasets", "toy_bumps")] == 1
    assert built[("datasets", "toy_bumps")] == 2  # the train and the held-out split, once each
