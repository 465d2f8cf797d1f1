"""The stage-1 loss of the paper's CelebA-HQ runs: L1 + LPIPS + a patch discriminator, learned log-variance.

LDM's ``LPIPSWithDiscriminator``, as LDMI's ``configs/ivae/celebahq_ivae.yaml`` sets it up:

    rec  = |x − x̂| + w_p · LPIPS(x, x̂)          (LPIPS per item, added to every pixel)
    nll  = rec / exp(s) + s                       (s: one learned log-variance)
    loss = nll + β·KL + λ · f(step) · (−mean D(x̂))
    λ    = w_d · ‖∇_last nll‖ / (‖∇_last g‖ + 1e-4)   (the decoder's last layer; clamped to [0, 1e4])

f(step) is 0 before ``disc_start`` and 1 after; from then on the PatchGAN discriminator D is
trained at every step on the hinge loss of real against (detached) reconstructed images, with its
own Adam (betas 0.5, 0.9), inside stage ``vae``. Differences from the reference: D is updated
just before the generator's loss of the same step (the reference updates it just after, with a
second optimiser); D's optimiser state is not in checkpoints (a resumed run restarts it); under
DDP each process trains its own D. The perceptual term needs a local VGG file (see
``perceptual.py``; with LPIPS' ``lin*`` heads in it, it is LPIPS): without one it is inactive and
the likelihood says so in its logs (``perceptual_active`` 0).
"""
from __future__ import annotations

from pathlib import Path

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from inrkit.errors import ConfigError
from inrkit.likelihoods import L1LogvarLikelihood
from inrkit.registry import PartConfig, likelihoods


class PatchDiscriminator(nn.Module):
    """pix2pix's N-layer PatchGAN (as taming/LDM build it): 4×4 convs, BatchNorm, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int = 3, channels: int = 64, n_layers: int = 3, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(channels * prev, channels * mult, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(channels * prev, channels * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(channels * mult),
                   nn.LeakyReLU(0.2), nn.Conv2d(channels * mult, 1, 4, 1, 1)]
        self.main = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


class LPIPSPatchGANConfig(PartConfig):
    logvar_init: float = pydantic.Field(0.0, description="initial learned log-variance s")
    perceptual: str | None = pydantic.Field(
        None, description="a local VGG (or LPIPS) safetensors file; null = the perceptual term is inactive")
    perceptual_weight: float = pydantic.Field(1.0, ge=0.0)
    disc_start: int | None = pydantic.Field(10000, ge=0, description="stage-1 step the discriminator starts at; null = never")
    disc_weight: float = pydantic.Field(0.75, ge=0.0)
    disc_layers: int = pydantic.Field(2, ge=1)
    disc_channels: int = pydantic.Field(64, ge=1)
    disc_dropout: float = pydantic.Field(0.2, ge=0.0, lt=1.0)
    disc_lr: float = pydantic.Field(1.28e-4, gt=0.0, description="the discriminator's Adam learning rate")


@likelihoods.register("l1_lpips_patchgan", config=LPIPSPatchGANConfig,
                      description="L1 + LPIPS + PatchGAN, learned log-variance (LDM/LDMI CelebA-HQ stage 1; images)")
class LPIPSPatchGANLikelihood(L1LogvarLikelihood):
    needs_grid = True  # LPIPS and the discriminator read whole images: the model decodes every pixel

    def __init__(self, config: LPIPSPatchGANConfig):
        super().__init__(config)
        self.discriminator = PatchDiscriminator(3, config.disc_channels, config.disc_layers, config.disc_dropout)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # kept out of the state dict: the VGG weights are the user's file, not part of the run
        self.__dict__["_perceptual"] = None
        self.__dict__["_disc_opt"] = None

    def model_parameters(self):
        """What the stage's main optimiser trains: the log-variance (D has its own optimiser)."""
        return [self.logvar]

    @property
    def perceptual_active(self) -> bool:
        return self.config.perceptual is not None and self.config.perceptual_weight > 0

    def _perceptual_net(self, device):
        if self.__dict__["_perceptual"] is None:
            from .perceptual import PerceptualLoss

            if not Path(self.config.perceptual).expanduser().is_file():
                raise ConfigError(f"model.likelihood.perceptual: feature network file not found: {self.config.perceptual}")
            self.__dict__["_perceptual"] = PerceptualLoss(self.config.perceptual, where="model.likelihood.perceptual")
        return self.__dict__["_perceptual"].to(device)

    def _rgb(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(f"likelihoods/l1_lpips_patchgan: needs image grids (B, 1|3, H, W), got {tuple(x.shape)}")
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def grid_nll(self, pred: torch.Tensor, target: torch.Tensor, last_layer: torch.Tensor | None = None):
        """Image grids → (per-item NLL averaged over values (B,), the adversarial scalar, logs)."""
        pred, target = self._rgb(pred.float()), self._rgb(target.float())
        rec = (pred - target).abs().flatten(1).mean(1)
        logs: dict[str, torch.Tensor] = {"perceptual_active": torch.tensor(float(self.perceptual_active), device=pred.device)}
        if self.perceptual_active:
            p = self._perceptual_net(pred.device)(pred, target)
            rec = rec + self.config.perceptual_weight * p
            logs["lpips"] = p.mean().detach()
        s = self.logvar.float()
        nll = rec / s.exp() + s
        adv = pred.new_zeros(())
        start = self.config.disc_start
        training = self.training and torch.is_grad_enabled()
        if training:
            self.step += 1
        if start is None or not training or self._host_step(training) < start:
            return nll, adv, logs
        logs["d_loss"] = self._train_discriminator(target, pred.detach())
        g_loss = -self.discriminator(pred).mean()
        weight = torch.tensor(self.config.disc_weight, device=pred.device)
        if last_layer is not None and last_layer.requires_grad:
            g_nll = torch.autograd.grad(nll.sum(), last_layer, retain_graph=True)[0]
            g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
            weight = (g_nll.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, 1e4).detach() * self.config.disc_weight
        logs["g_loss"], logs["d_weight"] = g_loss.detach(), weight
        return nll, weight * g_loss, logs

    def _host_step(self, advance: bool) -> int:
        """``step`` as a Python int: read from the buffer once (after loading), then counted on the
        host, so that the training step needs no device→host sync."""
        if self.__dict__.get("_step") is None:
            self.__dict__["_step"] = int(self.step)
        elif advance:
            self.__dict__["_step"] += 1
        return self.__dict__["_step"]

    def _load_from_state_dict(self, *args, **kwargs):
        self.__dict__["_step"] = None  # re-read from the loaded buffer
        return super()._load_from_state_dict(*args, **kwargs)

    def _train_discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in params]
        if self.__dict__["_disc_opt"] is None:
            self.__dict__["_disc_opt"] = torch.optim.Adam(params, lr=self.config.disc_lr, betas=(0.5, 0.9))
        opt = self.__dict__["_disc_opt"]
        try:
            for p in params:
                p.requires_grad_(True)
            with torch.autocast(device_type=real.device.type, enabled=False):
                d_loss = hinge_d_loss(self.discriminator(real), self.discriminator(fake))
            grads = torch.autograd.grad(d_loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
            opt.zero_grad(set_to_none=True)
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
        return d_loss.detach()
