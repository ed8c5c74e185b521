"""vaemi.measures.representation: corruptions, codes, the SVM on codes (Table 3), the Omniglot 5-character test (Table 4) and the
Parzen-window log-likelihood (Table 1), on synthetic data and tiny random models."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import stats

import vaemi
from vaemi.measures import parzen
from vaemi.measures import representation as rb
from vaemi.data import ImageData, load_omniglot

COLUMNS = ["model", "kind", "level", "mean", "std", "draws"]


def _tiny_vae(seed=0):
    torch.manual_seed(seed)
    return vaemi.build_vae((1, 8, 8), 2, hidden=[8], likelihood="gaussian")


def _images(n, seed=0, side=8):
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ corrupt
def test_mask_zeroes_a_fraction_level_of_the_pixels():
    x = torch.ones(1, 1, 100, 100)  # 10,000 pixels
    for p in (0.2, 0.5):
        out = rb.corrupt(x, "mask", p, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert set(out.unique().tolist()) <= {0.0, 1.0}
        assert float((out == 0).float().mean()) == pytest.approx(p, abs=0.02)  # 5 binomial SDs
    assert torch.equal(rb.corrupt(x, "mask", 0.0, seed=1), x) and rb.corrupt(x, "mask", 1.0, seed=1).sum() == 0
    grey = torch.full((2, 1, 4, 4), 0.7)
    kept = rb.corrupt(grey, "mask", 0.5, seed=0)
    assert torch.all((kept == 0) | (kept == grey))  # masking keeps the other pixels as they are


def test_gaussian_noise_has_std_level_and_is_clipped_to_the_unit_interval():
    grey = torch.full((1, 1, 100, 100), 0.5)
    noise = rb.corrupt(grey, "gaussian", 0.1, seed=0) - grey  # 5 SDs from the clip: std is the level's
    assert float(noise.std()) == pytest.approx(0.1, rel=0.03) and abs(float(noise.mean())) < 0.005
    big = rb.corrupt(grey, "gaussian", 0.4, seed=0)
    assert big.min() == 0 and big.max() == 1  # clipped, at both ends
    assert float((big == 0).float().mean()) == pytest.approx(stats.norm.cdf(-0.5 / 0.4), abs=0.02)
    # with the clip, the noise on black pixels is the positive half of N(0, level^2)
    black = rb.corrupt(torch.zeros(1, 1, 100, 100), "gaussian", 0.2, seed=0)
    assert float((black == 0).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert float(black.mean()) == pytest.approx(0.2 / math.sqrt(2 * math.pi), rel=0.05)  # E[max(0, N(0, s^2))]


def test_corrupt_is_seeded_and_clean_is_the_input():
    x = _images(6)
    for kind, level in (("gaussian", 0.3), ("mask", 0.3)):
        a, b = rb.corrupt(x, kind, level, seed=3), rb.corrupt(x, kind, level, seed=3)
        assert torch.equal(a, b) and not torch.equal(a, rb.corrupt(x, kind, level, seed=4))
        assert not torch.equal(a, x)
    before = torch.randn(3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    rb.corrupt(x, "gaussian", 0.2, seed=9)
    assert torch.equal(torch.randn(3), before)  # the global RNG is left alone
    assert rb.corrupt(x, "clean", 0, seed=5) is x
    assert [k for k, _ in rb.CORRUPTIONS] == ["clean", "gaussian", "gaussian", "mask", "mask"]


@pytest.mark.parametrize("kind, level, match", [
    ("salt", 0.1, "kind"), ("mask", 1.5, "level"), ("mask", -0.1, "level"), ("gaussian", -0.2, "level"),
    ("clean", 0.3, "level"), ("gaussian", float("nan"), "level"), ("gaussian", "0.2", "level"),
])
def test_corrupt_rejects_bad_kind_and_level(kind, level, match):
    with pytest.raises(ValueError, match=match):
        rb.corrupt(_images(2), kind, level)


def test_corrupt_rejects_integer_images():
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        rb.corrupt(torch.zeros(2, 1, 4, 4, dtype=torch.long), "mask", 0.2)


# ----------------------------------------------------------------------------------- latent_codes
def test_latent_codes_are_the_posterior_mode_in_batches_on_the_cpu():
    model, x = _tiny_vae(), _images(23)
    model.train()
    z = rb.latent_codes(model, x, batch_size=5)
    assert z.shape == (23, 2) and z.device.type == "cpu" and not z.requires_grad
    with torch.no_grad():
        assert torch.allclose(z, model.latent.mode(model.encode(x)), atol=1e-6)
    assert model.training  # its mode is restored
    data = ImageData("mnist", "train", x, torch.zeros(23, dtype=torch.long), "synthetic")
    assert torch.allclose(rb.latent_codes(model, data), z, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        rb.latent_codes(model, x, batch_size=0)
    with pytest.raises(ValueError, match="model"):
        rb.latent_codes(torch.nn.Linear(2, 2), x)


# ------------------------------------------------------------------------------ stratified labels
def test_stratified_labels_draws_n_per_class():
    y = np.array([0] * 30 + [1] * 20 + [2] * 10)
    idx = rb.stratified_labels(y, 5, seed=0)
    assert idx.dtype == np.int64 and len(idx) == 15 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [5, 5, 5]
    assert np.array_equal(idx, rb.stratified_labels(torch.as_tensor(y), 5, seed=0))
    assert not np.array_equal(idx, rb.stratified_labels(y, 5, seed=1))
    assert np.array_equal(np.sort(rb.stratified_labels(y, 10, seed=0)[-10:]), np.arange(50, 60))  # all of class 2
    with pytest.raises(ValueError, match="class 2 has only 10 items, fewer than n_per_class=12"):
        rb.stratified_labels(y, 12)
    with pytest.raises(ValueError, match="n_per_class"):
        rb.stratified_labels(y, 0)
    with pytest.raises(ValueError, match="y must be"):
        rb.stratified_labels(np.array([0.5, 1.5]), 1)


# --------------------------------------------------------------------------------------------- SVM
def test_svm_accuracy_separable_clusters_and_random_labels():
    rng = np.random.default_rng(0)
    centres = 10 * rng.standard_normal((3, 4))
    y_tr, y_te = np.repeat(np.arange(3), 100), np.repeat(np.arange(3), 50)
    z_tr, z_te = centres[y_tr] + rng.standard_normal((300, 4)), centres[y_te] + rng.standard_normal((150, 4))
    acc = rb.svm_accuracy(z_tr, y_tr, z_te, y_te, n_per_class=10, draws=3, seed=0)
    assert acc.shape == (3,) and np.all(acc == 100.0)  # percent
    # labels that the codes know nothing of: chance (50%), within ~5 SDs of a 2,000-image test set
    z, zt = rng.standard_normal((2000, 3)), rng.standard_normal((2000, 3))
    yr, yt = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    chance = rb.svm_accuracy(z, yr, zt, yt, n_per_class=200, draws=3, seed=0)
    assert abs(chance.mean() - 50) < 6 and chance.std() > 0  # different labelled sets, different accuracies
    assert np.array_equal(chance, rb.svm_accuracy(z, yr, zt, yt, n_per_class=200, draws=3, seed=0))
    with pytest.raises(ValueError, match="y_train has 299 labels"):
        rb.svm_accuracy(z_tr, y_tr[:-1], z_te, y_te, n_per_class=10)
    with pytest.raises(ValueError, match="dimension"):
        rb.svm_accuracy(z_tr, y_tr, z_te[:, :2], y_te, n_per_class=10)
    with pytest.raises(ValueError, match="C must be"):
        rb.svm_accuracy(z_tr, y_tr, z_te, y_te, n_per_class=10, C=0)
    with pytest.raises(ValueError, match="draws"):
        rb.svm_accuracy(z_tr, y_tr, z_te, y_te, n_per_class=10, draws=0)


# ------------------------------------------------------------------------------- robustness_table
def _synthetic(n, seed):
    return ImageData("mnist", "train", _images(n, seed), torch.arange(n) % 10, "synthetic")


def test_robustness_table_shape_columns_and_paired_noise():
    models = {"a": _tiny_vae(0), "b": _tiny_vae(1)}
    train, test = _synthetic(100, 0), _synthetic(60, 1)
    t = rb.robustness_table(models, train, test, n_per_class=3, draws=2, seed=0)
    assert list(t.columns) == COLUMNS and len(t) == 2 * len(rb.CORRUPTIONS)
    assert list(t.model) == ["a"] * 5 + ["b"] * 5
    assert list(zip(t.kind, t.level))[:5] == list(rb.CORRUPTIONS) and t.level.dtype == float
    assert (t.draws == 2).all() and t["mean"].between(0, 100).all() and (t["std"] >= 0).all()
    assert t.equals(rb.robustness_table(models, train, test, n_per_class=3, draws=2, seed=0))  # seeded
    clean_fit = rb.robustness_table(models, train, test, corruptions=[("clean", 0), ("mask", 0.5)], n_per_class=3,
                                    draws=2, seed=0, corrupt_train=False)
    assert len(clean_fit) == 4
    # clean rows do not depend on corrupt_train, nor on the other corruptions listed
    pd.testing.assert_frame_equal(clean_fit[clean_fit.kind == "clean"].reset_index(drop=True),
                                  t[t.kind == "clean"].reset_index(drop=True))
    with pytest.raises(ValueError, match="fewer than n_per_class=11"):
        rb.robustness_table(models, train, test, n_per_class=11, draws=1)
    with pytest.raises(ValueError, match="kind"):
        rb.robustness_table(models, train, test, corruptions=[("blur", 1.0)], n_per_class=3)
    with pytest.raises(ValueError, match="models"):
        rb.robustness_table({}, train, test, n_per_class=3)


def test_robustness_table_matches_svm_accuracy_on_the_same_codes():
    model, train, test = _tiny_vae(0), _synthetic(80, 0), _synthetic(40, 1)
    t = rb.robustness_table({"m": model}, train, test, corruptions=[("clean", 0)], n_per_class=4, draws=3, seed=5)
    direct = rb.svm_accuracy(rb.latent_codes(model, train.x), train.y, rb.latent_codes(model, test.x), test.y,
                             n_per_class=4, draws=3, seed=5)
    assert t["mean"].iloc[0] == pytest.approx(direct.mean()) and t["std"].iloc[0] == pytest.approx(direct.std(ddof=1))


# ---------------------------------------------------------------------------------------- Omniglot
ALPHABETS = {"Alpha": 6, "Beta": 2}
DRAWERS = 20


@pytest.fixture
def omniglot_root(tmp_path):
    """The layout load_omniglot reads (images_background_small1/<alphabet>/<character>/*.png), tiny images."""
    k = 0
    for a, n_chars in ALPHABETS.items():
        for c in range(n_chars):
            folder = tmp_path / "omniglot-py" / "images_background_small1" / a / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            for d in range(DRAWERS):
                img = Image.new("1", (16, 16), 1)
                ImageDraw.Draw(img).rectangle([k % 8, 2, k % 8 + 6, 6 + d % 4], fill=0)  # not rotation-invariant
                img.save(folder / f"{k:04d}_{d + 1:02d}.png")
            k += 1
    return tmp_path


def test_omniglot_five_way_groups_the_rotations_of_a_character(omniglot_root):
    data = load_omniglot(root=omniglot_root, download=False, rotations=(0, 90, 180, 270), size=8)
    assert data.n_classes == 4 * 8 and "Alpha/character01 rot90" in data.class_names  # rotations: new classes
    train_idx, test_idx, labels = rb.omniglot_five_way(data, "Alpha", seed=0)
    assert train_idx.shape == (300,) and test_idx.shape == (100,) and labels.shape == (len(data),)
    assert not set(train_idx) & set(test_idx)
    assert np.bincount(labels[train_idx]).tolist() == [60] * 5 and np.bincount(labels[test_idx]).tolist() == [20] * 5
    assert (labels >= 0).sum() == 400  # the 80 images of each of 5 characters
    names = np.array(data.class_names)[data.y.numpy()]
    for k in range(5):
        mine = names[labels == k]
        bases = {n.split(" rot")[0] for n in mine}
        assert len(bases) == 1 and next(iter(bases)).startswith("Alpha/")  # one character, of the alphabet
        assert sorted({n[len(next(iter(bases))):] for n in mine}) == ["", " rot180", " rot270", " rot90"]
    again = rb.omniglot_five_way(data, "Alpha", seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train_idx, test_idx, labels), again))
    assert any(not np.array_equal(labels, rb.omniglot_five_way(data, "Alpha", seed=s)[2]) for s in range(1, 4))
    # an alphabet of the loader's selection (its labels renumbered) gives the same characters
    only = load_omniglot(root=omniglot_root, download=False, alphabets="Alpha", rotations=(0, 90, 180, 270), size=8)
    tr2, _, lab2 = rb.omniglot_five_way(only, "Alpha", seed=0)
    assert sorted(np.array(only.class_names)[only.y.numpy()][tr2]) == sorted(names[train_idx])


def test_omniglot_five_way_errors(omniglot_root):
    data = load_omniglot(root=omniglot_root, download=False, rotations=(0, 90, 180, 270), size=8)
    with pytest.raises(ValueError, match=r"alphabet 'Gamma' is not in data; available: \['Alpha', 'Beta'\]"):
        rb.omniglot_five_way(data, "Gamma")
    with pytest.raises(ValueError, match="'Beta' has 2 characters, fewer than n_chars=5"):
        rb.omniglot_five_way(data, "Beta")
    plain = load_omniglot(root=omniglot_root, download=False, size=8)  # no rotated copies: 20 images per character
    with pytest.raises(ValueError, match="only 20 images, fewer than n_train \\+ n_test = 80"):
        rb.omniglot_five_way(plain, "Alpha")
    assert len(rb.omniglot_five_way(plain, "Alpha", n_train=15, n_test=5)[0]) == 75
    with pytest.raises(ValueError, match="class_names"):
        rb.omniglot_five_way(_synthetic(20, 0), "Alpha")
    with pytest.raises(ValueError, match="n_chars"):
        rb.omniglot_five_way(data, "Alpha", n_chars=1)


def test_few_shot_accuracy_table(omniglot_root):
    data = load_omniglot(root=omniglot_root, download=False, rotations=(0, 90, 180, 270), size=8)
    corruptions = [("clean", 0.0), ("mask", 0.5)]
    t = rb.few_shot_accuracy(_tiny_vae(), data, "Alpha", corruptions=corruptions, draws=2, seed=0, name="VAE")
    assert list(t.columns) == COLUMNS and len(t) == 2 and (t.model == "VAE").all() and (t.draws == 2).all()
    assert list(zip(t.kind, t.level)) == corruptions and t["mean"].between(0, 100).all()
    assert t.equals(rb.few_shot_accuracy(_tiny_vae(), data, "Alpha", corruptions=corruptions, draws=2, seed=0,
                                         name="VAE"))


# ------------------------------------------------------------------------------------------ Parzen
def test_parzen_of_one_sample_is_the_gaussian_log_density():
    rng = np.random.default_rng(0)
    s, x, sigma = rng.random((1, 5)), rng.random((7, 5)), 0.3
    exact = stats.multivariate_normal(s[0], sigma ** 2 * np.eye(5)).logpdf(x)
    ll = parzen.parzen_log_likelihood(torch.as_tensor(s, dtype=torch.float32).reshape(1, 1, 1, 5), x, sigma)
    assert ll.dtype == np.float64 and ll.shape == (7,)
    assert np.allclose(ll, stats.multivariate_normal(np.float32(s[0]), sigma ** 2 * np.eye(5)).logpdf(x), atol=1e-9)
    assert np.allclose(parzen.parzen_log_likelihood(s, x, sigma), exact, atol=1e-10)
    # M identical samples: the same density
    assert np.allclose(parzen.parzen_log_likelihood(np.repeat(s, 4, 0), x, sigma), exact, atol=1e-10)


def test_parzen_approaches_the_true_density_of_a_gaussian():
    rng = np.random.default_rng(1)
    m, sd = np.array([1.0, -2.0]), 0.5
    samples = m + sd * rng.standard_normal((100_000, 2))
    x = m + sd * np.clip(rng.standard_normal((40, 2)), -1.5, 1.5)
    true = stats.multivariate_normal(m, sd ** 2 * np.eye(2)).logpdf(x)
    ll = parzen.parzen_log_likelihood(samples, x, sigma=0.05, batch_size=7)
    assert np.abs(ll - true).max() < 0.1 and abs(np.mean(ll - true)) < 0.03
    # a wide kernel gives the density of the Gaussian smoothed by it, N(m, (sd^2 + sigma^2) I)
    wide = stats.multivariate_normal(m, (sd ** 2 + 0.5 ** 2) * np.eye(2)).logpdf(x)
    assert np.abs(parzen.parzen_log_likelihood(samples, x, sigma=0.5) - wide).max() < 0.02
    assert np.allclose(ll, parzen.parzen_log_likelihood(samples, x, sigma=0.05, batch_size=500), rtol=0, atol=1e-9)


def test_parzen_sigma_is_the_grid_argmax_and_nll_uses_it():
    g = torch.Generator().manual_seed(0)
    samples, valid, test = (torch.rand(n, 1, 6, 6, generator=g) for n in (500, 60, 50))
    sigmas = [0.05, 0.1, 0.2, 0.4, 0.8]
    best, table = parzen.parzen_select_sigma(samples, valid, sigmas)
    assert list(table.columns) == ["sigma", "mean_ll", "se"] and list(table.sigma) == sigmas
    direct = [parzen.parzen_log_likelihood(samples, valid, s).mean() for s in sigmas]
    assert np.allclose(table.mean_ll, direct) and best == sigmas[int(np.argmax(direct))]
    assert best not in (sigmas[0], sigmas[-1])  # this grid brackets the optimum
    out = parzen.parzen_nll(samples, valid, test, sigmas)
    ll = parzen.parzen_log_likelihood(samples, test, best)
    assert out["sigma"] == best and out["nll"] == pytest.approx(-ll.mean())
    assert out["se"] == pytest.approx(ll.std(ddof=1) / math.sqrt(50))


def test_parzen_errors():
    s, x = np.zeros((3, 4)), np.zeros((2, 4))
    with pytest.raises(ValueError, match="sigma must be"):
        parzen.parzen_log_likelihood(s, x, 0.0)
    with pytest.raises(ValueError, match="sigma must be one"):
        parzen.parzen_log_likelihood(s, x, [0.1, 0.2])
    with pytest.raises(ValueError, match="sigmas must be"):
        parzen.parzen_select_sigma(s, x, [])
    with pytest.raises(ValueError, match="dimension"):
        parzen.parzen_log_likelihood(s, np.zeros((2, 5)), 0.1)
    with pytest.raises(ValueError, match="samples must hold at least one item"):
        parzen.parzen_log_likelihood(np.zeros((0, 4)), x, 0.1)
    with pytest.raises(ValueError, match="x holds non-finite"):
        parzen.parzen_log_likelihood(s, np.full((2, 4), np.nan), 0.1)
