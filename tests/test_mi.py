import math

import numpy as np
import pytest
import torch

from vaemi import build_vae, get_loss, load_dataset, train
from vaemi.losses.mi import InfoVAELoss, generate_and_reencode
from vaemi.metrics import evaluate_elbo, reconstruction_probability
from vaemi.mi_estimators import mi_lower_bound, mi_upper_bound
from vaemi.models import GaussianPart, LatentSpace
from vaemi.training import seed_everything


def _random_discrete(seed, nz=4, nx=6):
    rng = np.random.default_rng(seed)
    p_z = rng.dirichlet(np.ones(nz))
    pxz = rng.dirichlet(np.ones(nx), size=nz)
    return p_z, pxz


def test_variational_bound_on_discrete_joint_is_tight_at_posterior():
    """E log q(z|x) + H(z) <= I(z;x), with equality for q = p(z|x) (enumerated, not sampled)."""
    p_z, pxz = _random_discrete(7)
    joint = p_z[:, None] * pxz
    p_x = joint.sum(0)
    mi = float((joint * np.log(joint / (p_z[:, None] * p_x[None, :]))).sum())
    h_z = float(-(p_z * np.log(p_z)).sum())
    post = joint / p_x
    for q in (post, np.random.default_rng(1).dirichlet(np.ones(len(p_z)), size=pxz.shape[1]).T):
        bound = float((joint * np.log(q)).sum()) + h_z
        assert bound <= mi + 1e-12
    assert float((joint * np.log(post)).sum()) + h_z == pytest.approx(mi, abs=1e-12)


def _model(seed=0):
    seed_everything(seed)
    return build_vae((1, 28, 28), LatentSpace([GaussianPart(3, "z"), GaussianPart(2, "c")]), hidden=(64,))


def test_infovae_with_lambda_zero_is_the_elbo(tiny_images):
    m = _model()
    seed_everything(1)
    a, _ = InfoVAELoss(lam=0.0)(m, tiny_images)
    seed_everything(1)
    b, _ = get_loss("elbo")(m, tiny_images)
    assert torch.equal(a, b)


def test_mi_term_gradients_reach_decoder_and_encoder():
    m = _model()
    logq = generate_and_reencode(m, 16, "c", x_tilde="mean")
    assert logq.shape == (16,)
    logq.mean().backward()
    assert m.decoder.net[0].weight.grad.abs().sum() > 0
    assert m.encoder.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        InfoVAELoss(x_tilde="sample")
    with pytest.raises(ValueError):
        InfoVAELoss(lam=-1)


def test_upper_bound_is_the_rate_of_the_part(tiny_images):
    m = _model()
    ev = evaluate_elbo(m, tiny_images)
    assert mi_upper_bound(m, tiny_images, "c") == pytest.approx(ev["kl/c_0"] + ev["kl/c_1"], rel=1e-5)


def test_lower_bound_is_reproducible_and_has_small_error():
    m = _model()
    a, se = mi_lower_bound(m, "c", n=2000, seed=3)
    b, _ = mi_lower_bound(m, "c", n=2000, seed=3)
    assert a == b and 0 < se < 1


def test_mi_regularizer_raises_the_bound_on_its_part(tmp_path):
    data = load_dataset("mnist", n=1000, seed=0)
    bounds = {}
    for lam in (0.0, 5.0):
        m = _model()
        train(m, InfoVAELoss(lam=lam), data, epochs=3, batch_size=50, lr=2e-3, progress=False)
        bounds[lam] = mi_lower_bound(m, "c", n=2000)[0]
    assert bounds[5.0] > bounds[0.0] + 0.1, bounds
    assert math.isfinite(bounds[0.0])


def test_bounds_over_several_parts_add_up(tiny_images):
    m = _model()
    both = mi_upper_bound(m, tiny_images, ["z", "c"])
    assert both == pytest.approx(mi_upper_bound(m, tiny_images, "z") + mi_upper_bound(m, tiny_images, "c"), rel=1e-6)
    lb, _ = mi_lower_bound(m, ["z", "c"], n=500)
    assert math.isfinite(lb)


def test_traversal_sensitivity_sees_only_used_dimensions():
    from vaemi.metrics import traversal_sensitivity

    m = _model()
    with torch.no_grad():
        m.decoder.net[0].weight[:, 1] = 0.0  # the decoder ignores code dimension 1
    s = traversal_sensitivity(m)
    assert s.shape == (5,) and s[1] == 0 and (s[[0, 2, 3, 4]] > 0).all()


def test_reconstruction_probability_orders_and_identities(tiny_images):
    m = _model()
    r = reconstruction_probability(m, tiny_images[:16], k=50)
    assert r["log_px"] >= r["elbo"]                         # IWAE >= ELBO
    assert r["log_rec_prob"] >= r["rec_prob_bound"]         # the seed's Jensen step
    assert r["rec_prob_bound"] == pytest.approx(r["elbo"] - r["log_px"] + r["rec_term"])
