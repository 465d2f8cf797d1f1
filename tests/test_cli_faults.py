"""Faults a user meets through the CLI: an allocation the machine refuses, a run folder whose
config.yaml is not YAML, an unreadable weights file. Each is one line, exit code 2."""
from __future__ import annotations

import pytest
import torch

from conftest import cli, one_line_error


@pytest.mark.parametrize("fault", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried"
                 " to allocate 156521600000 bytes."),
    MemoryError(),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
])
def test_out_of_memory_is_one_line(monkeypatch, capsys, tmp_path, fault):
    import inrkit_ldmi.evaluate

    def refuse(*args, **kwargs):
        raise fault

    monkeypatch.setattr(inrkit_ldmi.evaluate, "evaluate_run", refuse)
    code, _, err = cli(["evaluate", tmp_path], capsys)
    one_line_error(code, err, "out of memory", "--resolution")


def test_other_runtime_errors_stay_bugs(monkeypatch, tmp_path):
    import inrkit_ldmi.evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch in our code")

    monkeypatch.setattr(inrkit_ldmi.evaluate, "evaluate_run", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli(["evaluate", tmp_path])


@pytest.mark.parametrize("text", [b"a: [1, 2\nb: {\n", b"\x00\xff\xfe binary", b"- just\n- a list\n"])
def test_report_on_a_run_whose_config_is_not_yaml(tmp_path, capsys, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(text)
    code, _, err = cli(["report", run], capsys)
    one_line_error(code, err, "config.yaml")
    assert not (run / "report.html").exists()


def test_unreadable_weights_say_so(tmp_path, monkeypatch):
    """A weights file without read permission is named as unreadable, not as corrupt (the open is
    refused by a stand-in: this suite may run as root, whom chmod 000 does not stop)."""
    import builtins

    import inrkit.io
    from inrkit.errors import CheckpointError
    from inrkit.io import load_tensors, save_tensors

    path = tmp_path / "w.safetensors"
    save_tensors({"a": torch.zeros(2)}, path)

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(inrkit.io, "open", refusing_open, raising=False)
    with pytest.raises(CheckpointError, match=r"cannot read .*w.safetensors: permission denied"):
        load_tensors(path)


@pytest.mark.parametrize("item, field", [("train.vae.lr=inf", "vae.lr"), ("model.inr.w0=nan", "w0"),
                                          ("train.prior.lr=-inf", "prior.lr")])
def test_non_finite_config_values_are_refused_before_training(tmp_path, capsys, item, field):
    run = tmp_path / "run"
    code, _, err = cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--out", run, "--device", "cpu",
                        "--set", item], capsys)
    one_line_error(code, err, field, "finite")
    assert not run.exists()


@pytest.mark.parametrize("flags", [["--resume", "--overwrite"], ["--resume-older", "--overwrite"]])
@pytest.mark.parametrize("command", [["train", "ldmi"], ["train", "ldm"]])
def test_resume_and_overwrite_together_are_refused(tmp_path, capsys, flags, command):
    code, _, err = cli([*command, "--modality", "sphere", "--preset", "tiny", "--out", tmp_path / "run", "--device", "cpu",
                        *flags], capsys)
    one_line_error(code, err, "--overwrite", "give one of them")
    assert not (tmp_path / "run").exists()
