"""`inrkit list` shows every registry entry, and every part class in the packages is registered."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import inrkit
from inrkit.registry import KINDS, get_registry

from conftest import cli


def test_list_prints_every_entry_of_every_registry(capsys):
    code, out, _ = cli(["list"], capsys)
    assert code == 0
    for kind in KINDS:
        assert kind in out
        for name in get_registry(kind).names():
            assert name in out, f"{kind}/{name} missing from `inrkit list`"


def test_list_one_registry_with_a_wildcard(capsys):
    code, out, _ = cli(["list", "hypernets", "--filter", "m*"], capsys)
    assert code == 0
    assert "mlp" in out and "mixture" in out and "│ hd" not in out
    assert "n_components" in out  # config fields with defaults are shown


def test_list_unknown_registry_is_one_line_exit_2(capsys):
    code, _, err = cli(["list", "hypernet"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "hypernets" in err


def _classes(package: str, base: type):
    pkg = importlib.import_module(package)
    for mod in pkgutil.walk_packages(pkg.__path__, package + "."):
        module = importlib.import_module(mod.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, base) and cls is not base and cls.__module__ == module.__name__:
                yield cls


@pytest.mark.parametrize(
    "package,base_path,kind",
    [
        ("inrkit.inrs", "inrkit.inrs.base:INR", "inrs"),
        ("inrkit.hypernets", "inrkit.hypernets.base:Hypernet", "hypernets"),
        ("inrkit.encoders", "inrkit.encoders.base:Encoder", "encoders"),
        ("inrkit.priors", "inrkit.priors.base:Prior", "priors"),
        ("inrkit_modalities", "inrkit.domain:Domain", "domains"),
    ],
)
def test_every_part_class_is_registered(package, base_path, kind):
    """Registration lists drift otherwise: a concrete part that nobody registered is dead code."""
    inrkit.load_plugins()
    mod, name = base_path.split(":")
    base = getattr(importlib.import_module(mod), name)
    registered = {get_registry(kind).get(n).cls for n in get_registry(kind).names()}
    found = [cls for cls in _classes(package, base) if not inspect.isabstract(cls)]
    assert found, f"no {kind} classes found under {package}"
    missing = [cls.__qualname__ for cls in found
               if cls not in registered and not any(issubclass(r, cls) for r in registered)]
    assert not missing, f"unregistered {kind}: {missing}"
