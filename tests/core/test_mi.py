import math

import numpy as np
import pytest
import torch

import vaemi
from vaemi import build_vae, get_loss, load_dataset, train
from vaemi.losses.mi import InfoVAELoss, generate_and_reencode
from vaemi.measures.metrics import evaluate_elbo, reconstruction_probability
from vaemi.measures.mi import mi_lower_bound, mi_upper_bound
from vaemi.models import CategoricalPart, GaussianPart, LatentSpace
from vaemi.train.loop import seed_everything


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
    from vaemi.measures.metrics import traversal_sensitivity

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


# ---------------------------------------------------------------- encoder-side bounds (one joint, both directions)
class _LinearGaussianEncoder(torch.nn.Module):
    """q(z|x) = N(a x, s^2) on a scalar x ~ N(0, 1): I(z; x) = 0.5 log(1 + a^2 / s^2), rate = a^2 / 2 + KL of s."""

    def __init__(self, a: float, s: float):
        super().__init__()
        self.a, self.logvar = a, 2 * math.log(s)

    def forward(self, x):
        mu = self.a * x.reshape(len(x), 1)
        return torch.cat([mu, torch.full_like(mu, self.logvar)], 1)


def _encoder_model(encoder, latent):
    model = vaemi.build_vae((1, 2, 2), latent, hidden=[4])
    model.encoder = encoder
    return model


def test_encoder_mi_bounds_sandwich_the_exact_gaussian_information():
    from vaemi.measures.mi import encoder_mi_bounds
    a, s = 2.0, 1.0
    exact = 0.5 * math.log(1 + a ** 2 / s ** 2)
    model = _encoder_model(_LinearGaussianEncoder(a, s), LatentSpace([GaussianPart(1, "z")]))
    x = torch.randn(3000, 1, generator=torch.Generator().manual_seed(0))
    b = encoder_mi_bounds(model, x, "z", seed=0, repeats=2)
    assert b["lower"] <= exact + 3 * b["se_lower"]
    assert b["lower"] >= exact - 0.05  # InfoNCE with N = 3000 contrasts is nearly tight at 0.8 nats
    assert b["upper"] == pytest.approx(a ** 2 / 2, abs=4 * b["se_upper"] + 0.02)  # E KL = a^2 E x^2 / 2
    assert b["log_n"] == pytest.approx(math.log(3000))


def test_encoder_mi_bounds_categorical_exact_and_held_out_upper():
    from vaemi.measures.mi import encoder_mi_bounds
    k = 4
    onehot = lambda x: 30.0 * torch.nn.functional.one_hot(x.reshape(-1).long(), k).float()
    labels = torch.arange(4000) % k
    model = _encoder_model(_Lambda(onehot), LatentSpace([CategoricalPart(k, name="c")]))
    b = encoder_mi_bounds(model, labels.float().reshape(-1, 1), "c")
    assert b["lower"] == pytest.approx(math.log(k), abs=1e-6) and b["upper"] >= b["lower"] - 1e-9
    # a code that ignores x: the held-out upper bound shows the information is ~0 (the rate would be ln K)
    const = _encoder_model(_Lambda(lambda x: torch.zeros(len(x), k).index_fill_(1, torch.tensor([0]), 30.0)),
                           LatentSpace([CategoricalPart(k, name="c")]))
    b0 = encoder_mi_bounds(const, labels.float().reshape(-1, 1), "c")
    assert b0["upper"] < 1e-6 and abs(b0["lower"]) < 1e-6


def test_encoder_mi_bounds_rejects_tiny_data():
    from vaemi.measures.mi import encoder_mi_bounds
    model = _encoder_model(_LinearGaussianEncoder(1.0, 1.0), LatentSpace([GaussianPart(1, "z")]))
    with pytest.raises(ValueError, match="at least 4 images"):
        encoder_mi_bounds(model, torch.randn(3, 1), "z")


class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_straight_through_x_tilde_is_binary_with_the_gradient_of_the_mean():
    from vaemi.losses.mi import make_x_tilde
    model = build_vae((1, 2, 2), 2, hidden=[4])
    out = torch.randn(64, 1, 2, 2, requires_grad=True)
    xt = make_x_tilde(model, out, "straight_through", generator=torch.Generator().manual_seed(0))
    assert set(xt.detach().unique().tolist()) <= {0.0, 1.0}
    xt.sum().backward()
    assert torch.allclose(out.grad, torch.sigmoid(out) * (1 - torch.sigmoid(out)))
    with pytest.raises(ValueError, match="straight_through"):
        make_x_tilde(model, out, "straight-through")
