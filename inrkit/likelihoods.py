"""Likelihoods p(y | f_Φ(x)): per-item negative log-likelihoods, averaged over points.

``nll(pred, target)`` → (B,): the mean over every point and channel of −log p(target | pred),
constants included (so a Gaussian NLL can be negative when σ is small). The VAE loss is eq. 6,
``nll + beta * gaussian_kl(mean, logvar)``; hyper-transforming optimises the NLL alone (eq. 8).
"""
from __future__ import annotations

import abc
import math

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from .registry import PartConfig, likelihoods
from .errors import DataError


def _per_item_mean(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)


class Likelihood(nn.Module, abc.ABC):
    """Built as ``cls(config)``; ``nll(pred, target)`` → per-item (B,)."""

    def nll(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise DataError(f"likelihoods/{self.registry_name}: prediction {tuple(pred.shape)}"
                            f" and target {tuple(target.shape)} differ in shape")
        return _per_item_mean(self.pointwise(pred.float(), target.float()))

    @abc.abstractmethod
    def pointwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """−log p of each value, same shape as the inputs."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.nll(pred, target)


class GaussianConfig(PartConfig):
    sigma: float = pydantic.Field(0.1, gt=0.0, description="fixed observation standard deviation")


@likelihoods.register("gaussian", config=GaussianConfig, description="Gaussian with fixed sigma (MSE)")
class GaussianLikelihood(Likelihood):
    def __init__(self, config: GaussianConfig):
        super().__init__()
        self.config = config

    def pointwise(self, pred, target):
        sigma = self.config.sigma
        return 0.5 * ((pred - target) / sigma) ** 2 + (math.log(sigma) + 0.5 * math.log(2 * math.pi))


class LaplaceConfig(PartConfig):
    scale: float = pydantic.Field(0.1, gt=0.0, description="fixed Laplace scale b")


@likelihoods.register("laplace", config=LaplaceConfig, description="Laplace with fixed scale (L1)")
class LaplaceLikelihood(Likelihood):
    def __init__(self, config: LaplaceConfig):
        super().__init__()
        self.config = config

    def pointwise(self, pred, target):
        b = self.config.scale
        return (pred - target).abs() / b + math.log(2 * b)


class L1LogvarConfig(PartConfig):
    logvar_init: float = pydantic.Field(0.0, description="initial log-scale s of the learned L1 likelihood")


@likelihoods.register("l1_logvar", config=L1LogvarConfig,
                      description="L1 with a learned log-variance: |y - f|/exp(s) + s (LDM/LDMI stage-1 loss)")
class L1LogvarLikelihood(Likelihood):
    """−log p up to log 2 of a Laplace with scale exp(s), s one learned scalar for all points.

    The paper's code (LDM's ``LPIPSWithDiscriminator`` / LDMI's ERA5 ``GaussianLoss``) writes its
    stage-1 loss as ``|x − x̂| / exp(logvar) + logvar`` with a scalar ``logvar`` trained with the
    autoencoder; stage ``vae`` trains ``s`` beside the encoder and decoder.
    """

    def __init__(self, config: L1LogvarConfig):
        super().__init__()
        self.config = config
        self.logvar = nn.Parameter(torch.tensor(float(config.logvar_init)))

    def pointwise(self, pred, target):
        s = self.logvar.float()
        return (pred - target).abs() / s.exp() + s


class BernoulliConfig(PartConfig):
    pos_weight: float | None = pydantic.Field(None, gt=0.0, description="weight of the positive class (sparse occupancy)")


@likelihoods.register("bernoulli", config=BernoulliConfig, description="Bernoulli over logits (occupancy)")
class BernoulliLikelihood(Likelihood):
    """``pred`` are logits; targets in {0, 1} (or soft labels in [0, 1])."""

    def __init__(self, config: BernoulliConfig):
        super().__init__()
        self.config = config

    def pointwise(self, pred, target):
        pw = self.config.pos_weight
        weight = None if pw is None else torch.tensor(pw, device=pred.device, dtype=pred.dtype)
        return F.binary_cross_entropy_with_logits(pred, target, pos_weight=weight, reduction="none")


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, I)) per item, (B,).

    ``reduction="mean"`` (default) averages over the latent elements, like ``nll`` averages over
    points, so ``beta`` weighs one latent element against one data value and does not change
    with the latent size; ``"sum"`` is the true KL in nats (= mean × number of latent elements).
    """
    kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float())
    kl = kl.reshape(kl.shape[0], -1)
    if reduction == "mean":
        return kl.mean(dim=1)
    if reduction == "sum":
        return kl.sum(dim=1)
    raise ValueError(f"gaussian_kl: reduction must be 'mean' or 'sum', got {reduction!r}")
