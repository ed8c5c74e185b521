r"""Fréchet distances between image sets, offline: torchmetrics' FID with our feature extractors.

The Fréchet distance itself is torchmetrics' :class:`~torchmetrics.image.fid.FrechetInceptionDistance`
(feature sums and covariances in float64), given a feature module:

* :class:`FeatureClassifier` — a small CNN trained to classify the dataset
  (:func:`train_feature_classifier`, cached like every trained model). Its penultimate features give
  **"FID (classifier features)"**: it ranks models on one dataset; it is *not* on the scale of the
  papers' Inception FID and is never reported as equal to it.
* Inception-v3 (the papers' FID, through torchmetrics and the package ``torch-fidelity``) when its weights
  are on this machine — a file given as ``weights_path`` or by the environment variable
  ``VAEMI_INCEPTION_WEIGHTS``, or torch-fidelity's earlier download in torch's hub cache — or can be
  downloaded (``VAEMI_OFFLINE`` is not ``1``). Otherwise :class:`FIDUnavailable` says what to provide.

:class:`FIDScorer` computes the real images' statistics once and scores many generated sets against them;
:func:`make_scorer` picks the features (``"classifier"``, ``"inception"`` or ``"auto"``).
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaemi.data import ImageData
from vaemi.models import model_device
from vaemi.train import cache
from vaemi.train.loop import progress_bar, resolve_device, seed_everything

__all__ = ["FeatureClassifier", "train_feature_classifier", "FIDScorer", "FIDUnavailable", "inception_available",
           "inception_scorer", "make_scorer", "CLASSIFIER_LABEL", "INCEPTION_LABEL", "INCEPTION_WEIGHTS_ENV",
           "INCEPTION_WEIGHTS_FILE", "FEATURE_DIM"]

CLASSIFIER_LABEL = "FID (classifier features)"
INCEPTION_LABEL = "FID (Inception)"
#: Environment variable naming a local Inception weights file.
INCEPTION_WEIGHTS_ENV = "VAEMI_INCEPTION_WEIGHTS"
#: The file torch-fidelity downloads into torch's hub cache (and accepts as ``feature_extractor_weights_path``).
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
#: Where torch-fidelity downloads it from (for fetching it on a machine with network).
INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         "weights-inception-2015-12-05-6726825d.pth")
#: Width of Inception-v3's pool features (torchmetrics' default ``feature=2048``).
INCEPTION_DIM = 2048
#: Pixel scale of the uint8 images Inception expects.
_UINT8_MAX = 255
#: Width of the classifier's feature layer.
FEATURE_DIM = 128
#: Side of the pooled feature map before the feature layer (keeps where a stroke is, not only that it is).
_POOLED = 4
#: Images larger than this (on their shorter side) get a stride-2 first conv layer, which keeps the
#: classifier's cost on 64x64 images near that on 32x32 ones.
_FULL_RES_MAX = 32
#: Images per forward pass when measuring the classifier's test accuracy.
_EVAL_BATCH = 1000
#: Subfolder of the model cache holding the FID classifiers.
_CACHE_DIR = "fid"


class FIDUnavailable(RuntimeError):
    """The requested feature extractor cannot be built here (the message says what to provide)."""


# ---------------------------------------------------------------------------------------------------------
# the classifier features


class FeatureClassifier(nn.Module):
    """A small CNN classifier for ``(C, H, W)`` images in [0, 1]; ``forward`` returns its penultimate features.

    Two 3x3 conv blocks (``width`` then ``2 * width`` channels, each followed by ReLU and 2x2 max-pooling;
    the first conv has stride 2 on images larger than 32x32), average pooling to a 4x4 map, a linear layer
    with ReLU to the ``feature_dim`` features, and (:meth:`logits`) a linear class layer. Any ``H, W >= 4``
    works (1x28x28, 3x32x32, 3x64x64, ...).

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of the images.
    n_classes : int
        Number of classes (at least 2).
    width : int
        Channels of the first conv layer.
    feature_dim : int
        Width of the feature layer (:data:`FEATURE_DIM`).

    Attributes
    ----------
    num_features : int
        ``feature_dim``; read by torchmetrics.
    test_accuracy : float or None
        Set by :func:`train_feature_classifier`.
    dataset : str or None
        Name of the dataset it was trained on.
    """

    def __init__(self, image_shape, n_classes: int, width: int = 32, feature_dim: int = FEATURE_DIM):
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        c, h, w = image_shape
        stride = 2 if min(h, w) > _FULL_RES_MAX else 1
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, stride=stride, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(_POOLED), nn.Flatten(), nn.Linear(2 * width * _POOLED ** 2, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)
        self.num_features = int(feature_dim)
        self.image_shape, self.n_classes = tuple(int(s) for s in image_shape), int(n_classes)
        self.test_accuracy: float | None = None
        self.dataset: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, feature_dim)`` of images ``(n, C, H, W)``."""
        return self.body(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``(n, n_classes)``."""
        return self.head(self.body(x))


@dataclass(frozen=True)
class _CrossEntropy:
    """Stands for the classifier's training objective in the model-cache key (:func:`vaemi.train.cache.training_key`)."""

    objective: str = "cross-entropy classifier (Adam), for FID features"


@torch.no_grad()
def _accuracy(net: FeatureClassifier, data: ImageData) -> float:
    net.eval()
    device = model_device(net)
    correct = 0
    for s in range(0, len(data), _EVAL_BATCH):
        pred = net.logits(data.x[s:s + _EVAL_BATCH].to(device)).argmax(1).cpu()
        correct += int((pred == data.y[s:s + _EVAL_BATCH].cpu()).sum())
    return correct / len(data)


def train_feature_classifier(train: ImageData, test: ImageData, *, epochs: int = 2, batch_size: int = 128,
                             lr: float = 1e-3, seed: int = 0, device: str | torch.device | None = None,
                             use_cache: bool = True, progress: bool = True) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` on ``train`` (cross-entropy, Adam) and measure it on ``test``.

    Cached in the model cache (``<cache>/fid/<key>.pt``, :mod:`vaemi.train.cache`; the key covers the initial
    weights, the training and test images and labels, the settings, the package's code and torch), so a
    second call with the same inputs loads it. A corrupt entry is removed and the classifier retrained.

    Parameters
    ----------
    train, test : ImageData
        Labelled images in [0, 1] of one shape.
    epochs, batch_size, lr, seed : int, int, float, int
        Training settings.
    device : str or torch.device, optional
        Default: CUDA when available.
    use_cache : bool
        Load/store through the model cache (which ``VAEMI_CACHE=off`` turns off everywhere).
    progress : bool
        Show a progress bar.

    Returns
    -------
    FeatureClassifier
        In eval mode, on ``device``, with ``test_accuracy`` and ``dataset`` set.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}")
    if train.image_shape != test.image_shape:
        raise ValueError(f"training images are {train.image_shape}, test images {test.image_shape}")
    if train.n_classes < 2:
        raise ValueError(f"the FID classifier needs labelled data with at least 2 classes; "
                         f"{train.name} has {train.n_classes}")
    device = resolve_device(device)
    seed_everything(seed)
    net = FeatureClassifier(train.image_shape, max(train.n_classes, test.n_classes))
    root = cache.cache_root() if use_cache else None
    if root is not None:
        root = root / _CACHE_DIR
        key = cache.training_key(net, _CrossEntropy(), train.x, y=train.y, test_x=test.x, test_y=test.y,
                                 epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device.type)
        try:
            entry = cache.load(root, key, net, None, device)
            net.test_accuracy, net.dataset = float(entry["history"][-1]["test_accuracy"]), train.name
            return net.eval()
        except FileNotFoundError:
            pass
        except cache.CacheEntryError as e:
            warnings.warn(f"{e}; retraining the FID classifier", stacklevel=2)
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    x, y = train.x.to(device), train.y.to(device)
    history, steps = [], 0
    bar = progress_bar(range(epochs), desc="FID classifier", disable=not progress)
    for epoch in bar:
        net.train()
        total = torch.zeros((), device=device)
        for idx in torch.randperm(len(x), generator=g).to(device).split(batch_size):
            loss = F.cross_entropy(net.logits(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            steps += 1
        history.append({"epoch": epoch + 1, "loss": float(total) / len(x)})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
    net.test_accuracy, net.dataset = _accuracy(net, test), train.name
    history[-1]["test_accuracy"] = net.test_accuracy
    if root is not None:
        cache.store(root, key, net, None, history, steps)
    return net.eval()


# ---------------------------------------------------------------------------------------------------------
# the scorer


def _check_images(images: torch.Tensor, what: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``images`` if they are a float tensor (n >= 2, C, H, W) in [0, 1] without NaN (of ``shape``); else ValueError."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"{what}: expected a tensor of images (n, C, H, W), got "
                         f"{type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}")
    if not images.is_floating_point():
        raise ValueError(f"{what}: expected float images in [0, 1], got dtype {images.dtype}")
    if images.shape[0] < 2:
        raise ValueError(f"{what}: FID needs at least 2 images, got {images.shape[0]}")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"{what}: images of shape {tuple(images.shape[1:])}, but the real images are {tuple(shape)}")
    if torch.isnan(images).any():
        raise ValueError(f"{what}: images contain NaN values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{what}: pixel values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")
    return images


class _Float64(nn.Module):
    """Returns the features of ``net`` in float64: torchmetrics casts the FID to the features' dtype."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.num_features = int(net.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).double()


class FIDScorer:
    """FID of image sets against one real set, whose feature statistics are computed once.

    Parameters
    ----------
    features : nn.Module
        Maps float32 images ``(n, C, H, W)`` in [0, 1] to features ``(n, k)``; must have an int attribute
        ``num_features`` (= k; torchmetrics reads it). The scorer works on the device the module lives on.
    real_images : torch.Tensor
        ``(n, C, H, W)`` in [0, 1], n >= 2 (on any device; moved batch by batch).
    label : str
        What the number is, e.g. :data:`CLASSIFIER_LABEL`.
    batch_size : int
        Images per forward pass.

    Examples
    --------
    >>> scorer = FIDScorer(classifier, test.x[:2000], label=CLASSIFIER_LABEL)   # doctest: +SKIP
    >>> scorer(samples)                                                         # doctest: +SKIP
    """

    def __init__(self, features: nn.Module, real_images: torch.Tensor, *, label: str, batch_size: int = 500):
        from torchmetrics.image.fid import FrechetInceptionDistance

        if not isinstance(getattr(features, "num_features", None), int):
            raise ValueError(f"the feature module {type(features).__name__} needs an int attribute num_features")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.image_shape = tuple(_check_images(real_images, "real images").shape[1:])
        self.label, self.batch_size = label, int(batch_size)
        self.n_real = int(real_images.shape[0])
        device = model_device(features)
        self.metric = FrechetInceptionDistance(feature=_Float64(features.eval()), reset_real_features=False)
        self.metric.to(device)
        self._update(real_images, real=True)

    @torch.no_grad()
    def _update(self, images: torch.Tensor, real: bool) -> None:
        device = self.metric.real_features_sum.device
        for s in range(0, images.shape[0], self.batch_size):
            self.metric.update(images[s:s + self.batch_size].to(device, torch.float32), real=real)

    def __call__(self, images: torch.Tensor) -> float:
        """The FID of ``images`` ``(n, C, H, W)`` in [0, 1] (n >= 2, the real images' shape) against the real set."""
        _check_images(images, "generated images", self.image_shape)
        self.metric.reset()  # keeps the real statistics (reset_real_features=False)
        self._update(images, real=False)
        return float(self.metric.compute())

    def __repr__(self) -> str:
        return f"FIDScorer({self.label!r}, {self.n_real} real images of shape {self.image_shape})"


# ---------------------------------------------------------------------------------------------------------
# Inception


class _InceptionInput(nn.Module):
    """Grey images to 3 channels and [0, 1] floats to uint8, then torchmetrics' Inception-v3 pool features."""

    def __init__(self, inception: nn.Module):
        super().__init__()
        self.inception = inception
        self.num_features = INCEPTION_DIM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.inception((x * _UINT8_MAX).round().to(torch.uint8))


def _hub_weights() -> Path:
    """Where torch-fidelity's download of the weights lands (torch's hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def _offline() -> bool:
    return os.environ.get("VAEMI_OFFLINE", "") == "1"


def _given_weights(weights_path: str | Path | None) -> Path | None:
    p = weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV)
    return Path(p).expanduser() if p else None


def _has_torch_fidelity() -> bool:
    if importlib.util.find_spec("torch_fidelity") is None:  # optional: only Inception features need it
        return False
    return True


def inception_available(weights_path: str | Path | None = None) -> bool:
    """Whether Inception features can be built here without error.

    True when the package torch-fidelity is installed and the weights are a local file (``weights_path``,
    else ``$VAEMI_INCEPTION_WEIGHTS``, else torch-fidelity's earlier download in torch's hub cache), or,
    with neither path given, may be downloaded (``VAEMI_OFFLINE`` is not ``1``; the download itself can
    still fail, which :func:`make_scorer` reports).
    """
    if not _has_torch_fidelity():
        return False
    p = _given_weights(weights_path)
    if p is not None:
        return p.is_file()
    return _hub_weights().is_file() or not _offline()


def _inception(weights_path: str | Path | None) -> nn.Module:
    how = (f"put the Inception-v3 weights file {INCEPTION_WEIGHTS_FILE} (from {INCEPTION_WEIGHTS_URL}) on this "
           f"machine and set the environment variable {INCEPTION_WEIGHTS_ENV} to its path (or pass weights_path), "
           "with the package torch-fidelity installed; or use the classifier features (kind='classifier')")
    if not _has_torch_fidelity():
        raise FIDUnavailable(f"the package torch-fidelity is not installed; {how}")
    from torchmetrics.image.fid import NoTrainInceptionV3

    p = _given_weights(weights_path)
    if p is not None and not p.is_file():
        raise FIDUnavailable(f"Inception weights file not found: {p}; {how}")
    if p is None and _hub_weights().is_file():
        p = _hub_weights()
    if p is None and _offline():
        raise FIDUnavailable(f"no Inception weights on this machine and no download (VAEMI_OFFLINE=1); {how}")
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(INCEPTION_DIM)],
                                 feature_extractor_weights_path=str(p) if p is not None else None)
    except Exception as e:  # the download failed (no network), or the file is not Inception weights
        where = f"from {p}" if p is not None else "by download"
        raise FIDUnavailable(f"Inception-v3 could not be loaded {where} ({type(e).__name__}: {str(e)[:200]}); "
                             f"{how}") from e
    return _InceptionInput(net)


def inception_scorer(real_images: torch.Tensor, weights_path: str | Path | None = None, *, batch_size: int = 500,
                     device: str | torch.device | None = None) -> FIDScorer:
    """An :class:`FIDScorer` with torchmetrics' Inception-v3 pool features (the papers' FID).

    Parameters
    ----------
    real_images : torch.Tensor
        ``(n, C, H, W)`` in [0, 1], grey (repeated to 3 channels) or RGB; resized to 299x299 by torchmetrics.
    weights_path : path, optional
        torch-fidelity's weights file :data:`INCEPTION_WEIGHTS_FILE`; default ``$VAEMI_INCEPTION_WEIGHTS``,
        else torch's hub cache, else a download unless ``VAEMI_OFFLINE=1``.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Where Inception runs; default CUDA when available.

    Raises
    ------
    FIDUnavailable
        No weights here and none can be downloaded, or torch-fidelity is missing; the message says what to provide.
    """
    _check_images(real_images, "real images")
    if real_images.shape[1] not in (1, 3):
        raise ValueError(f"Inception features need grey or RGB images, got {real_images.shape[1]} channels")
    net = _inception(weights_path).to(resolve_device(device))
    return FIDScorer(net, real_images, label=INCEPTION_LABEL, batch_size=batch_size)


def make_scorer(kind: str, real_images: torch.Tensor, *, classifier: FeatureClassifier | None = None,
                weights_path: str | Path | None = None, batch_size: int = 500,
                device: str | torch.device | None = None) -> FIDScorer:
    """An :class:`FIDScorer` for ``real_images`` with the chosen features.

    Parameters
    ----------
    kind : {"classifier", "inception", "auto"}
        ``"auto"``: Inception when it can be built here (:func:`inception_available`, and loading works),
        else the classifier (with a warning when loading Inception failed).
    real_images : torch.Tensor
        ``(n, C, H, W)`` in [0, 1].
    classifier : FeatureClassifier, optional
        Needed for ``"classifier"`` (and for ``"auto"`` when Inception is not available).
    weights_path : path, optional
        Local Inception weights (default: ``$VAEMI_INCEPTION_WEIGHTS``).
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Where Inception runs (default CUDA when available); the classifier features run where the classifier is.

    Returns
    -------
    FIDScorer
        With ``label`` :data:`INCEPTION_LABEL` or :data:`CLASSIFIER_LABEL`.

    Raises
    ------
    FIDUnavailable
        Inception requested (or ``"auto"`` without a classifier) but not available; the message says what to provide.
    ValueError
        Unknown ``kind``, no classifier where one is needed, or images the classifier was not trained for.
    """
    if kind not in ("classifier", "inception", "auto"):
        raise ValueError(f"unknown FID features {kind!r}; choose 'classifier', 'inception' or 'auto'")
    if kind == "inception" or (kind == "auto" and classifier is None):
        return inception_scorer(real_images, weights_path, batch_size=batch_size, device=device)
    if kind == "auto" and inception_available(weights_path):
        try:
            return inception_scorer(real_images, weights_path, batch_size=batch_size, device=device)
        except FIDUnavailable as e:
            warnings.warn(f"{e}. Falling back to the classifier features.", stacklevel=2)
    if classifier is None:
        raise ValueError(f"FID features {kind!r} need a trained classifier (train_feature_classifier)")
    if tuple(real_images.shape[1:]) != classifier.image_shape:
        raise ValueError(f"the classifier was trained on images of shape {classifier.image_shape}, "
                         f"the real images are {tuple(real_images.shape[1:])}")
    return FIDScorer(classifier, real_images, label=CLASSIFIER_LABEL, batch_size=batch_size)
