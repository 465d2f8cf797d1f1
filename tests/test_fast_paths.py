"""The GPU fast paths, checked on CPU: each gives the plain path's losses and gradients.

Tolerances: paths that run the same arithmetic in another order (fused/foreach AdamW,
channels-last convolutions) agree to 1e-5 relative; paths that run identical kernels on
identical batches (data held on the device) agree exactly. The fused sine kernels run under
Triton's CPU interpreter (fp32 arithmetic) and agree with the PyTorch SIREN to 1e-5; their bf16
schemes need a GPU and are measured by ``benchmarks/gpu_bench.py`` (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from inrkit.errors import ConfigError
from inrkit.inrs import fused_sine
from inrkit.inrs.siren import Siren, SirenConfig
from inrkit.priors.ema import EMA
from inrkit.train import Engine, StageConfig, Trainer
from inrkit.train import checkpoint as ckpt
from inrkit.train.fast import DeviceData, StepLogs, make_optimizer
from inrkit.train.schedule import stage_lr
from inrkit.errors import NonFiniteLoss

from test_trainer import Items, Toy, ToyTrain


def _config(**kw):
    base = dict(checkpoint_every=2, keep_checkpoints=2, log_every=2, progress=False, tensorboard=False)
    return ToyTrain(**{**base, **kw})

ROOT = Path(__file__).resolve().parents[1]


def _losses(config, model=None, data=None):
    torch.manual_seed(1234)
    model = model or Toy()
    seen = []
    trainer = Trainer(model, config, None, engine=Engine("cpu"),
                      on_step=lambda stage, step, last: seen.append((stage, step, last.get("loss"))))
    trainer.fit(data or Items())
    return model, [loss for _, _, loss in seen if loss is not None]


@pytest.mark.parametrize("optimizer", ["fused", "foreach", "plain"])
def test_optimizer_implementations_match_the_default(optimizer):
    ref_model, ref = _losses(_config(log_every=1))
    model, got = _losses(_config(log_every=1, optimizer=optimizer))
    assert len(got) == len(ref) == 12
    torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), rtol=1e-5, atol=1e-7)
    for a, b in zip(ref_model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown implementation"):
        make_optimizer([nn.Parameter(torch.zeros(1))], StageConfig(), "adam9", torch.device("cpu"))


def test_data_held_on_the_device_gives_the_loaders_batches():
    class TensorItems(Items):
        def as_tensors(self):
            return self.x

    ref_model, ref = _losses(_config(log_every=1), data=TensorItems())
    model, got = _losses(_config(log_every=1, data_on_device="always"), data=TensorItems())
    assert got == ref  # same batches, same kernels: bit-identical
    # a dataset that is not tensor-backed is gathered item by item under "always"
    _, gathered = _losses(_config(log_every=1, data_on_device="always"), data=Items())
    assert gathered == ref
    # auto never moves data on CPU
    assert DeviceData.maybe(TensorItems(), "auto", torch.device("cpu")) is None


def test_device_data_yields_tuples_for_tensor_datasets():
    ds = torch.utils.data.TensorDataset(torch.arange(10.0)[:, None], -torch.arange(10.0)[:, None])
    from inrkit.train.sampler import StepBatchSampler

    dd = DeviceData.maybe(ds, "always", torch.device("cpu"))
    sampler = StepBatchSampler(10, 4, 3, seed=1)
    batches = list(dd.batches(sampler, block=2))
    assert len(batches) == 3
    for step, (a, b) in enumerate(batches):
        idx = sampler.indices(step)
        assert a[:, 0].tolist() == [float(i) for i in idx] and torch.equal(b, -a)


def test_device_data_batches_are_lazy_for_a_wall_clock_budget():
    """A minutes budget plans up to 10^9 steps (compare --budget-minutes): the batches must come one
    block at a time. Listing the steps first (the old code) filled 35 GB of host memory per run
    on the GPU and had the kernel kill comparison workers; 10^12 steps fail at once that way."""
    import itertools

    from inrkit.train.sampler import StepBatchSampler

    dd = DeviceData.maybe(torch.utils.data.TensorDataset(torch.arange(10.0)[:, None]), "always", torch.device("cpu"))
    sampler = StepBatchSampler(10, 4, 10**12, start=5, seed=1)
    first = list(itertools.islice(dd.batches(sampler, block=3), 4))
    for k, (a,) in enumerate(first):
        assert a[:, 0].tolist() == [float(i) for i in sampler.indices(5 + k)]


class Convy(nn.Module):
    """A conv stack with GroupNorm, trained on 2D grids: channels-last must not change its losses."""

    stages = ("a",)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU(), nn.Conv2d(8, 2, 3, padding=1))

    def stage_parameters(self, stage):
        return list(self.parameters())

    def stage_loss(self, stage, batch, points=None, generator=None):
        return (self.net(batch) - batch.flip(-1)).pow(2).mean(), {}


class Grids(torch.utils.data.Dataset):
    def __init__(self):
        self.x = torch.randn(6, 2, 8, 8, generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return self.x[i]


def test_channels_last_matches_contiguous(tmp_path):
    def cfg(**kw):
        return ToyTrain(a=StageConfig(steps=5, batch_size=3, lr=1e-2), log_every=1, progress=False, tensorboard=False, **kw)

    ref_model, ref = _losses(cfg(), model=Convy(), data=Grids())
    model, got = _losses(cfg(channels_last=True), model=Convy(), data=Grids())
    assert model.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), rtol=1e-5, atol=1e-7)
    # checkpoints are written contiguous and load back into channels-last weights
    trainer = Trainer(Convy(), cfg(channels_last=True, checkpoint_every=5), tmp_path, engine=Engine("cpu"))
    trainer.fit(Grids())
    ref_ckpt = ckpt.latest_checkpoint(tmp_path, "a")
    fresh = Convy()
    ckpt.load_model_weights(fresh, ref_ckpt.path / "model.safetensors")
    torch.testing.assert_close(fresh.net[0].weight, trainer.model.net[0].weight)


@pytest.mark.parametrize("optimizer", ["fused", "foreach", "default"])
def test_a_channels_last_run_resumes_to_the_uninterrupted_weights(tmp_path, optimizer):
    """Adam's moments come back from a checkpoint (saved contiguous) in their parameters'
    channels-last layout: a run cut at step 2 and resumed reaches the weights of the unbroken run
    exactly, with every AdamW implementation (fused AdamW paired NCHW moments with channels-last
    gradients in memory order before, a silently wrong update on CPU)."""
    def cfg(steps):
        return ToyTrain(a=StageConfig(steps=steps, batch_size=3, lr=1e-2), log_every=1, progress=False, tensorboard=False,
                        channels_last=True, optimizer=optimizer, checkpoint_every=2)

    whole = Trainer(Convy(), cfg(6), tmp_path / "whole", engine=Engine("cpu"))
    whole.fit(Grids())
    Trainer(Convy(), cfg(2), tmp_path / "cut", engine=Engine("cpu")).fit(Grids())
    resumed = Trainer(Convy(), cfg(6), tmp_path / "cut", engine=Engine("cpu"))
    resumed.fit(Grids(), resume=True)
    for (name, a), b in zip(resumed.model.named_parameters(), whole.model.parameters()):
        assert torch.equal(a, b), name
    conv = resumed.model.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    # the moments of a freshly loaded checkpoint have the weight's layout
    opt = torch.optim.AdamW(resumed.model.parameters())
    ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "cut", "a").path, model=resumed.model, optimizer=opt)
    for key in ("exp_avg", "exp_avg_sq"):
        assert opt.state[conv][key].stride() == conv.stride(), key


def test_channels_last_auto_is_on_only_for_a_compiled_cuda_step():
    """train.channels_last=auto: channels-last 2D convolutions where that measured faster (compiled,
    CUDA), else the NCHW layout; explicit true/false win (true: 3D ones too). The default config leaves a CPU model NCHW."""
    from inrkit.train.fast import channels_last_dims, to_channels_last

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert channels_last_dims("auto", "reduce-overhead", cuda) == (2,) == channels_last_dims("auto", True, cuda)
    assert channels_last_dims("auto", False, cuda) == () == channels_last_dims("auto", True, cpu)
    assert channels_last_dims(True, False, cpu) == (2, 3) and channels_last_dims(False, True, cuda) == ()
    both = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Conv3d(2, 4, 3))
    assert to_channels_last(both, (2,)) == (2,)
    assert both[0].weight.is_contiguous(memory_format=torch.channels_last) and both[1].weight.is_contiguous()
    assert to_channels_last(both) == (2, 3) and to_channels_last(nn.Linear(2, 2)) == ()
    assert both[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    cfg = ToyTrain(a=StageConfig(steps=1, batch_size=3), progress=False, tensorboard=False)
    assert cfg.channels_last == "auto"
    trainer = Trainer(Convy(), cfg, None, engine=Engine("cpu"))
    assert trainer.model.net[0].weight.is_contiguous()
    # the stage summary says what the auto settings resolved to
    speed = trainer.fit(Grids())["a"]["speed"]
    assert speed == {"device": "cpu", "precision": "fp32", "optimizer": "default", "data_on_device": False,
                     "channels_last": [], "compile": False}
    forced = ToyTrain(a=StageConfig(steps=1, batch_size=3), progress=False, tensorboard=False, channels_last=True,
                      optimizer="foreach", data_on_device="always", precision="bf16")
    speed = Trainer(Convy(), forced, None, engine=Engine("cpu")).fit(Grids())["a"]["speed"]
    assert speed["channels_last"] == ["2d"] and speed["optimizer"] == "foreach"   # Convy has no Conv3d to convert
    assert speed["precision"] == "bf16" and speed["data_on_device"] is True
    with pytest.raises(ValueError, match="channels_last"):
        ToyTrain(a=StageConfig(steps=1, batch_size=3), channels_last="sometimes")


class Diverges(Toy):
    """Its loss (and so its weights) turns NaN at ``bad_step`` of stage a."""

    def __init__(self, bad_step):
        super().__init__()
        self.bad_step, self.calls = bad_step, 0

    def stage_loss(self, stage, batch, points=None, generator=None):
        loss, logs = super().stage_loss(stage, batch, points, generator)
        if stage == "a":
            self.calls += 1
            if self.calls >= self.bad_step:
                loss = loss * float("nan")
        return loss, logs


def test_no_checkpoint_ever_holds_non_finite_weights(tmp_path):
    # logs are read only every 100 steps, checkpoints written every step: the check must still hold
    config = _config(log_every=100, checkpoint_every=1, keep_checkpoints=2)
    trainer = Trainer(Diverges(bad_step=4), config, tmp_path, engine=Engine("cpu"))
    with pytest.raises(NonFiniteLoss, match="step 4") as err:
        trainer.fit(Items())
    assert "--resume" in str(err.value) and "lr" in str(err.value)
    refs = ckpt.list_checkpoints(tmp_path, "a")
    assert [r.step for r in refs] == [2, 3]  # the newest finite ones, rotation kept them
    for ref in refs:
        from inrkit.io import load_tensors

        assert all(torch.isfinite(t).all() for t in load_tensors(ref.path / "model.safetensors").values())
    # resuming with a healthy model and another lr continues from step 3
    resumed = Trainer(Toy(), config.model_copy(update={"a": config.a.model_copy(update={"lr": 1e-3})}), tmp_path,
                      engine=Engine("cpu"))
    summary = resumed.fit(Items(), resume=True)
    assert summary["a"]["resumed_from"] == 3 and summary["a"]["steps"] == 7


def test_step_logs_read_once_and_remember_the_first_bad_step():
    logs = StepLogs(torch.device("cpu"))
    for step, v in enumerate([1.0, 3.0, float("inf"), float("nan"), 2.0], start=1):
        logs.add(step, {"loss": torch.tensor(v), "kl": torch.tensor(2.0 * step)})
    means, bad = logs.read()
    assert bad == 3 and means["kl"] == pytest.approx(6.0)
    assert logs.steps == 0 and logs.first_bad_step() == 3  # the first bad step outlives the window


def test_lr_scaling_rules():
    cfg = StageConfig(steps=10, lr=1e-3, batch_size=32, lr_scaling="sqrt")
    assert stage_lr(cfg, 5, 128) == pytest.approx(2e-3)
    lin = cfg.model_copy(update={"lr_scaling": "linear", "lr_reference_batch": 64})
    assert stage_lr(lin, 5, 128) == pytest.approx(2e-3)
    assert stage_lr(cfg.model_copy(update={"lr_scaling": "none"}), 5, 128) == pytest.approx(1e-3)


def test_ema_update_needs_no_host_sync_and_keeps_the_warmup_formula():
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.999, warmup=True)
    shadow = {k: v.clone() for k, v in ema.params().items()}
    for n in range(1, 4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        d = min(0.999, (1 + n) / (10 + n))
        for k, p in net.named_parameters():
            shadow[k] = d * shadow[k] + (1 - d) * p.detach()
        ema.update(net)
    for k, v in ema.params().items():
        torch.testing.assert_close(v, shadow[k], rtol=1e-6, atol=1e-6)


# -- the fused sine kernels ------------------------------------------------------------------------

def test_fused_kernel_falls_back_to_pytorch_without_cuda_or_triton(monkeypatch):
    cfg = dict(in_dim=2, out_dim=3, width=16, depth=2)
    torch_inr, fused_inr = Siren(SirenConfig(kernel="torch", **cfg)), Siren(SirenConfig(kernel="triton", **cfg))
    params = {k: v[None].repeat(2, 1, 1) for k, v in torch_inr.init_params().items()}
    coords = torch.rand(10, 2) * 2 - 1
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not fused_inr.uses_fused_kernel(torch.device("cpu"))  # CPU without the interpreter
    torch.testing.assert_close(fused_inr(params, coords), torch_inr(params, coords), rtol=0, atol=0)
    fused_sine._triton.cache_clear()
    monkeypatch.setitem(sys.modules, "triton", None)  # as if Triton were not installed
    try:
        assert fused_sine._triton() is None and not fused_sine.available("cuda")
    finally:
        fused_sine._triton.cache_clear()


@pytest.mark.parametrize("tiles,match", [
    ({"forwards": {"BN": 64}}, "forwards"),
    ({"forward": {"BX": 64}}, "unknown tile setting 'BX' of forward"),
    ({"grad_weight": {"BN": 48}}, "power of two >= 16"),
    ({"grad_input": {"BK": 8}}, "power of two >= 16"),
    ({"forward": {"num_warps": 0}}, "must be a positive integer"),
])
def test_bad_tile_settings_are_refused(tiles, match):
    import pydantic

    with pytest.raises(pydantic.ValidationError, match=match):
        SirenConfig(tiles=tiles)


def test_bad_tile_settings_are_a_one_line_cli_error(tmp_path, capsys):
    from conftest import cli, one_line_error

    code, _, err = cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--out", tmp_path / "run",
                        "--set", "model.inr.tiles.forward.BM=100"], capsys)
    one_line_error(code, err, "BM=100", "power of two")
    assert not (tmp_path / "run").exists()


def test_tiles_train_from_the_cli_are_saved_and_may_change_on_resume(tmp_path):
    """model.inr.tiles end to end: a run trains with them (on CPU the PyTorch path ignores them), its
    config.yaml keeps them, and --resume with other tiles continues the run (a speed setting)."""
    from conftest import run_cli, toy_run_config
    import yaml

    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_run_config()))
    run = tmp_path / "run"
    base = ["train", "ldmi", "--config", cfg, "--out", run, "--set", "train.prior.steps=0"]
    assert run_cli([*base, "--set", "train.vae.steps=2", "--set", "model.inr.tiles.forward.BM=32"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["inr"]["tiles"] == {"forward": {"BM": 32}}
    assert run_cli([*base, "--set", "train.vae.steps=3", "--set", "model.inr.tiles.grad_weight.BN=16", "--resume"]) == 0
    import json

    vae = json.loads((run / "summary.json").read_text())["stages"]["vae"]
    assert vae["steps"] == 3 and vae["resumed_from"] is not None
    assert run_cli([*base, "--set", "train.vae.steps=4", "--set", "model.inr.width=8", "--resume"]) == 2


def test_tile_settings_are_caps_and_encode_for_the_operators():
    t = fused_sine._launch("forward", (4096, 3, 256), "bf16x3", {"BN": 256, "BM": 64, "num_warps": 8})
    assert (t["BN"], t["BM"], t["BK"], t["num_warps"], t["num_stages"]) == (256, 16, 32, 8, 3)  # M = 3 → 16
    assert fused_sine._launch("forward", (4096, 256, 256), "bf16x3", None) == \
        {"BN": 128, "BM": 128, "BK": 32, "num_warps": 8, "num_stages": 3}
    # the gradient kernels' built-in tiles with bf16 operands: the H200 sweep's winners (RESULTS.md)
    assert fused_sine._launch("grad_weight", (256, 256, 4096), "bf16x3", None) == \
        {"BK": 128, "BM": 256, "BN": 32, "num_warps": 8, "num_stages": 4}
    assert fused_sine._launch("grad_input", (4096, 256, 256), "bf16", None) == \
        {"BN": 64, "BK": 128, "BM": 32, "num_warps": 4, "num_stages": 3}
    assert fused_sine._launch("grad_weight", (256, 256, 4096), "tf32x3", None) == \
        {"BK": 128, "BM": 128, "BN": 32, "num_warps": 8, "num_stages": 3}
    tiles = {"grad_weight": {"BN": 32}, "forward": {"num_warps": 4, "BM": 256}}
    text = fused_sine.encode_tiles(tiles)
    assert text == "forward.BM=256,forward.num_warps=4,grad_weight.BN=32"
    assert fused_sine._decode_tiles(text) == {"forward": {"BM": 256, "num_warps": 4}, "grad_input": {},
                                              "grad_weight": {"BN": 32}}
    inr = Siren(SirenConfig(tiles=tiles))
    assert inr._tile_string() == text and fused_sine.encode_tiles(None) == ""
    inr.config = inr.config.model_copy(update={"tiles": {"grad_input": {"BK": 64}}})
    assert inr._tile_string() == "grad_input.BK=64"


def test_tiles_a_gpu_cannot_run_are_a_config_error_naming_them(monkeypatch):
    """Triton's OutOfResources (too much shared memory for the card) from configured tiles becomes
    a one-line ConfigError; the built-in rule's tiles fall back to the conservative ones once, and
    when even those fail the error stays what it is (a bug of ours)."""
    class OutOfResources(Exception):
        pass

    launched = []

    class Kernel:
        def __init__(self, runs_up_to: int = 0):  # the largest output tile (two block sizes' product) it runs
            self.runs_up_to = runs_up_to

        def __getitem__(self, grid):
            def launch(*args, **meta):
                blocks = [v for k, v in meta.items() if k.startswith("B")][:2]
                launched.append(meta)
                if blocks[0] * blocks[1] > self.runs_up_to:
                    raise OutOfResources("out of resource: shared memory, Required: 262144, Hardware limit: 232448")
            return launch

    class FakeTriton:
        cdiv = staticmethod(lambda a, b: -(-a // b))

    monkeypatch.setattr(fused_sine, "_kernels", lambda: (FakeTriton, Kernel(), Kernel(), Kernel()))
    x, w = torch.zeros(2, 8, 16), torch.zeros(2, 17, 16)
    with pytest.raises(ConfigError, match=r"model.inr.tiles.forward \{'BM': 256\}: this GPU cannot run these tiles "
                                          r"\(out of resource: shared memory"):
        fused_sine.linear(x, w, True, 30.0, "bf16x3", {"BM": 256})
    with pytest.raises(ConfigError, match="model.inr.tiles.grad_weight"):
        fused_sine.grad_weight(x, x, True, 30.0, "bf16x3", {"BN": 256})
    with pytest.raises(OutOfResources):
        fused_sine.grad_input(x, w, x, 30.0, "bf16x3", None)
    # a card that runs 128x128 output tiles but not the built-in 128x256 of grad_weight
    monkeypatch.setattr(fused_sine, "_kernels", lambda: (FakeTriton, Kernel(), Kernel(), Kernel(128 * 128)))
    monkeypatch.setattr(fused_sine, "_TOO_BIG", set())
    xs, gs = torch.zeros(2, 64, 256), torch.zeros(2, 64, 256)
    launched.clear()
    fused_sine.grad_weight(xs, gs, True, 30.0, "bf16x3", None)
    assert [(m["BK"], m["BM"], m["num_stages"]) for m in launched] == [(128, 256, 4), (128, 128, 3)]
    launched.clear()
    fused_sine.grad_weight(xs, gs, True, 30.0, "bf16x3", None)   # remembered: straight to the fallback
    assert [(m["BK"], m["BM"]) for m in launched] == [(128, 128)]
    with pytest.raises(ConfigError, match="model.inr.tiles.grad_weight"):
        fused_sine.grad_weight(xs, gs, True, 30.0, "bf16x3", {"BM": 256})


def test_backward_precision_reaches_only_the_backward_kernels(monkeypatch):
    """model.inr.backward_precision is the scheme of the gradient kernels; the forward (and a
    recomputation of it) keeps matmul_precision; "same" is matmul_precision everywhere."""
    launched = []

    class Kernel:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *args, **meta: launched.append((self.name, meta["PREC"]))

    class FakeTriton:
        cdiv = staticmethod(lambda a, b: -(-a // b))

    monkeypatch.setattr(fused_sine, "_kernels", lambda: (FakeTriton, Kernel("forward"), Kernel("grad_input"), Kernel("grad_weight")))
    monkeypatch.setattr(fused_sine, "available", lambda device: True)
    for back, want in (("bf16", "bf16"), ("same", "bf16x3"), ("tf32", "tf32")):
        inr = Siren(SirenConfig(in_dim=2, out_dim=1, width=16, depth=2, kernel="triton", matmul_precision="bf16x3",
                                backward_precision=back))
        params = {k: v[None].requires_grad_() for k, v in inr.init_params().items()}
        launched.clear()
        coords = torch.zeros(8, 2, requires_grad=True)
        torch.autograd.grad(inr(params, coords).sum(), [coords, *params.values()])
        assert {p for k, p in launched if k == "forward"} == {"bf16x3"}
        assert {k for k, _ in launched} == {"forward", "grad_input", "grad_weight"}
        assert {p for k, p in launched if k != "forward"} == {want}, back
    # keep=False (activation checkpointing): the backward recomputes the forward in the forward's scheme
    ws = [torch.zeros(1, 3, 16, requires_grad=True), torch.zeros(1, 17, 16, requires_grad=True), torch.zeros(1, 17, 1, requires_grad=True)]
    launched.clear()
    torch.autograd.grad(fused_sine._stack(torch.zeros(8, 2), ws, 30.0, 30.0, "bf16x3", "tf32", "", False)[-1].sum(), ws)
    assert [k for k, _ in launched].count("forward") == 6                  # three layers, then recomputed
    assert {p for k, p in launched if k == "forward"} == {"bf16x3"}
    assert {p for k, p in launched if k != "forward"} == {"tf32"}
    with pytest.raises(ValueError, match="unknown matmul precision 'fp8'"):
        fused_sine.siren_stack(torch.zeros(4, 2), [torch.zeros(1, 3, 4)], 30.0, 30.0, "bf16x3", "", "fp8")


def test_unknown_matmul_precision_is_refused():
    with pytest.raises(ValueError, match="unknown matmul precision"):
        fused_sine.siren_stack(torch.zeros(4, 2), [torch.zeros(1, 3, 4)], 30.0, 30.0, "fp8")


INTERPRETED_CHECK = r"""
import torch
from inrkit.inrs import fused_sine
from inrkit.inrs.siren import Siren, SirenConfig
assert fused_sine.available("cpu")
torch.manual_seed(0)
worst = 0.0
# bf16 operands are not checked here: Triton's interpreter (3.9 on CPU) returns garbage for bf16 products
# (relative error ~1e11 on 2026-12-04); benchmarks/gpu_bench.py --sections kernel measures them on a GPU
for prec, back in (("fp32", "same"), ("tf32x3", "same"), ("fp32", "tf32x3")):   # backward_precision: its own scheme
    for shared in (True, False):
        cfg = dict(in_dim=3, out_dim=2, width=32, depth=3, final_activation="tanh")
        ref = Siren(SirenConfig(kernel="torch", **cfg))
        fused = Siren(SirenConfig(kernel="triton", matmul_precision=prec, backward_precision=back, **cfg))
        assert fused.uses_fused_kernel(torch.device("cpu"))
        B, N = 3, 40
        params = {k: (v[None].repeat(B, 1, 1) * (1 + 0.1 * torch.randn(B, *v.shape))).requires_grad_()
                  for k, v in ref.init_params().items()}
        coords = ((torch.rand(N, 3) if shared else torch.rand(B, N, 3)) * 2 - 1).requires_grad_()
        y_ref = ref(params, coords)
        g = torch.randn_like(y_ref)
        g_ref = torch.autograd.grad((y_ref * g).sum(), [coords, *params.values()])
        y = fused(params, coords)
        g_got = torch.autograd.grad((y * g).sum(), [coords, *params.values()])
        with torch.no_grad():
            y_nograd = fused(params, coords)
        errs = [float((y - y_ref).norm() / y_ref.norm()), float((y_nograd - y_ref).norm() / y_ref.norm())]
        errs += [float((a - b).norm() / b.norm()) for a, b in zip(g_got, g_ref)]
        worst = max(worst, *errs)
        # torch.compile sees the stack as two opaque operators: one graph, same values
        step = torch.compile(lambda p, c: (fused(p, c) * g).sum(), backend="aot_eager", fullgraph=True)
        g_compiled = torch.autograd.grad(step(params, coords), [coords, *params.values()])
        worst = max(worst, *[float((a - b).norm() / b.norm()) for a, b in zip(g_compiled, g_ref)])
# other tiles (model.inr.tiles, as gpu_bench.py --sections tiles finds them) change the summation order only
tiles = {kind: {names[0]: 16, names[1]: 64, names[2]: 16, "num_warps": 2, "num_stages": 2}
         for kind, names in fused_sine.BLOCKS.items()}
fused = Siren(SirenConfig(kernel="triton", matmul_precision="fp32", tiles=tiles, **cfg))
g_tiled = torch.autograd.grad((fused(params, coords) * g).sum(), [coords, *params.values()])
worst = max(worst, *[float((a - b).norm() / b.norm()) for a, b in zip(g_tiled, g_ref)])
# the custom operators pass torch.library.opcheck (schema, fake tensors, autograd registration,
# AOT dispatch); keep=False under autograd recomputes the pre-activations in backward
ws = [(torch.randn(2, k + 1, m) / k ** 0.5).requires_grad_() for k, m in ((3, 16), (16, 16), (16, 2))]
for c in (torch.rand(8, 3).requires_grad_(), torch.rand(2, 8, 3).requires_grad_()):
    for keep in (True, False):
        torch.library.opcheck(fused_sine._stack, (c, ws, 30.0, 30.0, "fp32", "tf32x3", "forward.BM=32", keep))
    pre = fused_sine._stack(c, ws, 30.0, 30.0, "fp32", "fp32", "", True)
    for coords_grad in (True, False):
        torch.library.opcheck(fused_sine._stack_backward, (torch.randn(2, 8, 2), c.detach(), [w.detach() for w in ws],
                                                           [p.detach() for p in pre[:-1]], 30.0, 30.0, "fp32", "grad_weight.BN=16", coords_grad))
    gk = torch.autograd.grad(fused_sine._stack(c, ws, 30.0, 30.0, "fp32", "fp32", "", True)[-1].sum(), [c, *ws])
    gr = torch.autograd.grad(fused_sine._stack(c, ws, 30.0, 30.0, "fp32", "fp32", "", False)[-1].sum(), [c, *ws])
    worst = max(worst, *[float((a - b).norm() / b.norm()) for a, b in zip(gr, gk)])
assert Siren(SirenConfig(kernel="auto", in_dim=2, out_dim=1, width=16, depth=2)).uses_fused_kernel(torch.device("cpu"))
print("WORST", worst)
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                    reason="needs the triton package (the test extra installs it) for its CPU interpreter")
def test_fused_kernels_match_pytorch_under_the_triton_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", INTERPRETED_CHECK], env=env, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lru_cache" not in proc.stderr  # dynamo traced none of the kernel look-ups
    worst = float(proc.stdout.split("WORST")[-1])
    assert math.isfinite(worst) and worst < 1e-5, worst


def test_gpu_bench_runs_its_smoke_mode_on_cpu(tmp_path):
    """benchmarks/gpu_bench.py --smoke: the script itself works (its numbers on CPU mean nothing)."""
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--smoke", "--out", str(out),
                           "--sections", "ceil,kernel,tiles,large,e2e", "--e2e-modalities", "sphere", "--e2e-batch", "4",
                           "--e2e-steps", "3", "--e2e-set", "train.log_every=1", "--large-variants", "eager", "--large-batch", "2"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    data = json.loads((out / "bench.json").read_text())
    assert data["env"]["card"] == "cpu (smoke)" and "bf16_matmul_tflops" in data["ceil"]
    assert set(data["kernel"]) == {"torch-fp32", *fused_sine.PRECISIONS, "bf16x3/bf16", "bf16x3/tf32"}
    assert data["tiles"] == {"skipped": "the fused kernels do not run on cpu here"}
    e2e = data["e2e"]["sphere"]
    assert e2e["rc"] == 0 and e2e["batch"] == 4 and "train.vae.steps=3" in e2e["command"]
    # a user's defaults for channels-last, and --e2e-set last (so it wins)
    assert "--set train.channels_last=auto" in e2e["command"] and e2e["command"].endswith("--set train.log_every=1")
    assert set(data["large"]["rows"]) == {"eager @ 2", "eager @ 4"}  # the chosen variant, then at twice the batch
    assert all(r["items_per_s"] > 0 and "ms_per_step_by_class" in r["profile"] for r in data["large"]["rows"].values())
    assert "Fused sine layers" in (out / "bench.md").read_text()


def test_gpu_bench_large_section_can_skip_twice_the_batch(tmp_path):
    """--no-large-twice: only the chosen batch (the image step at 2,048 fails inside cuDNN on an H200)."""
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--smoke", "--out", str(out),
                           "--sections", "ceil,large", "--large-variants", "eager", "--large-batch", "2", "--no-large-twice"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    assert set(json.loads((out / "bench.json").read_text())["large"]["rows"]) == {"eager @ 2"}


@pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                    reason="needs the triton package (the test extra installs it) for its CPU interpreter")
def test_gpu_bench_tile_sweep_runs_under_the_triton_interpreter(tmp_path):
    """--sections tiles under Triton's interpreter (tiny shapes, two candidates per kernel) records
    each kernel's candidates and applies a winner only where it is valid."""
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--smoke", "--out", str(out),
                           "--sections", "ceil,tiles", "--tiles-grad-precision", "fp32"], env=env, capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    data = json.loads((out / "bench.json").read_text())
    assert data["tiles"]["grad_precision"] == "fp32" and data["tiles"]["precision"] == "bf16x3"
    kernels = data["tiles"]["kernels"]
    assert set(kernels) == set(fused_sine.BLOCKS) | {"render_forward"}
    for name, v in kernels.items():
        assert v["rows"][0]["tiles"] == "built-in" and len(v["rows"]) == 3
        assert all(r["rel_diff"] < 1e-4 for r in v["rows"][1:])
        assert v["applied"] == (name != "render_forward" and v["best"]["ms"] < 0.97 * v["built_in_ms"])
    for s in data["tiles"]["applied_sets"]:            # model.inr.tiles.<kernel>.<setting>=<value>
        assert kernels[s.split(".")[3]]["applied"]
    assert "Fused sine kernel tiles" in (out / "bench.md").read_text()


def test_ddim_with_a_compiled_denoiser_samples_the_same_latents(monkeypatch, tmp_path):
    """``inrkit sample --compile``: the denoiser goes through torch.compile (recorded here with an
    identity stand-in, since inductor on CPU costs ~20 s), and the samples are unchanged."""
    from conftest import run_cli, toy_run_config
    import yaml

    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_run_config()))
    run = tmp_path / "run"
    assert run_cli(["train", "ldmi", "--config", str(cfg), "--out", str(run)]) == 0
    import inrkit

    model = inrkit.load_run(run)
    plain = model.sample_latents(3, steps=3, seed=5)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or fn)
    again = model.sample_latents(3, steps=3, seed=5, compile=True)
    assert len(compiled) == 1
    torch.testing.assert_close(again, plain, rtol=0, atol=0)
    assert run_cli(["sample", str(run), "--n", "2", "--seed", "1", "--compile", "--ddim-steps", "2"]) == 0
    assert len(compiled) == 2


def _load_gpu_bench():
    """benchmarks/gpu_bench.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("gpu_bench_under_test", ROOT / "benchmarks" / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_gpu_bench_e2e_trains_each_modality_once_more_per_compile_mode(tmp_path, monkeypatch):
    """--e2e-compile: every modality trains eager, then once per mode with train.compile set last (so it
    wins over the eager settings); each run keyed by modality and mode, its failure recorded, not raised."""
    import json
    import types

    bench = _load_gpu_bench()
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return types.SimpleNamespace(returncode=2, stderr="no data here", stdout="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    res = bench.e2e_section(tmp_path, ["train.compile=false"], compile_modes=("reduce-overhead",),
                            modalities=("sphere", "occupancy"))
    assert list(res) == ["sphere", "occupancy", "sphere compile=reduce-overhead", "occupancy compile=reduce-overhead"]
    assert [r["compile"] for r in res.values()] == [False, False, "reduce-overhead", "reduce-overhead"]
    assert all(r["rc"] == 2 and "no data here" in r["stderr_tail"] for r in res.values())
    compiled = calls[2]
    assert compiled[-2:] == ["--set", "train.compile=reduce-overhead"]
    assert compiled.index("train.compile=false") < compiled.index("train.compile=reduce-overhead")
    assert "train.compile=reduce-overhead" not in calls[0] and json.loads((tmp_path / "bench.json").read_text())["e2e"]


def test_gpu_bench_large_variants_and_their_inductor_options():
    """Each --large-variants entry names trainer settings (and optionally inductor options, patched
    only while that variant runs)."""
    import torch._inductor.config as inductor_config

    bench = _load_gpu_bench()
    from inrkit.train.config import TrainConfig

    for key, (name, sets, train, ind) in bench.LARGE_VARIANTS.items():
        assert isinstance(name, str) and isinstance(sets, list), key
        TrainConfig.model_validate(train)  # settings the trainer accepts
        assert all(hasattr(inductor_config, k) for k in ind), key  # options inductor has
    assert bench.LARGE_VARIANTS["compile-lo"][3] == {"force_layout_optimization": True}
    before = inductor_config.force_layout_optimization
    with bench._inductor_options({"force_layout_optimization": not before}):
        assert inductor_config.force_layout_optimization == (not before)
    assert inductor_config.force_layout_optimization == before
    with bench._inductor_options({}):
        assert inductor_config.force_layout_optimization == before


def test_gpu_bench_large_compiles_each_compiled_variant_afresh(monkeypatch, tmp_path):
    """--sections large: dynamo's cache is reset before every compiled variant (without it a later
    variant reuses the earlier graph, and its inductor options never apply), each variant runs under
    its own inductor options, and the fastest runs again at twice the batch."""
    import torch._inductor.config as inductor_config

    bench = _load_gpu_bench()
    events = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: events.append("reset"))
    monkeypatch.setattr(bench, "count_step_flops", lambda *a, **k: 32.0)
    monkeypatch.setattr(bench, "left", lambda: 1e9)
    monkeypatch.setattr(bench, "summarize_profile", lambda *a: {})
    monkeypatch.setattr(bench, "DEV", torch.device("cpu"))

    def steps(modality, sets, train, **kw):
        lo = inductor_config.force_layout_optimization
        events.append(("run", bool(train.get("compile")), lo, train["vae"]["batch_size"]))
        return {"step_ms": 10.0 if lo else 20.0, "profiled_wall_s": 0.0}

    monkeypatch.setattr(bench, "trainer_steps", steps)
    res = bench.large_section(tmp_path, 1.0, 8, ["eager", "compile", "compile-lo"])
    assert events == [("run", False, False, 8), "reset", ("run", True, False, 8), "reset", ("run", True, True, 8),
                      "reset", ("run", True, True, 16)]
    assert set(res["rows"]) == {"eager @ 8", "compile (default mode) @ 8",
                                "compile (default mode) + inductor layout optimisation forced @ 8",
                                "compile (default mode) + inductor layout optimisation forced @ 16"}


def test_sample_and_evaluate_take_speed_settings_of_a_trained_run(tmp_path, capsys):
    """``inrkit sample/evaluate --set model.inr.kernel=...``: runtime fields of the saved model may
    change for this use (same samples on CPU, where both kernels are PyTorch's); any other model
    field, a bad value or a non-model path is a one-line error with exit code 2, and nothing is written."""
    from conftest import run_cli, toy_run_config
    import yaml

    from inrkit.runs import Run

    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_run_config()))
    run = tmp_path / "run"
    assert run_cli(["train", "ldmi", "--config", str(cfg), "--out", str(run)]) == 0
    base = ["sample", str(run), "--n", "2", "--seed", "1", "--ddim-steps", "2"]
    assert run_cli([*base, "--out", str(tmp_path / "a")]) == 0
    assert run_cli([*base, "--out", str(tmp_path / "b"), "--set", "model.inr.kernel=torch",
                    "--set", "model.inr.tiles.forward.BM=64"]) == 0
    a, b = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert [p.name for p in a] == [p.name for p in b] and a
    arrays = [p for p in a if p.suffix == ".npy"]
    assert arrays, [p.name for p in a]
    import numpy as np

    for pa in arrays:
        np.testing.assert_array_equal(np.load(pa), np.load(tmp_path / "b" / pa.name))
    capsys.readouterr()
    for bad, words in ((["--set", "model.inr.width=8"], "model.inr.width=8: a trained run's model can change only"),
                       (["--set", "train.seed=3"], "train.seed=3"),
                       (["--set", "model.inr.kernel=cuda"], "kernel"),
                       (["--set", "model.inr.tiles.forward.BM=48"], "power of two")):
        assert run_cli([*base, "--out", str(tmp_path / "c"), *bad]) == 2, bad
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
        assert not (tmp_path / "c").exists()
    assert run_cli(["evaluate", str(run), "--set", "model.inr.kernel=torch"]) == 0
    assert (run / "eval.json").exists()
    assert run_cli(["evaluate", str(run), "--set", "model.hypernet.dim=8"]) == 2
    model = Run.open(run).load_model(runtime=["model.inr.tiles.grad_weight.BN=32"])
    assert model.recipe.config["model"]["inr"]["tiles"] == {"grad_weight": {"BN": 32}}
    assert Run.open(run).recipe.config["model"]["inr"]["tiles"] == {}       # the run itself is unchanged


def test_gpu_bench_kernel_classes():
    bench = _load_gpu_bench()
    cat = bench.kernel_category
    assert cat("void cudnn::engines_precompiled::nchwToNhwcKernel<__nv_bfloat16>") == "layout"
    assert cat("triton_red_fused__to_copy_add_div_expand_mul_neg_permute_pow_silu_silu_backward_sub_sum_view_0") \
        == "inductor fused"
    assert cat("triton_poi_fused__to_copy_native_group_norm_native_group_norm_backward_silu_3") == "norm"
    assert cat("grad_weight_kernel") == "sine (fused)"
    assert cat("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc") == "conv"
    assert cat("void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda>") == "copy / cast"
    assert cat("something else") == "other"


_CL_PARTS = {  # model parts with 2D convolutions, each put channels-last by train.channels_last
    "conv2d + hd + diffusion": {},
    "conv2d_sphere with attention": {"encoder": {"name": "conv2d_sphere", "base_channels": 8, "channel_mult": [1, 2],
                                                 "num_res_blocks": 1, "latent_channels": 2, "mid_attention": True}},
    "autoencoder_kl": {"encoder": {"name": "autoencoder_kl", "block_out_channels": [8, 16], "layers_per_block": 1,
                                   "latent_channels": 2, "norm_num_groups": 4}},
    "modulation hypernet": {"hypernet": {"name": "modulation", "conv_channels": 8}},
    "diffusion prior with attention": {"prior": {"name": "diffusion", "model_channels": 8, "channel_mult": [1, 2],
                                                 "num_res_blocks": 1, "attention": True, "ema_decay": 0.9}},
}


@pytest.mark.parametrize("parts", list(_CL_PARTS))
def test_every_built_in_2d_conv_part_trains_the_same_channels_last(parts, tmp_path):
    """Each built-in part with 2D convolutions, put channels-last as train.channels_last does (auto's
    choice for a compiled CUDA step), gives the NCHW model's loss and *every parameter's gradient*
    within 1e-4 in both LDMI stages (no part assumes an NCHW memory layout: a .view of a
    channels-last tensor would raise, a layout-blind reshape would permute values), and a short
    training run through the trainer with fused AdamW gives the NCHW run's first loss and finite,
    channels-last weights."""
    import copy

    from conftest import toy_run_config
    from inrkit.train.fast import to_channels_last
    from inrkit_ldmi.model import LDMI

    def config(**train):
        cfg = toy_run_config(log_every=1, checkpoint_every=0, **train)
        for key, spec in _CL_PARTS[parts].items():
            cfg["model"][key] = spec
        return cfg

    ref = LDMI.from_config(config())
    ours = copy.deepcopy(ref)
    to_channels_last(ours, (2,))
    assert any(p.dim() == 4 and not p.is_contiguous() for p in ours.parameters())  # something is channels-last
    x = torch.rand(4, ref.domain.channels, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        latents = ref.encoder(x)
    for stage, batch in (("vae", x), ("prior", latents)):
        results = []
        for model in (ref, ours):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(11)
            loss, _ = model.stage_loss(stage, batch, generator=torch.Generator().manual_seed(5))
            loss.backward()
            results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
        (loss_a, grads_a), (loss_b, grads_b) = results
        torch.testing.assert_close(loss_b, loss_a, rtol=1e-4, atol=1e-5)
        assert grads_a.keys() == grads_b.keys() and grads_a, stage
        for name in grads_a:
            torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-5, msg=f"{stage}: {name}")

    def run(channels_last):
        out = tmp_path / f"cl-{channels_last}"
        model = LDMI.from_config(config(channels_last=channels_last, optimizer="fused"))
        model.fit(out=out)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return model, [r["loss"] for r in rows if "loss" in r]

    (_, nchw), (trained, cl) = run(False), run(True)
    assert len(cl) == len(nchw) and all(math.isfinite(v) for v in cl)
    weights = [p for p in trained.parameters() if p.dim() == 4]
    assert all(torch.isfinite(p).all() for p in weights) and any(not p.is_contiguous() for p in weights)
    assert cl[0] == pytest.approx(nchw[0], rel=1e-4)  # later steps: Adam's sign-like first updates amplify rounding
