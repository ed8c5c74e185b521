"""Report helpers give the same numbers as the functions they gather (issue 9, item 2)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vaemi
from vaemi.measures.metrics import category_probs, cluster_accuracy, evaluate_elbo
from vaemi.losses.mi import AuxiliaryQ, MITarget
from vaemi.measures.mi import mi_lower_bound, mi_upper_bound, posterior_mi_lower_bound
from vaemi.models import CategoricalPart, GaussianPart, LatentSpace
from vaemi.measures.mi import encoder_mi_bounds
from vaemi.chapters.reports import categorical_report, mi_report


def test_mi_report_matches_the_bounds(tiny_images):
    vaemi.seed_everything(0)
    m = vaemi.build_vae(tiny_images.shape[1:], LatentSpace([GaussianPart(3, "z"), GaussianPart(2, "c")]), hidden=[16])
    r = mi_report(m, tiny_images, n=200, seed=5, total=True)
    assert (r["I_c"], r["se_c"]) == mi_lower_bound(m, "c", n=200, seed=5, x_tilde="sample")
    assert (r["I_total"], r["se_total"]) == mi_lower_bound(m, ["z", "c"], n=200, seed=5, x_tilde="sample")
    assert r["rate_z"] == mi_upper_bound(m, tiny_images, "z")
    assert r["elbo"] == evaluate_elbo(m, tiny_images)["elbo"]
    assert r["rate_c"] >= 0 and np.isfinite(list(r.values())).all()
    t = mi_report(m, tiny_images, n=200, seed=5, elbo_prefix="test_")
    assert t["test_elbo"] == r["elbo"] and "elbo" not in t and "I_total" not in t and t["I_z"] == r["I_z"]
    assert "Iq_z" not in r
    e = mi_report(m, tiny_images, n=200, seed=5, encoder=True)
    for p in ("z", "c"):
        b = encoder_mi_bounds(m, tiny_images, p, seed=5)
        assert (e[f"Iq_{p}"], e[f"se_Iq_{p}"], e[f"se_rate_{p}"]) == (b["lower"], b["se_lower"], b["se_upper"])
        assert e[f"Iq_{p}"] <= e["log_n"] + 1e-9 and e[f"rate_{p}"] == pytest.approx(b["upper"])


def test_categorical_report_matches_its_parts(tiny_images):
    vaemi.seed_everything(0)
    lat = LatentSpace([GaussianPart(2, "z"), CategoricalPart(4, name="c")])
    m = vaemi.build_vae(tiny_images.shape[1:], lat, hidden=[16])
    q = AuxiliaryQ(tiny_images.shape[1:], MITarget(lat, "c"), hidden=[16])
    y = np.arange(len(tiny_images)) % 4
    r = categorical_report(m, q, tiny_images, y, 4, seed=2)
    probs = category_probs(m, tiny_images)
    assert r["acc_hungarian"] == cluster_accuracy(probs.argmax(1), y, 4)["hungarian"]
    assert r["mi_lb_thesis"] == pytest.approx(posterior_mi_lower_bound(m, q, tiny_images, seed=2)["mi_lb"], abs=0)
    assert r["kl_c"] == pytest.approx(r["I_q"] + r["kl_marginal"] + r["residual"], abs=1e-9)
    assert 1 <= r["used_categories"] <= 4 and "elbo" in r
    assert "elbo" not in categorical_report(m, q, tiny_images, y, 4, seed=2, elbo=False)
    t = categorical_report(m, q, tiny_images, y, 4, seed=2, elbo=False, details=False, prefix="test_")
    assert "details" not in t and "test_elbo" not in t and t["test_kl_c"] == r["kl_c"]
    assert t["test_mi_lb_thesis"] == r["mi_lb_thesis"] and all(k.startswith("test_") for k in t)
