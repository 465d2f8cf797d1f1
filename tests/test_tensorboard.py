"""TensorBoard event files, read back with tensorboard's own event reader: training scalars
(no wall-clock ``time``), held-out metrics, preview and stage-end images, hyperparameters."""
from __future__ import annotations

import importlib.util

import pytest

from inrkit_ldmi.model import LDMI

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                reason="the 'tensorboard' extra is not installed; `make test` installs it through the test extra")


def test_events_hold_metrics_images_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = LDMI.from_preset("image", "tiny", overrides=["data.n_items=8"])
    summary = model.fit(out=tmp_path / "run", vae={"steps": 4, "batch_size": 4}, prior={"steps": 2, "batch_size": 4},
              sample_every=2, sample_steps=1, n_renders=2, log_every=1, progress=False, tensorboard=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    scalars = set(tags["scalars"])
    assert {"vae/loss", "vae/nll", "vae/kl", "prior/loss", "vae/lr"} <= scalars
    assert [e.step for e in events.Scalars("vae/loss")] == [1, 2, 3, 4]
    assert not [t for t in scalars if t.endswith("/time")]  # wall-clock stays in metrics.jsonl only
    heldout = {t for t in scalars if t.startswith("heldout/")}
    assert {"heldout/psnr", "heldout/ssim"} <= heldout
    assert [e.step for e in events.Scalars("heldout/psnr")] == [4]  # the end of stage vae
    assert events.Scalars("heldout/psnr")[0].value == pytest.approx(summary["stages"]["vae"]["heldout"]["psnr"]["mean"], rel=1e-5)
    images = set(tags["images"])
    assert {"vae/reconstructions", "vae/targets", "vae/samples", "prior/samples"} <= images
    assert [e.step for e in events.Images("vae/reconstructions")] == [2, 4]  # a preview, then the stage end
    first = events.Images("vae/reconstructions")[0]
    assert first.width > 0 and first.height > 0 and first.encoded_image_string.startswith(b"\x89PNG")
    # hyperparameters: the hparams plugin's session record names the run's config fields
    plugins = events.PluginTagToContent("hparams")
    assert plugins, "no add_hparams record"
    blob = b"".join(plugins.values())
    assert b"model.hypernet.name" in blob and b"train.vae.steps" in blob and b"hparam/psnr" in blob
