"""Docs tutorials are executed here so that they cannot rot.

Every ```python block of a tutorial runs, in order, in one namespace, inside a temporary
directory; every ```console block line starting with ``$ inrkit`` runs through the CLI and must
exit 0 (lines ending in ``# exit 2`` must exit 2).
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from conftest import run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
TUTORIALS = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"```(python|console)\n(.*?)```", re.S)


def test_tutorials_exist():
    assert TUTORIALS, "docs/tutorials/ holds no tutorial"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"tutorial_{path.stem}"}
    blocks = BLOCK.findall(path.read_text())
    assert blocks, f"{path.name} has no runnable block"
    for lang, body in blocks:
        if lang == "python":
            exec(compile(body, str(path), "exec"), namespace)
            continue
        for line in body.splitlines():
            line = line.strip()
            if not line.startswith("$ inrkit "):
                continue
            expect = 2 if line.endswith("# exit 2") else 0
            command = line[2:].split("#", 1)[0]
            args = shlex.split(command)[1:]
            assert run_cli(args) == expect, f"{path.name}: '{command}' did not exit {expect}"
