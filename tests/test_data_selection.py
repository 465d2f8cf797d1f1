"""Choosing a dataset by name (``data.name``), e.g. the built-in digits instead of the faces."""
import pytest

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import ConfigError, InrkitError
from inrkit.recipe import resolve_data


def test_open_dataset_by_name_overrides_the_builtin_default():
    domain = inrkit.build("domains", "image", resolution=8, channels=1)
    default = open_dataset(domain, split="all")
    digits = open_dataset(domain, split="all", name="digits")
    assert len(default) == 100 and len(digits) == 1797
    assert tuple(digits[0].shape) == (1, 8, 8)


def test_run_config_data_name_is_validated():
    domain = inrkit.build("domains", "image", resolution=8, channels=1)
    assert resolve_data({"path": None, "name": "digits"}, domain)[0]["name"] == "digits"
    with pytest.raises(InrkitError, match="digits"):
        resolve_data({"path": None, "name": "digitz"}, domain)
    with pytest.raises(ConfigError, match="n_itemz"):
        resolve_data({"path": None, "name": "digits", "n_itemz": 3}, domain)
