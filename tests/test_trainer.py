"""The generic trainer: bit-exact resume, atomic and pruned checkpoints, clean errors on corruption."""
from __future__ import annotations

import json

import pytest
from pydantic import Field
import torch
from torch import nn
from torch.utils.data import Dataset

from inrkit.errors import CheckpointError, ConfigError
from inrkit.train import Engine, StageConfig, TrainConfig, Trainer
from inrkit.train import checkpoint as ckpt
from inrkit.train.logging import read_metrics
from inrkit.train.sampler import StepBatchSampler


class ToyTrain(TrainConfig):
    a: StageConfig = Field(default_factory=lambda: StageConfig(steps=7, batch_size=3, lr=1e-2, warmup=2, points=3))
    b: StageConfig = Field(default_factory=lambda: StageConfig(steps=5, batch_size=4, lr=5e-3, grad_clip=0.5))


class Items(Dataset):
    def __init__(self, n=10):
        self.x = torch.randn(n, 5, generator=torch.Generator().manual_seed(3))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


class Toy(nn.Module):
    """Two stages; its losses draw from the global RNG and from the trainer's generator, as LDMI's do."""

    stages = ("a", "b")

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.enc = nn.Linear(5, 8)
        self.dec = nn.Linear(8, 5)
        self.head = nn.Linear(8, 1)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.register_buffer("ema", torch.zeros(1))
        self.prepared = []

    def stage_parameters(self, stage):
        return [*self.enc.parameters(), *self.dec.parameters()] if stage == "a" else list(self.head.parameters())

    def prepare_stage(self, stage, dataset):
        self.prepared.append(stage)
        return None

    def stage_loss(self, stage, batch, points=None, generator=None):
        x = batch + 0.05 * torch.randn_like(batch)
        h = torch.tanh(self.enc(x))
        if stage == "a":
            idx = torch.randperm(x.shape[1], generator=generator)[:points]
            err = (self.dec(h) - batch)[:, idx]
            return err.pow(2).mean(), {"mse": err.pow(2).mean()}
        pred = self.head(h).squeeze(-1)
        return (pred - batch.sum(-1)).pow(2).mean(), {}

    def after_step(self, stage):
        with torch.no_grad():
            self.ema.mul_(0.9).add_(0.1 * self.head.weight.sum())


class Killed(Exception):
    pass


def _config(**kw):
    return ToyTrain(checkpoint_every=2, keep_checkpoints=2, log_every=2, progress=False, tensorboard=False, **kw)


def _train(run_dir, resume=False, kill_at=None, stages=None, config=None):
    torch.manual_seed(1234)  # whatever the caller's state, the run must not depend on it
    model = Toy()

    def on_step(stage, step, logs):
        if (stage, step) == kill_at:
            raise Killed

    trainer = Trainer(model, config or _config(), run_dir, engine=Engine("cpu"), on_step=on_step)
    try:
        summary = trainer.fit(Items(), stages=stages, resume=resume)
    except Killed:
        return model, None
    return model, summary


@pytest.mark.parametrize("kill_at", [("a", 5), ("b", 3)])
def test_resume_is_bit_exact(tmp_path, kill_at):
    straight, _ = _train(tmp_path / "straight")
    _, none = _train(tmp_path / "killed", kill_at=kill_at)
    assert none is None
    # The kill came after the step-4 (resp. step-2) checkpoint: the resumed run repeats later steps.
    resumed, summary = _train(tmp_path / "killed", resume=True)
    stage = kill_at[0]
    assert summary[stage]["resumed_from"] == (4 if stage == "a" else 2)
    if stage == "b":
        assert summary["a"]["trained_steps"] == 0  # finished stage skipped, its weights loaded
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{name} differs after resume")
    assert not torch.equal(straight.head.weight, Toy().head.weight)  # training did change the model


def test_checkpoints_are_pruned_per_stage_and_logged(tmp_path):
    _train(tmp_path)
    refs = [(r.stage, r.step) for r in ckpt.list_checkpoints(tmp_path)]
    assert refs == [("a", 6), ("a", 7), ("b", 4), ("b", 5)]
    state = json.loads((tmp_path / "checkpoints" / "checkpoint-b-5" / "state.json").read_text())
    assert state["stage"] == "b" and state["step"] == 5
    records = read_metrics(tmp_path)
    assert [(r["stage"], r["step"]) for r in records] == [("a", 2), ("a", 4), ("a", 6), ("a", 7), ("b", 2), ("b", 4), ("b", 5)]
    assert all(r["items_per_s"] > 0 and "loss" in r for r in records)
    assert "mse" in records[0] and "grad_norm" in records[0]
    # Warm-up: lr ramps over two steps in stage a, constant in b.
    assert records[0]["lr"] == pytest.approx(1e-2) and records[-1]["lr"] == pytest.approx(5e-3)


def test_final_checkpoint_false_keeps_only_periodic_checkpoints_and_the_same_weights(tmp_path):
    with_final, _ = _train(tmp_path / "with")
    without, summary = _train(tmp_path / "without", config=_config(final_checkpoint=False))
    refs = [(r.stage, r.step) for r in ckpt.list_checkpoints(tmp_path / "without")]
    assert refs == [("a", 4), ("a", 6), ("b", 2), ("b", 4)]  # steps 7 and 5 end the stages: not written
    assert summary["b"]["steps"] == 5
    for p, q in zip(with_final.parameters(), without.parameters()):
        assert torch.equal(p, q)


def test_unfinished_temp_checkpoint_is_ignored(tmp_path):
    _train(tmp_path, kill_at=("a", 5))
    (tmp_path / "checkpoints" / ".tmp-checkpoint-a-6").mkdir()
    assert ckpt.latest_checkpoint(tmp_path, "a").step == 4
    _, summary = _train(tmp_path, resume=True)
    assert summary["a"]["resumed_from"] == 4


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.json", "state.json", "rng-0.safetensors"])
def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, victim):
    _train(tmp_path, kill_at=("a", 5))
    path = tmp_path / "checkpoints" / "checkpoint-a-4" / victim
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError) as err:
        _train(tmp_path, resume=True)
    msg = str(err.value)
    assert "\n" not in msg and "checkpoint-a-4" in msg


def test_weights_of_another_model_are_refused(tmp_path):
    _train(tmp_path, kill_at=("a", 3))
    other = nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="do not match"):
        ckpt.load_model_weights(other, tmp_path / "checkpoints" / "checkpoint-a-2" / "model.safetensors")


def test_later_stage_only_uses_earlier_checkpoint_and_retraining_drops_stale(tmp_path):
    first, _ = _train(tmp_path, stages=("a",))
    assert [r.stage for r in ckpt.list_checkpoints(tmp_path)] == ["a", "a"]
    second, summary = _train(tmp_path, stages=("b",))
    assert list(summary) == ["b"]
    torch.testing.assert_close(second.enc.weight, first.enc.weight, rtol=0, atol=0)
    # More steps for stage a: it continues, and stage b's checkpoints (made from the old a) go.
    cfg = _config()
    cfg.a.steps = 9
    _, summary = _train(tmp_path, resume=True, config=cfg)
    assert summary["a"]["resumed_from"] == 7 and summary["a"]["steps"] == 9
    assert summary["b"]["resumed_from"] is None and summary["b"]["trained_steps"] == 5


def test_frozen_parameters_stay_put_and_flags_are_restored(tmp_path):
    model = Toy()
    before = model.enc.weight.detach().clone()
    Trainer(model, _config(), None, engine=Engine("cpu")).fit(Items(), stages=("b",))
    assert torch.equal(model.enc.weight, before)
    assert all(p.requires_grad for p in model.parameters())
    assert model.prepared == ["b"]


def test_unknown_stage_and_missing_stage_config(tmp_path):
    with pytest.raises(ConfigError, match="unknown stage 'c'"):
        Trainer(Toy(), _config(), None, engine=Engine("cpu")).fit(Items(), stages=("c",))
    with pytest.raises(ConfigError, match="train.b"):
        Trainer(Toy(), TrainConfig(progress=False), None, engine=Engine("cpu")).fit(Items(), stages=("b",))


def test_step_batches_cover_epochs_and_shard_across_processes():
    s = StepBatchSampler(5, 3, steps=4, seed=1)
    flat = [i for b in s for i in b]
    assert sorted(flat[:5]) == list(range(5)) and sorted(flat[5:10]) == list(range(5))
    assert list(StepBatchSampler(5, 3, steps=4, start=2, seed=1)) == list(s)[2:]
    r0 = StepBatchSampler(8, 2, steps=2, rank=0, world_size=2)
    r1 = StepBatchSampler(8, 2, steps=2, rank=1, world_size=2)
    seen = [i for b in list(r0) + list(r1) for i in b]
    assert sorted(seen) == list(range(8))


def test_optimizer_state_round_trips_without_pickle():
    p = nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.8, 0.95))
    p.grad = torch.ones(3)
    opt.step()
    tensors, meta = ckpt.flatten_optimizer_state(opt.state_dict())
    json.dumps(meta)
    restored = ckpt.unflatten_optimizer_state(tensors, json.loads(json.dumps(meta)))
    opt2 = torch.optim.AdamW([nn.Parameter(p.detach().clone())], lr=1.0)
    opt2.load_state_dict(restored)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_stage_lr_warmup_then_cosine_to_lr_min():
    from inrkit.train.config import StageConfig
    from inrkit.train.schedule import stage_lr

    cfg = StageConfig(steps=110, lr=1.0, warmup=10, lr_schedule="cosine", lr_min=0.1)
    assert stage_lr(cfg, 5) == pytest.approx(0.5)
    assert stage_lr(cfg, 10) == pytest.approx(1.0)
    assert stage_lr(cfg, 60) == pytest.approx(0.55)
    assert stage_lr(cfg, 110) == pytest.approx(0.1)
    assert stage_lr(StageConfig(steps=110, lr=1.0, warmup=10), 100) == 1.0


def test_max_minutes_ends_a_stage_with_a_checkpoint(tmp_path, monkeypatch):
    import inrkit.train.trainer as trainer_mod

    clock = {"t": 0.0}

    def fake_clock():  # every call advances 1 s: a stage of 0.05 min stops after a few steps
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(trainer_mod.time, "perf_counter", fake_clock)
    cfg = _config()
    cfg.a = StageConfig(steps=1000, batch_size=3, lr=1e-2, max_minutes=0.05)
    model, summary = _train(tmp_path / "run", config=cfg, stages=("a",))
    a = summary["a"]
    assert a["stopped_early"] == "max_minutes=0.05"
    assert 0 < a["steps"] < 1000
    ref = ckpt.latest_checkpoint(tmp_path / "run", "a")
    assert ref is not None and ref.step == a["steps"]


def test_a_budget_spent_on_the_first_step_is_reported(tmp_path, monkeypatch, capsys):
    """A stage whose first step (e.g. compilation) eats most of its max_minutes says so."""
    import inrkit.train.trainer as trainer_mod

    clock = {"t": 0.0}
    seen = []
    forward = trainer_mod._StageStep.forward

    def slow_first_step(self, *args, **kw):  # the first step's forward takes 100 s of the fake clock
        if not seen:
            seen.append(1)
            clock["t"] += 100.0
        return forward(self, *args, **kw)

    def fake_clock():  # every clock read advances 1 s
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(trainer_mod.time, "perf_counter", fake_clock)
    monkeypatch.setattr(trainer_mod._StageStep, "forward", slow_first_step)
    cfg = _config()
    cfg.a = StageConfig(steps=1000, batch_size=3, lr=1e-2, max_minutes=2.0)
    _, summary = _train(tmp_path / "run", config=cfg, stages=("a",))
    a = summary["a"]
    assert a["stopped_early"] == "max_minutes=2.0" and a["first_step_s"] >= 100
    assert "first step" in a["note"] and "train.a.max_minutes" in a["note"]
    assert "warning: stage 'a' spent" in capsys.readouterr().err
    # a stage whose first step was cheap has no such note
    monkeypatch.setattr(trainer_mod._StageStep, "forward", forward)
    _, summary = _train(tmp_path / "run2", config=cfg, stages=("a",))
    assert summary["a"]["stopped_early"] and "note" not in summary["a"]


def test_loader_workers_do_not_change_the_result(tmp_path):
    """Batches come from the step sampler, not from worker RNGs: 2 workers train the same weights."""
    a, _ = _train(tmp_path / "w0", config=_config(num_workers=0))
    b, _ = _train(tmp_path / "w2", config=_config(num_workers=2))
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_compiled_training_step_runs_and_checkpoints(tmp_path):
    """train.compile=true goes through torch.compile (inductor on CPU: ~20 s, the slowest test here).
    Its random draws inside the loss differ from eager mode, so weights are compared loosely."""
    eager, _ = _train(tmp_path / "eager")
    compiled, summary = _train(tmp_path / "compiled", config=_config(compile=True))
    assert summary["a"]["steps"] == 7 and summary["b"]["steps"] == 5
    se, sc = eager.state_dict(), compiled.state_dict()
    assert all(torch.isfinite(sc[k]).all() for k in sc)
    assert max((se[k] - sc[k]).abs().max().item() for k in se) < 0.2
    assert ckpt.latest_checkpoint(tmp_path / "compiled", "b").step == 5
