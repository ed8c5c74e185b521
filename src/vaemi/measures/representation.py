r"""How much class information a code keeps, on clean and corrupted inputs.

The VIMAE paper (§5.3, Tables 2-4) measures the quality of a representation by the accuracy of a
semi-supervised classifier on the codes :math:`z\sim q(z\mid x+\nu)` of clean and corrupted images.
This module holds what those tables need:

* :func:`corrupt`: the two corruptions of the paper, Gaussian noise :math:`\mathcal N(0, \sigma^2)` per pixel
  and a Bernoulli mask :math:`\mathcal B(p)` (a fraction :math:`p` of the pixels forced to 0), seeded;
* :func:`latent_codes`: the deterministic code (posterior mode) of images;
* :func:`stratified_labels`, :func:`svm_accuracy`: an RBF-kernel SVM (scikit-learn) trained on a few labelled codes
  per class and scored on all the test codes, over several random draws of the labelled set. The paper uses
  M1+TSVM (a transductive SVM, Kingma et al. 2014); the transductive step is in no maintained library, and a plain
  SVM measures the same thing, how much of the class information survives in the code;
* :func:`robustness_table` (Table 3: MNIST, 100 labels per class) and :func:`omniglot_five_way` /
  :func:`few_shot_accuracy` (Table 4: 5 characters of an alphabet never seen in training, 60 labelled + 20 test
  images per character);

Accuracies are in percent throughout.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from vaemi.data import ImageData, data_tensor
from vaemi.models import VAE, model_device

__all__ = ["CORRUPTION_KINDS", "CORRUPTIONS", "SVM_C", "corrupt", "latent_codes", "stratified_labels", "svm_accuracy", "robustness_table", "omniglot_five_way", "few_shot_accuracy"]


#: The kinds of corruption :func:`corrupt` knows.
CORRUPTION_KINDS = ("clean", "gaussian", "mask")


#: The paper's Table 3: clean inputs, Gaussian noise of std 0.2 and 0.4, Bernoulli masks of 20% and 50% of the pixels.
CORRUPTIONS = (("clean", 0.0), ("gaussian", 0.2), ("gaussian", 0.4), ("mask", 0.2), ("mask", 0.5))


#: The SVM's penalty (see :func:`svm_accuracy` for why it is fixed, and at this value).
SVM_C = 10.0


#: Suffix :func:`vaemi.data.load_omniglot` appends to the class name of a rotated copy.
_ROTATION_SUFFIX = re.compile(r" rot\d+$")
#: Which stream of noise: the labelled (training) pool or the test images.
_POOL, _TEST = 0, 1


# ------------------------------------------------------------------------------------------- checks
def _check_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_corruption(kind, level) -> tuple[str, float]:
    """``(kind, level)`` checked, the level as a float; ValueError naming ``kind`` or ``level`` otherwise."""
    if kind not in CORRUPTION_KINDS:
        raise ValueError(f"unknown corruption kind {kind!r}; choose one of {list(CORRUPTION_KINDS)}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)) \
            or not math.isfinite(level):
        raise ValueError(f"level must be a finite number, got {level!r}")
    level = float(level)
    if kind == "clean" and level != 0:
        raise ValueError(f"level of 'clean' must be 0, got {level}")
    if kind == "gaussian" and level < 0:
        raise ValueError(f"level of 'gaussian' (the noise std) must be >= 0, got {level}")
    if kind == "mask" and not 0 <= level <= 1:
        raise ValueError(f"level of 'mask' (the probability of masking a pixel) must be in [0, 1], got {level}")
    return kind, level


def _check_corruptions(corruptions) -> list[tuple[str, float]]:
    try:
        pairs = [tuple(c) for c in corruptions]
    except TypeError:
        raise ValueError(f"corruptions must be a sequence of (kind, level) pairs, got {corruptions!r}") from None
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"corruptions must be a non-empty sequence of (kind, level) pairs, got {corruptions!r}")
    out = [_check_corruption(*p) for p in pairs]
    if len(set(out)) != len(out):
        raise ValueError(f"corruptions name the same (kind, level) twice: {out}")
    return out


def _labels(y, name: str) -> np.ndarray:
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D array of integer labels, got dtype {y.dtype} "
                         f"and shape {y.shape}")
    return y


def _features(z, name: str) -> np.ndarray:
    z = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array (n, d) with n, d >= 1, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} holds non-finite values")
    return z


def _noise_seed(seed: int, stream: int, kind: str, level: float, draw: int = 0) -> int:
    """The seed of the noise of one (kind, level) corruption of one stream (pool or test) and draw.

    It depends on the corruption itself, not on its place in a list, so adding a corruption leaves the
    noise of the others unchanged; and it is the same for every model (paired comparisons).
    """
    key = [int(seed) % 2**63, stream, CORRUPTION_KINDS.index(kind), round(level * 1_000_000), draw]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] % 2**63)


def _draw_seeds(seed: int, draws: int) -> list[int]:
    """One independent seed per draw, from ``seed``."""
    return [int(s) for s in np.random.SeedSequence(int(seed) % 2**63).generate_state(draws)]


# -------------------------------------------------------------------------------------- corruption
def corrupt(x: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    r"""``x`` corrupted by Gaussian noise or a Bernoulli mask, as in the paper's §5.3.

    Parameters
    ----------
    x : tensor (N, C, H, W)
        Images in :math:`[0, 1]` (any floating tensor works; its shape is kept).
    kind : {"clean", "gaussian", "mask"}
        ``"clean"``: ``x`` itself (not a copy). ``"gaussian"``: :math:`x + \nu`, :math:`\nu\sim\mathcal N(0,
        \text{level}^2)` independently per pixel, then clipped to :math:`[0, 1]`: the images live in
        :math:`[0, 1]` and so do the decoders' outputs (a sigmoid), so an encoder has never seen a value outside it;
        the clip is the usual choice of denoising-autoencoder work. It trims only the tails of the noise of
        mid-grey pixels (what goes beyond 0.5 from them), but on the black background of MNIST only the positive
        half of the noise survives. ``"mask"``: every pixel forced to 0 independently with probability ``level``.
    level : float
        The noise std (``"gaussian"``, >= 0), the masking probability (``"mask"``, in [0, 1]), 0 for ``"clean"``.
    seed : int
        Seed of a :class:`torch.Generator` on the CPU: the same seed gives the same noise, whatever the device of
        ``x`` (the noise is drawn on the CPU and moved to it).

    Returns
    -------
    tensor
        Same shape, dtype and device as ``x``.

    Raises
    ------
    ValueError
        ``x`` not a floating tensor, unknown ``kind``, ``level`` out of range.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    kind, level = _check_corruption(kind, level)
    if kind == "clean":
        return x
    g = torch.Generator().manual_seed(int(seed))
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        return (x + level * noise).clamp_(0.0, 1.0)
    keep = torch.rand(x.shape, generator=g) >= level  # masked with probability `level`
    return x * keep.to(device=x.device, dtype=x.dtype)


# ------------------------------------------------------------------------------------------- codes
@torch.no_grad()
def latent_codes(model: VAE, x: ImageData | torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The deterministic codes of images: ``model.latent.mode`` of the encoder's posterior parameters.

    For a Gaussian part the posterior mean, for a deterministic part the code itself, for a categorical part the
    one-hot of its most probable class; the parts are concatenated.

    Parameters
    ----------
    model : VAE
        Run in eval mode (batch norm uses its running statistics) and without gradients, on its own device
        (:func:`vaemi.models.model_device`); its train/eval mode is restored afterwards.
    x : ImageData or tensor (N, C, H, W)
        The images, on any device: they are moved to the model's one batch by batch.
    batch_size : int

    Returns
    -------
    tensor (N, d)
        On the CPU.
    """
    if not isinstance(model, VAE):
        raise ValueError(f"model must be a vaemi.models.VAE, got {type(model).__name__}")
    batch_size = _check_int(batch_size, "batch_size")
    x = data_tensor(x, "cpu") if isinstance(x, ImageData) else x
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be an ImageData or a non-empty tensor of images, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        out = [model.latent.mode(model.encode(x[s:s + batch_size].to(device))).float().cpu()
               for s in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------- SVM
def stratified_labels(y, n_per_class: int, seed: int = 0) -> np.ndarray:
    """``n_per_class`` random indices of every class of ``y``: the labelled set of a semi-supervised test.

    Parameters
    ----------
    y : array or tensor (N,)
        Integer labels.
    n_per_class : int
    seed : int
        Seed of a :func:`numpy.random.default_rng`.

    Returns
    -------
    ndarray of int64
        ``n_per_class * n_classes`` indices into ``y``, sorted.

    Raises
    ------
    ValueError
        A class with fewer than ``n_per_class`` items (the message names it), bad ``y`` or ``n_per_class``.
    """
    y = _labels(y, "y")
    n_per_class = _check_int(n_per_class, "n_per_class")
    classes, counts = np.unique(y, return_counts=True)
    short = counts < n_per_class
    if short.any():
        k = int(np.flatnonzero(short)[0])
        raise ValueError(f"class {classes[k]} has only {counts[k]} items, fewer than n_per_class={n_per_class}"
                         + (f" ({int(short.sum())} classes are short)" if short.sum() > 1 else ""))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), n_per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _svm(C: float):
    return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=C, gamma="scale"))


def _fit_score(z_lab: np.ndarray, y_lab: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, C: float) -> float:
    """Test accuracy (%) of the SVM fitted on the labelled codes."""
    if np.unique(y_lab).size < 2:
        raise ValueError("the labelled set holds a single class; an SVM needs at least two")
    return 100.0 * float(_svm(C).fit(z_lab, y_lab).score(z_test, y_test))


def svm_accuracy(z_train, y_train, z_test, y_test, *, n_per_class: int, draws: int = 5, seed: int = 0,
                 C: float = SVM_C) -> np.ndarray:
    """Test accuracy of an RBF-kernel SVM trained on ``n_per_class`` labelled codes per class, over ``draws`` draws.

    Each draw picks the labelled set with :func:`stratified_labels` (its own seed, from ``seed``), fits
    ``make_pipeline(StandardScaler(), SVC(kernel="rbf", C=C, gamma="scale"))`` on it and scores it on *all* the test
    codes.

    **Why a fixed C = 10.** The codes are standardized and ``gamma="scale"`` then sets the kernel width to the
    dimension of the code, so ``C`` is the only free parameter. On PCA codes of MNIST (2, 8 and 32 dimensions,
    100 labels per class, 10,000 test images) the accuracy is flat for C from 1 to 100 (within 1-2 points; C = 0.1
    loses 2-8 points), and C = 10 is within 0.5 points of the best. A fixed C scores every model and corruption
    with the same classifier, and avoids the noise of a cross-validation on 10 to 100 labels per class.

    Parameters
    ----------
    z_train, y_train : array or tensor (N, d), (N,)
        The codes and labels of the pool the labelled sets are drawn from.
    z_test, y_test : array or tensor (M, d), (M,)
    n_per_class : int
    draws : int
    seed : int
    C : float
        The SVM's penalty (see above).

    Returns
    -------
    ndarray (draws,)
        Test accuracy of each draw, in percent.
    """
    z_train, z_test = _features(z_train, "z_train"), _features(z_test, "z_test")
    y_train, y_test = _labels(y_train, "y_train"), _labels(y_test, "y_test")
    if len(y_train) != len(z_train):
        raise ValueError(f"y_train has {len(y_train)} labels but z_train {len(z_train)} codes")
    if len(y_test) != len(z_test):
        raise ValueError(f"y_test has {len(y_test)} labels but z_test {len(z_test)} codes")
    if z_train.shape[1] != z_test.shape[1]:
        raise ValueError(f"z_train and z_test differ in dimension ({z_train.shape[1]} vs {z_test.shape[1]})")
    draws = _check_int(draws, "draws")
    C = _check_C(C)
    out = []
    for s in _draw_seeds(seed, draws):
        idx = stratified_labels(y_train, n_per_class, s)
        out.append(_fit_score(z_train[idx], y_train[idx], z_test, y_test, C))
    return np.asarray(out)


def _check_C(C) -> float:
    if isinstance(C, bool) or not isinstance(C, (int, float, np.integer, np.floating)) or not 0 < C < math.inf:
        raise ValueError(f"C must be a positive finite number, got {C!r}")
    return float(C)


def _summary(model: str, kind: str, level: float, acc: Sequence[float]) -> dict:
    acc = np.asarray(acc, dtype=float)
    return dict(model=model, kind=kind, level=float(level), mean=float(acc.mean()),
                std=float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"), draws=len(acc))


def _check_models(models) -> dict:
    if not isinstance(models, dict) or not models:
        raise ValueError(f"models must be a non-empty dict name -> VAE, got {type(models).__name__}")
    bad = [k for k, m in models.items() if not isinstance(m, VAE)]
    if bad:
        raise ValueError(f"models[{bad[0]!r}] is not a vaemi.models.VAE")
    return models


def robustness_table(models: dict[str, VAE], train: ImageData, test: ImageData, *,
                     corruptions: Sequence[tuple[str, float]] = CORRUPTIONS, n_per_class: int = 100, draws: int = 5,
                     seed: int = 0, corrupt_train: bool = True, C: float = SVM_C,
                     batch_size: int = 500) -> pd.DataFrame:
    """The paper's Table 3: SVM accuracy on the codes of clean and corrupted images, per model.

    For each draw (``draws`` of them) a labelled set of ``n_per_class`` training images per class is drawn
    (:func:`stratified_labels`); the SVM (:func:`svm_accuracy`, penalty ``C``) is fitted on their codes and scored on
    the codes of all of ``test``.

    **Corrupted labelled set.** With ``corrupt_train`` (default) the labelled images are corrupted too, by the same
    kind and level but with noise independent of the test noise (another seed): the paper runs "the same algorithm
    on the representation associated to corrupted data", i.e. the classifier is fitted and scored on codes of
    corrupted inputs, and what is measured is how much class information the code of a corrupted image keeps. With
    ``corrupt_train=False`` the SVM is fitted on clean codes and scored on corrupted ones: that measures also the
    shift of the codes under noise, a different question.

    The noise of a given (kind, level) depends only on ``seed`` (not on the model, nor on its place in
    ``corruptions``): every model sees the same corrupted images, so the models' differences are paired. Only the
    training images of some labelled set are encoded.

    Parameters
    ----------
    models : dict
        Name -> VAE.
    train, test : ImageData
        The labelled pool and the test images (the same image shape).
    corruptions : sequence of (kind, level)
        See :func:`corrupt`; default :data:`CORRUPTIONS`, the paper's Table 3.
    n_per_class : int
        Labels per class (the paper: 1,000 labels on MNIST, so 100).
    draws : int
        Random labelled sets; the table gives the mean and std over them.
    seed : int
    corrupt_train : bool
    C : float
        The SVM's penalty.
    batch_size : int
        Of the encoder.

    Returns
    -------
    DataFrame
        One row per model x corruption (models in the order given, then corruptions): ``model``, ``kind``,
        ``level`` (float), ``mean`` and ``std`` (sample std, ddof 1; NaN for one draw) of the test accuracy in
        percent, ``draws``.
    """
    from tqdm.auto import tqdm

    models = _check_models(models)
    for name, d in (("train", train), ("test", test)):
        if not isinstance(d, ImageData):
            raise ValueError(f"{name} must be an ImageData, got {type(d).__name__}")
    if train.image_shape != test.image_shape:
        raise ValueError(f"train and test images differ in shape ({train.image_shape} vs {test.image_shape})")
    corruptions = _check_corruptions(corruptions)
    n_per_class, draws = _check_int(n_per_class, "n_per_class"), _check_int(draws, "draws")
    C = _check_C(C)
    y_train, y_test = _labels(train.y, "train.y"), _labels(test.y, "test.y")
    label_sets = [stratified_labels(y_train, n_per_class, s) for s in _draw_seeds(seed, draws)]
    pool = np.unique(np.concatenate(label_sets))  # the only training images that are encoded
    where = [np.searchsorted(pool, idx) for idx in label_sets]
    x_pool = train.x[torch.as_tensor(pool)].cpu()
    x_test = test.x.cpu()
    accuracy: dict[tuple[str, int], list[float]] = {}
    clean_pool: dict[str, np.ndarray] = {}
    with tqdm(total=len(models) * len(corruptions), desc="robustness", leave=False) as bar:
        for c, (kind, level) in enumerate(corruptions):
            xt = corrupt(x_test, kind, level, _noise_seed(seed, _TEST, kind, level))
            xp = corrupt(x_pool, kind, level, _noise_seed(seed, _POOL, kind, level)) if corrupt_train else x_pool
            for name, m in models.items():
                z_test = latent_codes(m, xt, batch_size).double().numpy()
                if corrupt_train or name not in clean_pool:
                    z_pool = latent_codes(m, xp, batch_size).double().numpy()
                    if not corrupt_train:
                        clean_pool[name] = z_pool
                z_pool = z_pool if corrupt_train else clean_pool[name]
                accuracy[name, c] = [_fit_score(z_pool[w], y_train[pool[w]], z_test, y_test, C) for w in where]
                bar.update()
    rows = [_summary(name, kind, level, accuracy[name, c]) for name in models
            for c, (kind, level) in enumerate(corruptions)]
    return pd.DataFrame(rows, columns=["model", "kind", "level", "mean", "std", "draws"])


# ---------------------------------------------------------------------------------------- Omniglot
def _base_characters(data: ImageData) -> np.ndarray:
    """``"<alphabet>/<character>"`` of every item of an Omniglot :class:`ImageData`, rotations folded in."""
    if not isinstance(data, ImageData):
        raise ValueError(f"data must be an ImageData, got {type(data).__name__}")
    if data.class_names is None:
        raise ValueError("data has no class_names; load it with vaemi.data.load_omniglot, whose class names are "
                         "'<alphabet>/<character>' (with ' rot<angle>' for rotated copies)")
    bases = np.array([_ROTATION_SUFFIX.sub("", c) for c in data.class_names], dtype=object)
    if not all("/" in b for b in bases):
        raise ValueError("data.class_names must be '<alphabet>/<character>' (as vaemi.data.load_omniglot names them)")
    return bases[_labels(data.y, "data.y")]


def omniglot_five_way(data: ImageData, alphabet: str, *, n_chars: int = 5, n_train: int = 60, n_test: int = 20,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's Omniglot test set: ``n_chars`` characters of ``alphabet``, split into labelled and test images.

    A rotated copy of a character is the *same* character here: :func:`vaemi.data.load_omniglot` makes each
    rotation a new class (``class_names`` ``"<alphabet>/<character> rot90"`` ...), and this function folds them back,
    so that with ``rotations=(0, 90, 180, 270)`` every character has the paper's 80 images (20 drawers x 4
    rotations). ``n_chars`` characters are chosen at random (``seed``) and the images of each shuffled: the first
    ``n_train`` are labelled, the next ``n_test`` are the test images (a character with more images keeps a random
    ``n_train + n_test`` of them).

    Parameters
    ----------
    data : ImageData
        Omniglot as :func:`vaemi.data.load_omniglot` gives it (any alphabets and rotations); the alphabet should be
        one the model never saw.
    alphabet : str
        The alphabet (folder name, e.g. ``"Tagalog"``).
    n_chars, n_train, n_test : int
        The paper: 5 characters, 60 + 20 images each.
    seed : int

    Returns
    -------
    train_idx, test_idx : ndarray of int64
        Indices into ``data`` of the ``n_chars * n_train`` labelled and ``n_chars * n_test`` test images, character
        by character.
    labels : ndarray of int64 (len(data),)
        The ``n_chars``-way label of every item of ``data``: ``k`` for the ``k``-th chosen character, -1 for items
        not chosen; ``labels[train_idx]`` and ``labels[test_idx]`` are the labels of the two sets.

    Raises
    ------
    ValueError
        ``data`` without Omniglot class names, an unknown alphabet (the message lists the available ones), fewer
        than ``n_chars`` characters, or a character of the alphabet with fewer than ``n_train + n_test`` images
        (e.g. Omniglot loaded without its rotations).
    """
    bases = _base_characters(data)
    n_chars, n_train, n_test = (_check_int(n_chars, "n_chars", 2), _check_int(n_train, "n_train"),
                                _check_int(n_test, "n_test"))
    alphabets = np.array([b.split("/", 1)[0] for b in bases], dtype=object)
    if alphabet not in set(alphabets):
        raise ValueError(f"alphabet {alphabet!r} is not in data; available: {sorted(set(alphabets))}")
    chars, counts = np.unique(bases[alphabets == alphabet].astype(str), return_counts=True)
    if len(chars) < n_chars:
        raise ValueError(f"alphabet {alphabet!r} has {len(chars)} characters, fewer than n_chars={n_chars}")
    need = n_train + n_test
    if (counts < need).any():
        k = int(np.argmin(counts))
        raise ValueError(f"character {chars[k]!r} has only {counts[k]} images, fewer than n_train + n_test = {need} "
                         f"(Omniglot has 20 drawings per character; load_omniglot(rotations=(0, 90, 180, 270)) gives "
                         f"80, the rotated copies counting as the same character)")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(chars, n_chars, replace=False)
    labels = np.full(len(bases), -1, dtype=np.int64)
    train_idx, test_idx = [], []
    for k, ch in enumerate(chosen):
        idx = rng.permutation(np.flatnonzero(bases == ch))[:need]
        labels[idx] = k
        train_idx.append(idx[:n_train])
        test_idx.append(idx[n_train:])
    return np.concatenate(train_idx).astype(np.int64), np.concatenate(test_idx).astype(np.int64), labels


def few_shot_accuracy(model: VAE, data: ImageData, alphabet: str, *,
                      corruptions: Sequence[tuple[str, float]] = CORRUPTIONS, draws: int = 5, seed: int = 0,
                      n_chars: int = 5, n_train: int = 60, n_test: int = 20, corrupt_train: bool = True,
                      C: float = SVM_C, name: str = "model", batch_size: int = 500) -> pd.DataFrame:
    """The paper's Table 4 for one model: SVM accuracy on ``n_chars`` characters of an unseen alphabet.

    Each draw takes another random set of characters and split (:func:`omniglot_five_way`, its own seed); the
    SVM (penalty ``C``, as in :func:`svm_accuracy`) is fitted on the codes of the ``n_chars * n_train`` labelled
    images and scored on the ``n_chars * n_test`` test images, clean or corrupted (the labelled images too when
    ``corrupt_train``, with independent noise; see :func:`robustness_table`). Chance is ``100 / n_chars`` percent.

    Parameters
    ----------
    model : VAE
    data : ImageData
        Omniglot from :func:`vaemi.data.load_omniglot`, with rotations ``(0, 90, 180, 270)`` for the paper's 80
        images per character.
    alphabet : str
    corruptions, draws, seed, corrupt_train, C, batch_size
        As in :func:`robustness_table`.
    n_chars, n_train, n_test : int
        As in :func:`omniglot_five_way`.
    name : str
        The ``model`` column.

    Returns
    -------
    DataFrame
        One row per corruption, the columns of :func:`robustness_table`.
    """
    if not isinstance(model, VAE):
        raise ValueError(f"model must be a vaemi.models.VAE, got {type(model).__name__}")
    corruptions = _check_corruptions(corruptions)
    draws, C = _check_int(draws, "draws"), _check_C(C)
    accuracy: dict[int, list[float]] = {c: [] for c in range(len(corruptions))}
    for d, s in enumerate(_draw_seeds(seed, draws)):
        train_idx, test_idx, labels = omniglot_five_way(data, alphabet, n_chars=n_chars, n_train=n_train,
                                                        n_test=n_test, seed=s)
        x_lab, x_test = data.x[torch.as_tensor(train_idx)].cpu(), data.x[torch.as_tensor(test_idx)].cpu()
        z_clean = None
        for c, (kind, level) in enumerate(corruptions):
            z_test = latent_codes(model, corrupt(x_test, kind, level, _noise_seed(seed, _TEST, kind, level, d)),
                                  batch_size).double().numpy()
            if corrupt_train:
                xl = corrupt(x_lab, kind, level, _noise_seed(seed, _POOL, kind, level, d))
                z_lab = latent_codes(model, xl, batch_size).double().numpy()
            else:
                z_clean = latent_codes(model, x_lab, batch_size).double().numpy() if z_clean is None else z_clean
                z_lab = z_clean
            accuracy[c].append(_fit_score(z_lab, labels[train_idx], z_test, labels[test_idx], C))
    return pd.DataFrame([_summary(name, kind, level, accuracy[c]) for c, (kind, level) in enumerate(corruptions)],
                        columns=["model", "kind", "level", "mean", "std", "draws"])
