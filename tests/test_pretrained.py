"""diffusers/timm habits: save_pretrained / from_pretrained in the run layout, list_parts wildcards,
``inrkit --version`` and shell completion."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import inrkit
from inrkit.errors import CheckpointError, ConfigError
from inrkit_ldmi.model import LDMI

from conftest import run_cli, toy_run_config

ROOT = Path(__file__).resolve().parents[1]


def test_save_and_from_pretrained_round_trip(tmp_path, capsys):
    model = LDMI.from_config(toy_run_config())
    with torch.no_grad():
        for p in model.parameters():  # not the initial weights: a round trip must carry these
            p.add_(torch.randn_like(p) * 0.01)
    out = model.save_pretrained(tmp_path / "pretrained")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.safetensors"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["name"] == "ldmi" and config["model"]["hypernet"]["name"] == "hd"
    assert config["data"]["n_items"] == 12  # the run config it came from travels with it

    again = LDMI.from_pretrained(out)
    assert isinstance(again, LDMI) and not again.training
    ref, got = model.state_dict(), again.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    model.eval()
    z = torch.randn(2, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.decode(z), again.decode(z))
    assert torch.equal(inrkit.load_run(out).decode(z), again.decode(z))  # the same layout as a run

    # a pretrained folder is a run folder to the CLI
    capsys.readouterr()
    assert run_cli(["sample", str(out), "--n", "2", "--ddim-steps", "2", "--seed", "0", "--out", str(tmp_path / "s")]) == 0
    assert any((tmp_path / "s").iterdir())

    # saving again replaces its two files; a folder holding anything else is refused
    again.save_pretrained(out)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match=r"refusing to write into .*mine: it exists and is not an empty folder or an inrkit run"):
        model.save_pretrained(tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_from_pretrained_checks_the_model_kind(tmp_path):
    from inrkit_ldmi.ldm import LDM

    LDMI.from_config(toy_run_config()).save_pretrained(tmp_path / "ldmi")
    with pytest.raises(CheckpointError, match=r"ldmi: holds a 'ldmi' model, not 'ldm'"):
        LDM.from_pretrained(tmp_path / "ldmi")
    with pytest.raises(CheckpointError, match="run directory not found"):
        LDMI.from_pretrained(tmp_path / "nowhere")


def test_list_parts_wildcards():
    assert inrkit.list_parts("hypernets", "h*") == ["hd"]
    assert inrkit.list_parts("hypernets") == sorted(inrkit.get_registry("hypernets").names())
    assert {"era5_npz", "era5_xarray"} == set(inrkit.list_parts("datasets", "era5_*"))
    assert inrkit.list_parts("priors", "zzz*") == []
    with pytest.raises(inrkit.InrkitError, match="unknown registry 'hypernet'.*Did you mean 'hypernets'"):
        inrkit.list_parts("hypernet")


def test_version(capsys):
    from importlib.metadata import version

    capsys.readouterr()
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"inrkit {version('inrkit')}"


def _inrkit(args: list[str], **env: str) -> str:
    """The ``inrkit`` command in a subprocess, named as the installed script is (completion keys on it)."""
    code = "import sys; sys.argv[0] = 'inrkit'; from inrkit_cli.main import main; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _complete(words: str) -> list[str]:
    """What bash completion offers for ``words`` (typer's completion protocol, as the shell calls it)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    return _inrkit([], _INRKIT_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword)).split()


def test_shell_completion():
    assert _complete("inrkit sa") == ["sample"]
    assert "--resolution" in _complete("inrkit sample run --res")
    assert {"prepare", "show"} <= set(_complete("inrkit data "))
    # typer would detect the shell from the parent process (make runs sh); the test names bash itself
    script = _inrkit(["--show-completion", "bash"], SHELL="/bin/bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert "_INRKIT_COMPLETE=complete_bash" in script and "complete -o default -F" in script
