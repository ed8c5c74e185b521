"""One importance sampler for every IWAE-type estimate (issue 9, item 1): ``iwae_log_likelihood`` and
``reconstruction_probability`` give the numbers they gave before they shared it, and the one marginal entropy
of a categorical code agrees with its textbook form."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import entr

from vaemi import build_vae, get_loss
from vaemi.maths.distributions import categorical_marginal_entropy, log_mean_exp
from vaemi.losses.mi import AuxiliaryQ, MITarget, VariationalMILoss
from vaemi.measures.metrics import importance_log_weights, iwae_log_likelihood, reconstruction_probability
from vaemi.models import CategoricalPart, GaussianPart, LatentSpace
from vaemi.train.loop import seed_everything


def _model(double: bool = False):
    seed_everything(0)
    m = build_vae((1, 28, 28), LatentSpace([GaussianPart(3, "z"), GaussianPart(2, "c")]), hidden=(16,))
    return m.double() if double else m


def _reference_log_weights(model, x, k, seed):
    """The sampler as ``iwae_log_likelihood`` wrote it before the refactor (one batch)."""
    g = torch.Generator().manual_seed(seed)
    params = model.encode(x)
    logw, codes = 0.0, {}
    for p in model.latent.parts:
        mu, logvar = p.split(params[p.name])
        eps = torch.randn((k, *mu.shape), generator=g)
        z = mu + (0.5 * logvar).exp() * eps
        codes[p.name] = z
        logw = logw + (-0.5 * (math.log(2 * math.pi) + z.pow(2))).sum(-1) \
            - (-0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2))).sum(-1)
    xr = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
    loglik = model.likelihood.log_prob(xr, model.decode(model.latent.join(codes).flatten(0, 1))).view(k, -1)
    return loglik, logw


def test_values_measured_before_the_refactor(tiny_images):
    """Hard-coded: measured with the pre-refactor code on this float64 model (same seeds, same draws)."""
    m, x = _model(double=True), tiny_images.double()
    assert iwae_log_likelihood(m, x, k=7, batch_size=10, seed=3) == pytest.approx(-569.9340772274916, rel=1e-6)
    assert iwae_log_likelihood(m, x, k=1, seed=0) == pytest.approx(-575.4275088709674, rel=1e-6)
    before = {"log_px": -572.5286143774263, "elbo": -583.9513153435914, "rec_term": -581.272694056084,
              "log_rec_prob": -569.9062178704247, "rec_prob_bound": -592.695395022249}
    r = reconstruction_probability(m, x[:20], k=9, seed=4)
    assert r.keys() == before.keys()
    assert all(r[key] == pytest.approx(v, rel=1e-6) for key, v in before.items()), r


def test_estimates_match_the_reference_sampler(tiny_images):
    m, x = _model(), tiny_images[:24]
    with torch.no_grad():
        loglik, logw = _reference_log_weights(m, x, k=11, seed=5)
        (new_loglik, new_ratio), = list(importance_log_weights(m, x, 11, seed=5))
    assert torch.equal(new_loglik, loglik) and torch.allclose(new_loglik + new_ratio, loglik + logw, rtol=1e-6)
    log_px = torch.logsumexp(loglik + logw, 0) - math.log(11)
    assert iwae_log_likelihood(m, x, k=11, batch_size=24, seed=5) == pytest.approx(float(log_px.mean()), rel=1e-6)
    r = reconstruction_probability(m, x, k=11, seed=5)
    lw = loglik + logw
    expected = {"log_px": log_px, "elbo": lw.mean(0), "rec_term": loglik.mean(0),
                "log_rec_prob": torch.logsumexp(lw + loglik, 0) - math.log(11) - log_px}
    assert all(r[key] == pytest.approx(float(v.mean()), rel=1e-6) for key, v in expected.items())


def test_sampler_batches_are_seeded_and_cover_the_data(tiny_images):
    m, x = _model(), tiny_images[:30]
    batches = list(importance_log_weights(m, x, 4, batch_size=8, seed=1))
    assert [b[0].shape for b in batches] == [(4, 8)] * 3 + [(4, 6)]
    again = list(importance_log_weights(m, x, 4, batch_size=8, seed=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    one = reconstruction_probability(m, x, k=4, seed=1, batch_size=8)
    loglik, ratio = (torch.cat(t, 1) for t in zip(*batches))
    assert one["log_px"] == pytest.approx(float(log_mean_exp(loglik + ratio).mean()), rel=1e-6)
    assert iwae_log_likelihood(m, x, k=4, batch_size=8, seed=1) == pytest.approx(one["log_px"], rel=1e-6)


def test_sampler_refuses_a_categorical_code(tiny_images):
    seed_everything(0)
    m = build_vae((1, 28, 28), LatentSpace([GaussianPart(2, "z"), CategoricalPart(3, name="c")]), hidden=(8,))
    for f in (iwae_log_likelihood, reconstruction_probability):
        with pytest.raises(ValueError, match="Gaussian latent parts only"):
            f(m, tiny_images[:4], k=2)


def test_log_mean_exp_is_stable():
    t = torch.tensor([[1000.0, -1000.0], [1000.0, -1000.0 + math.log(3)]], dtype=torch.float64)
    assert torch.allclose(log_mean_exp(t, 0), torch.tensor([1000.0, -1000.0 + math.log(2)], dtype=torch.float64))


def test_marginal_entropy_matches_the_textbook_form():
    probs = np.random.default_rng(0).dirichlet(np.full(6, 0.4), size=50)
    probs[:, 5] = 0.0
    probs /= probs.sum(1, keepdims=True)                  # a category that is never used: 0 log 0 = 0
    h = categorical_marginal_entropy(torch.from_numpy(probs))
    assert float(h) == pytest.approx(float(entr(probs.mean(0)).sum()), rel=1e-12)
    assert float(categorical_marginal_entropy(torch.full((4, 5), 0.2))) == pytest.approx(math.log(5), rel=1e-6)
    logits = torch.tensor([[200.0, 0.0, 0.0], [200.0, 0.0, 0.0]], requires_grad=True)  # softmax underflows to 0
    categorical_marginal_entropy(torch.softmax(logits, -1)).backward()
    assert torch.isfinite(logits.grad).all()


def test_mi_objective_is_the_elbo_minus_lambda_times_the_bound(tiny_images):
    """``VariationalMILoss`` reuses ``ELBOLoss``: with the same random draws, loss = ELBO loss - λ · mi_lb."""
    seed_everything(0)
    lat = LatentSpace([GaussianPart(2, "z"), CategoricalPart(4, name="c")])
    m = build_vae((1, 28, 28), lat, hidden=(16,))
    q = AuxiliaryQ((1, 28, 28), MITarget(lat, "c"), hidden=(8,))
    for entropy in ("prior", "marginal"):
        torch.manual_seed(3)
        loss, logs = VariationalMILoss(q, lam=2.5, beta=1.5, entropy=entropy)(m, tiny_images)
        torch.manual_seed(3)
        elbo, elbo_logs = get_loss("elbo", beta=1.5)(m, tiny_images)
        assert loss.item() == pytest.approx(elbo.item() - 2.5 * logs["mi_lb"].item(), rel=1e-6)
        assert all(torch.equal(logs[k], elbo_logs[k]) for k in ("rec", "kl", "elbo", "kl/z", "kl/c"))
