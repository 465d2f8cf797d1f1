"""Likelihoods against torch.distributions, per-item semantics, and the Gaussian KL."""
from __future__ import annotations

import pytest
import torch
from torch import distributions as D

import inrkit
from inrkit.errors import ConfigError, DataError
from inrkit.likelihoods import gaussian_kl


def nll(name, pred, target, **cfg):
    return inrkit.build("likelihoods", name, **cfg).nll(pred, target)


@pytest.mark.parametrize("name,cfg", [("gaussian", {"sigma": 0.3}), ("laplace", {"scale": 0.2}),
                                      ("bernoulli", {}), ("bernoulli", {"pos_weight": 3.0})])
def test_every_likelihood_is_per_item_and_differentiable(name, cfg):
    torch.manual_seed(0)
    pred = torch.randn(3, 50, 2, requires_grad=True)
    target = torch.rand(3, 50, 2).round() if name == "bernoulli" else torch.randn(3, 50, 2)
    out = nll(name, pred, target, **cfg)
    assert out.shape == (3,)
    out.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    # item 1 alone gives the same value: nothing is averaged across the batch
    torch.testing.assert_close(nll(name, pred[1:2], target[1:2], **cfg), out[1:2])


def test_gaussian_and_laplace_match_torch_distributions():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 30, 3), torch.randn(4, 30, 3)
    ref = -D.Normal(pred, 0.3).log_prob(target).reshape(4, -1).mean(1)
    torch.testing.assert_close(nll("gaussian", pred, target, sigma=0.3), ref)
    ref = -D.Laplace(pred, 0.2).log_prob(target).reshape(4, -1).mean(1)
    torch.testing.assert_close(nll("laplace", pred, target, scale=0.2), ref)


def test_bernoulli_takes_logits_and_pos_weight_only_weighs_positives():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 64), torch.rand(2, 64).round()
    ref = -D.Bernoulli(logits=logits).log_prob(target).mean(1)
    torch.testing.assert_close(nll("bernoulli", logits, target), ref)
    zeros = torch.zeros(2, 64)
    torch.testing.assert_close(nll("bernoulli", logits, zeros, pos_weight=5.0), nll("bernoulli", logits, zeros))
    ones = torch.ones(2, 64)
    torch.testing.assert_close(nll("bernoulli", logits, ones, pos_weight=5.0), 5 * nll("bernoulli", logits, ones))


def test_gaussian_kl_matches_torch_and_documents_its_normalisation():
    torch.manual_seed(0)
    mean, logvar = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    ref = D.kl_divergence(D.Normal(mean, (0.5 * logvar).exp()), D.Normal(0.0, 1.0)).reshape(3, -1)
    torch.testing.assert_close(gaussian_kl(mean, logvar), ref.mean(1))
    torch.testing.assert_close(gaussian_kl(mean, logvar, reduction="sum"), ref.sum(1))
    assert torch.all(gaussian_kl(torch.zeros(2, 8), torch.zeros(2, 8)) == 0)


def test_likelihood_errors():
    with pytest.raises(ConfigError, match="sigma"):
        inrkit.build("likelihoods", "gaussian", sigma=0.0)
    with pytest.raises(DataError, match="differ in shape"):
        nll("laplace", torch.zeros(2, 3), torch.zeros(2, 4))


def test_base_hooks_are_abstract():
    """A likelihood or latent model missing its hooks fails when built, not mid-training."""
    from inrkit.likelihoods import Likelihood
    from inrkit_ldmi.latent_model import LatentModel

    class NoPointwise(Likelihood):
        pass

    with pytest.raises(TypeError, match="pointwise"):
        NoPointwise()

    class NoDecoder(LatentModel):
        pass

    with pytest.raises(TypeError, match="_build_decoder"):
        NoDecoder(None)
