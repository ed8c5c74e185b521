"""Exact information identities of the VIMAE paper on enumerable models, eq. 3, and mixture entropies
(vaemi.measures.information)."""
import math

import numpy as np
import pytest

from vaemi.measures.information import DiscreteModel, chain_check, information_terms, random_model
from vaemi.measures.entropy import kl_additive_check, knn_entropy, mixture_entropy_bounds, mixture_entropy_mc
from vaemi.measures.metrics import categorical_kl_decomposition

#: Residuals that vanish for every model.
GENERAL = ["res_rate_split", "res_iq_forms", "res_iq_entropy", "res_eq5", "res_eq14", "res_chain",
           "res_bayes_gaps", "res_eq15_general", "res_loglik", "res_elbo", "res_eq8_general",
           "res_eq8_appendix_general", "res_itheta_seed"]
TOL = 1e-10


def _instances(n=24, seed=0, **kw):
    """``n`` random models of varied sizes, concentrations and decoders (overridable by ``kw``)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        args = dict(matched=bool(i % 2), concentration=float(rng.choice([0.3, 1.0, 3.0])),
                    decoder=("random", "posterior", "marginal")[i % 3])
        args.update(kw)
        out.append(random_model(int(rng.integers(2, 9)), int(rng.integers(2, 7)), rng, **args))
    return out


def _terms(models, lam=2.5):
    return [m.terms(lam=lam) for m in models]


# ------------------------------------------------------------------------------------------- general identities

def test_general_identities_hold_exactly():
    ts = _terms(_instances(36))
    for name in GENERAL:
        worst = max(abs(t[name]) for t in ts)
        assert worst < TOL, (name, worst)


def test_terms_are_consistent_and_gaps_nonnegative():
    for t in _terms(_instances(24, seed=1)):
        for name in ("rate", "I_q", "marginal_kl", "I_theta", "decoder_gap", "posterior_gap", "data_kl"):
            assert t[name] >= -1e-14, name
        assert t["I_q"] >= t["I_theta_phi"] - 1e-14          # the appendix's I_q >= I_theta_phi, always
        assert t["I_q"] - t["I_theta_phi"] == pytest.approx(t["decoder_gap"], abs=TOL)
        assert t["I_theta_phi"] == pytest.approx(t["h_x"] - t["cross_rec"], abs=1e-14)
        assert t["vim"] == pytest.approx(-t["cross_rec"] - 2.5 * t["marginal_kl"], abs=1e-14)
        assert t["elbo"] <= t["loglik"] + 1e-14                  # the ELBO bounds E log p_theta(x)


def test_information_terms_matches_model_method_and_brute_force():
    m = random_model(4, 3, 7)
    t = information_terms(m.p_x, m.q_z_given_x, m.p_z, m.p_x_given_z, lam=0.5)
    assert t == m.terms(lam=0.5)
    q_xz = m.p_x[:, None] * m.q_z_given_x
    q_z = q_xz.sum(0)
    i_q = sum(q_xz[x, z] * math.log(q_xz[x, z] / (m.p_x[x] * q_z[z])) for x in range(4) for z in range(3))
    pt = m.p_x_given_z.T * m.p_z[None, :]
    pt_x = pt.sum(1)
    i_t = sum(pt[x, z] * math.log(pt[x, z] / (pt_x[x] * m.p_z[z])) for x in range(4) for z in range(3))
    cross = -sum(q_xz[x, z] * math.log(m.p_x_given_z[z, x]) for x in range(4) for z in range(3))
    assert t["I_q"] == pytest.approx(i_q, abs=1e-14)
    assert t["I_theta"] == pytest.approx(i_t, abs=1e-14)
    assert t["cross_rec"] == pytest.approx(cross, abs=1e-14)
    assert t["vim"] == pytest.approx(-cross - 0.5 * t["marginal_kl"], abs=1e-14)


def test_zero_probabilities_follow_0_log_0():
    p_x = np.array([0.5, 0.5, 0.0])
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    dec = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    t = information_terms(p_x, q, np.array([0.5, 0.5]), dec)
    assert t["I_q"] == pytest.approx(math.log(2), abs=1e-15)   # a noiseless one-bit code
    assert t["I_theta"] == pytest.approx(0.0, abs=1e-15)        # a z-independent decoder
    assert t["data_kl"] == pytest.approx(0.0, abs=1e-15)
    for name in GENERAL:
        assert abs(t[name]) < TOL, name


# -------------------------------------------------------------------------------------- the appendix's optimum

def test_optimum_makes_the_three_informations_equal():
    for m in _instances(20, seed=2, matched=True, decoder="posterior"):
        t = m.terms()
        assert t["I_theta"] == pytest.approx(t["I_q"], abs=1e-12)
        assert t["I_theta_phi"] == pytest.approx(t["I_q"], abs=1e-12)
        for gap in ("decoder_gap", "posterior_gap", "data_kl", "marginal_kl"):
            assert abs(t[gap]) < 1e-12, gap


def test_chain_itheta_ge_iq_fails_for_a_given_decoder_and_needs_matched_marginal_at_optimum():
    # For one decoder, I_theta >= I_q fails even when q(z) = p(z): I_theta does not involve the encoder.
    matched = [chain_check(m) for m in _instances(24, seed=3, matched=True, decoder="random")]
    assert all(c["iq_ge_itheta_phi"] for c in matched)
    assert any(not c["itheta_ge_iq"] for c in matched)
    # With q(z) = p(z) the best decoder always reaches I_q: I_q <= H(q(z)) = H(p(z)) and q(x|z) is admissible.
    assert not any(c["no_decoder_reaches_iq"] for c in matched)
    # Without it, I_theta <= H(p(z)) < I_q can hold: no decoder at all reaches I_q (the appendix's chain fails).
    free = [chain_check(m) for m in _instances(40, seed=4, matched=False, decoder="random", concentration=0.3)]
    bad = [c for c in free if c["no_decoder_reaches_iq"]]
    assert bad and all(c["I_theta"] <= c["h_prior"] + 1e-12 < c["I_q"] for c in bad)
    assert all(c["iq_ge_itheta_phi"] for c in free)


# ------------------------------------------------------------------------------------------------------ eq. 15

def test_eq15_printed_fails_generically_with_the_predicted_residual():
    ts = _terms(_instances(24, seed=5, decoder="random"))
    assert max(abs(t["res_eq15_printed"]) for t in ts) > 1e-3
    for t in ts:
        assert t["res_eq15_printed"] == pytest.approx(t["marginal_kl"] - t["data_kl"], abs=TOL)


def test_eq15_printed_holds_when_both_marginals_match():
    """q(z) = p(z) and p_theta(x) = p(x) (both constraints of §3.1), with a decoder that is not q(x|z)."""
    for t in _terms(_instances(20, seed=6, matched=True, decoder="marginal")):
        assert abs(t["data_kl"]) < 1e-12 and abs(t["marginal_kl"]) < 1e-12
        assert t["posterior_gap"] > 1e-3                      # eq. 15 is not trivially 0 = 0
        assert abs(t["res_eq15_printed"]) < TOL
        assert abs(t["res_appendix_itheta"]) < TOL            # and I_theta = h(X) - h_theta(X|Z)


def test_eq15_printed_needs_both_assumptions():
    only_qz = _terms(_instances(20, seed=7, matched=True, decoder="random"))       # q(z) = p(z) only
    only_px = _terms(_instances(20, seed=8, matched=False, decoder="marginal"))    # p_theta(x) = p(x) only
    assert max(abs(t["res_eq15_printed"]) for t in only_qz) > 1e-3
    assert max(abs(t["res_eq15_printed"]) for t in only_px) > 1e-3
    assert max(abs(t["res_appendix_itheta"]) for t in only_qz) > 1e-3


# ------------------------------------------------------------------------------------------------------- eq. 8

def test_eq8_printed_is_off_by_h_x_plus_the_eq15_defect():
    ts = _terms(_instances(24, seed=9, decoder="random"), lam=4.0)
    assert min(abs(t["res_eq8_printed"]) for t in ts) > 1e-3
    for t in ts:
        assert t["res_eq8_printed"] == pytest.approx(t["data_kl"] - t["marginal_kl"] - t["h_x"], abs=TOL)
        assert t["res_eq8_appendix_printed"] == pytest.approx(-t["h_x"], abs=TOL)
        assert abs(t["res_eq8_general"]) < TOL
        assert abs(t["res_eq8_appendix_general"]) < TOL
        assert t["vim"] == pytest.approx(t["I_theta_phi"] - t["h_x"] - 4.0 * t["marginal_kl"], abs=TOL)


def test_eq8_printed_holds_up_to_the_constant_h_x_under_the_eq15_assumption():
    for t in _terms(_instances(20, seed=10, matched=True, decoder="marginal"), lam=10.0):
        assert t["res_eq8_printed"] == pytest.approx(-t["h_x"], abs=TOL)
        assert t["h_x"] > 1e-3


# -------------------------------------------------------------------------------------- the weighted rate split

def test_rate_split_weights_default_is_uniform_and_unchanged():
    rng = np.random.default_rng(11)
    probs, prior = rng.dirichlet(np.ones(5), size=7), rng.dirichlet(np.ones(5))
    a = categorical_kl_decomposition(probs, prior)
    b = categorical_kl_decomposition(probs, prior, weights=np.full(7, 1 / 7))
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-14), k
    w = rng.dirichlet(np.ones(7))
    c = categorical_kl_decomposition(probs, prior, weights=w)
    assert abs(c["residual"]) < TOL and c["rate"] != pytest.approx(a["rate"])
    with pytest.raises(ValueError, match="weights"):
        categorical_kl_decomposition(probs, prior, weights=np.ones(7))
    with pytest.raises(ValueError, match="weights"):
        categorical_kl_decomposition(probs, prior, weights=np.full(6, 1 / 6))


# ------------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("arg, value, match", [
    ("p_x", np.array([0.5, 0.6]), "p_x"),
    ("p_x", np.array([1.5, -0.5]), "p_x"),
    ("q_z_given_x", np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]), "q_z_given_x"),
    ("q_z_given_x", np.array([[0.5, 0.4], [1.0, 0.0]]), "q_z_given_x"),
    ("p_z", np.array([[0.5, 0.5]]), "p_z"),
    ("p_z", np.array([np.nan, 1.0]), "p_z"),
    ("p_x_given_z", np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]), "p_x_given_z"),
    ("p_x_given_z", np.array([[0.5, 0.5], [0.2, 0.2]]), "p_x_given_z"),
])
def test_bad_model_raises_naming_the_argument(arg, value, match):
    good = dict(p_x=np.array([0.5, 0.5]), q_z_given_x=np.eye(2), p_z=np.array([0.5, 0.5]),
                p_x_given_z=np.eye(2))
    good[arg] = value
    with pytest.raises(ValueError, match=match):
        information_terms(**good)
    with pytest.raises(ValueError, match=match):
        DiscreteModel(**good)


def test_bad_arguments_raise_naming_them():
    m = random_model(3, 2, 0)
    with pytest.raises(ValueError, match="lam"):
        m.terms(lam=float("nan"))
    for kw, match in [(dict(n_x=0, n_z=2), "n_x"), (dict(n_x=2, n_z=1.5), "n_z"),
                      (dict(n_x=2, n_z=2, concentration=0.0), "concentration"),
                      (dict(n_x=2, n_z=2, decoder="oracle"), "decoder")]:
        with pytest.raises(ValueError, match=match):
            random_model(rng=0, **kw)
    with pytest.raises(ValueError, match="model"):
        chain_check({"p_x": [1.0]})
    with pytest.raises(ValueError, match="sigma"):
        kl_additive_check([0.0, 1.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="sigma"):
        kl_additive_check([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="prior"):
        kl_additive_check([0.0], [1.0], prior="cauchy")
    with pytest.raises(ValueError, match="var"):
        mixture_entropy_bounds(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="mu"):
        mixture_entropy_bounds(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        mixture_entropy_bounds(np.zeros((3, 2)), np.ones((3, 2)), weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="n_samples"):
        mixture_entropy_mc(np.zeros((3, 2)), np.ones((3, 2)), n_samples=1)
    with pytest.raises(ValueError, match="k"):
        knn_entropy(np.zeros((10, 2)) + np.arange(10)[:, None], k=0)
    with pytest.raises(ValueError, match="z"):
        knn_entropy(np.zeros((3, 2)), k=3)
    with pytest.raises(ValueError, match="duplicates"):
        knn_entropy(np.repeat(np.arange(10.0)[:, None], 2, axis=0), k=1)


# ------------------------------------------------------------------------------------------------------- eq. 3

def test_kl_additive_gaussian_prior_closed_form():
    r = kl_additive_check([0.3, -1.0, 2.0, 0.0], [0.5, 1.2, 0.1, 1.0], prior="normal", n_samples=20_000)
    assert r["joint_closed_form"] == pytest.approx(r["sum_per_dim_closed_form"], abs=1e-12)
    np.testing.assert_allclose(r["per_dim"], r["per_dim_closed_form"], atol=1e-10)
    assert r["per_dim"][3] == pytest.approx(0.0, abs=1e-12)
    assert abs(r["joint_mc"] - r["joint_closed_form"]) < 4 * r["joint_mc_se"]
    assert abs(r["sum_per_dim_mc"] - r["joint_closed_form"]) < 4 * r["sum_per_dim_mc_se"]


def test_kl_additive_logistic_prior_monte_carlo():
    r = kl_additive_check([0.3, -1.0, 2.0], [0.5, 1.2, 0.1], prior="logistic", n_samples=20_000)
    assert math.isnan(r["joint_closed_form"])
    assert np.all(r["per_dim"] > 0)
    assert abs(r["joint_mc"] - r["sum_per_dim"]) < 4 * r["joint_mc_se"]
    assert abs(r["sum_per_dim_mc"] - r["sum_per_dim"]) < 4 * r["sum_per_dim_mc_se"]
    assert abs(r["joint_mc"] - r["sum_per_dim_mc"]) < 4 * math.hypot(r["joint_mc_se"], r["sum_per_dim_mc_se"])
    # a N(0, 1) posterior against the unit Logistic: KL = -h(N(0,1)) - E log p = small but positive per dim
    r0 = kl_additive_check([0.0, 0.0], [1.0, 1.0], prior="logistic", n_samples=1000)
    assert 0 < r0["per_dim"][0] < 0.05 and r0["per_dim"][0] == pytest.approx(r0["per_dim"][1], abs=1e-15)


# ------------------------------------------------------------------------------------------- mixture entropy

def _gauss_h(var):
    return 0.5 * np.sum(np.log(2 * math.pi * math.e * np.asarray(var)), axis=-1)


def test_mixture_bounds_single_and_identical_components():
    var = np.array([[0.3, 2.0, 1.5]])
    lo, hi = mixture_entropy_bounds(np.array([[1.0, -2.0, 0.5]]), var)
    assert lo == hi == pytest.approx(_gauss_h(var[0]), abs=1e-14)
    lo, hi = mixture_entropy_bounds(np.tile([[1.0, -2.0, 0.5]], (50, 1)), np.tile(var, (50, 1)))
    assert lo == pytest.approx(_gauss_h(var[0]), abs=1e-12) and hi == pytest.approx(_gauss_h(var[0]), abs=1e-12)


def test_mixture_bounds_far_apart_components():
    rng = np.random.default_rng(12)
    n, d = 40, 3
    mu = 1e4 * np.arange(n)[:, None] * np.ones(d)
    var = rng.uniform(0.2, 2.0, size=(n, d))
    lo, hi = mixture_entropy_bounds(mu, var)
    expected = _gauss_h(var).mean() + math.log(n)
    assert lo == pytest.approx(expected, abs=1e-10) and hi == pytest.approx(expected, abs=1e-10)


def _brute_bounds(mu, var, w):
    dmu2 = (mu[:, None] - mu[None]) ** 2
    kl = 0.5 * (np.log(var[None] / var[:, None]) + (var[:, None] + dmu2) / var[None] - 1).sum(-1)
    vbar = 0.5 * (var[:, None] + var[None])
    bd = (dmu2 / (8 * vbar) + 0.5 * np.log(vbar / np.sqrt(var[:, None] * var[None]))).sum(-1)
    h = w @ _gauss_h(var)
    return h - w @ np.log(np.exp(-bd) @ w), h - w @ np.log(np.exp(-kl) @ w)


def test_mixture_bounds_match_brute_force_chunked_and_weighted():
    rng = np.random.default_rng(13)
    mu, var = rng.normal(size=(60, 5)), rng.uniform(0.1, 2.0, size=(60, 5))
    for w in (np.full(60, 1 / 60), rng.dirichlet(np.ones(60))):
        ref = _brute_bounds(mu, var, w)
        for chunk in (2 ** 22, 700):           # one block, and blocks of 11 rows
            np.testing.assert_allclose(mixture_entropy_bounds(mu, var, w, chunk_elems=chunk), ref, atol=1e-12)


def test_mixture_bounds_bracket_monte_carlo_2d():
    rng = np.random.default_rng(14)
    mu, var = rng.uniform(-2, 2, size=(6, 2)), rng.uniform(0.1, 1.0, size=(6, 2))
    lo, hi = mixture_entropy_bounds(mu, var)
    h, se = mixture_entropy_mc(mu, var, n_samples=100_000, rng=15)
    assert hi - lo > 10 * se                   # a non-trivial bracket
    assert lo - 4 * se <= h <= hi + 4 * se


def test_mixture_bounds_aggregate_posterior_size():
    rng = np.random.default_rng(16)
    n, d = 1000, 16
    mu, var = rng.normal(size=(n, d)), rng.uniform(0.05, 1.0, size=(n, d))
    lo, hi = mixture_entropy_bounds(mu, var)
    h_cond = _gauss_h(var).mean()
    assert h_cond <= lo <= hi <= h_cond + math.log(n)


# ------------------------------------------------------------------------------------------------ k-NN entropy

def test_knn_entropy_standard_normal_2d():
    z = np.random.default_rng(0).standard_normal((20_000, 2))
    assert abs(knn_entropy(z, k=3) - math.log(2 * math.pi * math.e)) < 0.05


def test_knn_entropy_scales_like_differential_entropy():
    z = np.random.default_rng(17).uniform(size=(3000, 3))
    assert knn_entropy(2.5 * z + 7.0) == pytest.approx(knn_entropy(z) + 3 * math.log(2.5), abs=1e-10)
    assert abs(knn_entropy(z, k=5)) < 0.1       # the unit cube has entropy 0
