"""Docs tutorials are executed here so that they cannot rot.

Every ```python block of a tutorial runs, in order, in one namespace, inside a temporary
directory; a block with a title (```toml title="pkg/pyproject.toml") is a file the reader
writes: it is written to that path instead. In ```console blocks, every line starting with
``$ inrkit`` runs through the CLI and must exit 0 (lines ending in ``# exit 2`` must exit 2);
``$ pip install ...`` runs this interpreter's pip; ``$ NAME=value inrkit ...`` runs the CLI in a
new process with that variable set (``PYTHONPATH`` entries are prepended to the current one).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from inrkit.registry import REGISTRIES, load_plugins

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "tutorials"
TUTORIALS = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)
TITLE = re.compile(r'title="([^"]+)"')
ENV = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\S*)$")


def test_tutorials_exist():
    assert TUTORIALS, "docs/tutorials/ holds no tutorial"


def _subprocess_env(assignments: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in assignments.items():
        if key == "PYTHONPATH":
            value = os.pathsep.join(p for p in (value, str(ROOT), env.get("PYTHONPATH", "")) if p)
        env[key] = value
    return env


def run_console_line(line: str, where: str) -> None:
    expect = 2 if line.endswith("# exit 2") else 0
    command = line[2:].split("#", 1)[0]
    words = shlex.split(command)
    assignments = {}
    while words and ENV.match(words[0]):
        key, value = ENV.match(words[0]).groups()
        assignments[key] = value
        words = words[1:]
    if not words or words[0] not in ("inrkit", "pip"):
        return  # prose in a console block (cd, ls...) is not run
    if words[0] == "pip":
        argv = [sys.executable, "-m", "pip", *words[1:]]
    elif assignments:
        argv = [sys.executable, "-m", "inrkit_cli.main", *words[1:]]
    else:
        assert run_cli(words[1:]) == expect, f"{where}: '{command}' did not exit {expect}"
        return
    done = subprocess.run(argv, env=_subprocess_env(assignments), capture_output=True, text=True)
    assert done.returncode == expect, f"{where}: '{command}' exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def restore_process_state():
    """A tutorial may install a plugin into its folder and register its parts: undo both after."""
    load_plugins()  # the installed plugins' parts are in the snapshot: they load once per process
    path = list(sys.path)
    entries = {kind: dict(reg._entries) for kind, reg in REGISTRIES.items()}
    yield
    sys.path[:] = path
    for kind, reg in REGISTRIES.items():
        reg._entries.clear()
        reg._entries.update(entries[kind])


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path, monkeypatch, restore_process_state):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"tutorial_{path.stem}"}
    blocks = BLOCK.findall(path.read_text())
    assert any(lang in ("python", "console") for lang, _, _ in blocks), f"{path.name} has no runnable block"
    for lang, info, body in blocks:
        title = TITLE.search(info)
        if title:
            target = tmp_path / title.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
        elif lang == "python":
            exec(compile(body, str(path), "exec"), namespace)
        elif lang == "console":
            for line in body.splitlines():
                line = line.strip()
                if line.startswith("$ "):
                    run_console_line(line, path.name)
