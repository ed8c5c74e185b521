r"""Fréchet distances between image sets, offline: torchmetrics' FID with our feature extractors.

The Fréchet distance itself is torchmetrics' :class:`~torchmetrics.image.fid.FrechetInceptionDistance`
(float64 statistics), given a feature module:

* :class:`FeatureClassifier` — a small CNN trained to classify the dataset
  (:func:`train_feature_classifier`, cached like every trained model). Its penultimate features give
  **"FID (classifier features)"**: it ranks models on one dataset; it is *not* on the scale of the
  papers' Inception FID and is never reported as equal to it.
* Inception-v3 (the papers' FID) when its weights are available: a local file (``weights_path`` or the
  environment variable ``VAEMI_INCEPTION_WEIGHTS``), or torch-fidelity's own download on a machine with
  network. It needs the package ``torch-fidelity``; otherwise :class:`FIDUnavailable` says what to provide.

:class:`FIDScorer` computes the real images' statistics once and scores many generated sets against them.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import cache
from .data import ImageData
from .models import model_device
from .training import progress_bar, resolve_device, seed_everything

__all__ = ["FeatureClassifier", "train_feature_classifier", "FIDScorer", "FIDUnavailable", "inception_available",
           "make_scorer", "CLASSIFIER_LABEL", "INCEPTION_LABEL", "INCEPTION_WEIGHTS_ENV", "INCEPTION_WEIGHTS_FILE"]

CLASSIFIER_LABEL = "FID (classifier features)"
INCEPTION_LABEL = "FID (Inception)"
#: Environment variable naming a local Inception weights file.
INCEPTION_WEIGHTS_ENV = "VAEMI_INCEPTION_WEIGHTS"
#: The file torch-fidelity downloads (and accepts as ``feature_extractor_weights_path``).
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
#: Width of the classifier's feature layer.
FEATURE_DIM = 128


class FIDUnavailable(RuntimeError):
    """The requested feature extractor cannot be built here (the message says what to provide)."""


class FeatureClassifier(nn.Module):
    """A small CNN classifier for ``(C, H, W)`` images in [0, 1]; ``forward`` returns its ``FEATURE_DIM`` features.

    Two 3x3 conv blocks (each followed by 2x2 max-pooling), global average pooling, and a linear layer
    to the features; :meth:`logits` adds the class layer.
    """

    def __init__(self, image_shape, n_classes: int, width: int = 32, feature_dim: int = FEATURE_DIM):
        super().__init__()
        c = image_shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)
        self.num_features = feature_dim  # read by torchmetrics
        self.image_shape, self.n_classes = tuple(image_shape), int(n_classes)
        self.test_accuracy: float | None = None
        self.dataset: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@torch.no_grad()
def _accuracy(net: FeatureClassifier, data: ImageData, batch_size: int = 1000) -> float:
    net.eval()
    device = model_device(net)
    correct = 0
    for s in range(0, len(data), batch_size):
        pred = net.logits(data.x[s:s + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == data.y[s:s + batch_size]).sum())
    return correct / len(data)


def train_feature_classifier(train: ImageData, test: ImageData, *, epochs: int = 2, batch_size: int = 128,
                             lr: float = 1e-3, seed: int = 0, device: str | torch.device | None = None,
                             use_cache: bool = True, progress: bool = True) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` on ``train`` (cross-entropy, Adam) and measure it on ``test``.

    Cached in the model cache (``<cache>/fid/<key>.pt``, the key covering the images, labels, settings and
    the package's code), so a rebuild loads it.

    Returns
    -------
    FeatureClassifier
        In eval mode, with ``test_accuracy`` and ``dataset`` set.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if train.n_classes < 2:
        raise ValueError(f"the FID classifier needs labelled data with at least 2 classes; {train.name} has {train.n_classes}")
    device = resolve_device(device)
    seed_everything(seed)
    net = FeatureClassifier(train.image_shape, train.n_classes)
    root = cache.cache_root() if use_cache else None
    path = None
    if root is not None:
        h = hashlib.sha256()
        for t in (train.x, train.y, test.x, test.y):
            h.update(cache._tensor_digest(t).encode())
        h.update(repr((epochs, batch_size, lr, seed, device.type, cache._sources_digest(), torch.__version__)).encode())
        path = root / "fid" / f"{h.hexdigest()[:32]}.pt"
        if path.exists():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state["model"])
                net.test_accuracy, net.dataset = float(state["test_accuracy"]), train.name
                return net.to(device).eval()
            except Exception:  # a corrupt entry is retrained, never used
                path.unlink(missing_ok=True)
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    x, y = train.x.to(device), train.y.to(device)
    for _ in progress_bar(range(epochs), desc="FID classifier", disable=not progress):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            loss = F.cross_entropy(net.logits(x[idx.to(device)]), y[idx.to(device)])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.test_accuracy, net.dataset = _accuracy(net, test), train.name
    net.eval()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
            torch.save({"model": net.state_dict(), "test_accuracy": net.test_accuracy}, f)
        os.replace(f.name, path)
    return net


def _check_images(images: torch.Tensor, what: str, shape=None) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"{what}: expected a tensor of images (n, C, H, W), got "
                         f"{type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}")
    if images.shape[0] < 2:
        raise ValueError(f"{what}: FID needs at least 2 images, got {images.shape[0]}")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"{what}: images of shape {tuple(images.shape[1:])}, but the real images are {tuple(shape)}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{what}: images contain NaN or infinite values")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"{what}: pixel values must lie in [0, 1], got [{float(images.min()):.3g}, {float(images.max()):.3g}]")
    return images


class _InceptionInput(nn.Module):
    """Grey images to 3 channels, then torchmetrics' Inception (which wants uint8 in [0, 255])."""

    def __init__(self, inception: nn.Module):
        super().__init__()
        self.inception = inception
        self.num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.inception((x * 255).round().to(torch.uint8))


class FIDScorer:
    """FID of image sets against one real set, whose feature statistics are computed once.

    Parameters
    ----------
    features : nn.Module
        Maps images (n, C, H, W) in [0, 1] to features (n, k); needs ``num_features`` (see torchmetrics).
    real_images : tensor (n, C, H, W) in [0, 1]
    label : str
        What the number is, e.g. :data:`CLASSIFIER_LABEL`.
    batch_size : int
    """

    def __init__(self, features: nn.Module, real_images: torch.Tensor, *, label: str, batch_size: int = 500):
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.image_shape = tuple(_check_images(real_images, "real images").shape[1:])
        self.label, self.batch_size = label, int(batch_size)
        self.metric = FrechetInceptionDistance(feature=features.eval(), reset_real_features=False)
        self.metric.to(model_device(features))
        self._update(real_images, real=True)

    @torch.no_grad()
    def _update(self, images: torch.Tensor, real: bool) -> None:
        device = self.metric.real_features_sum.device
        for s in range(0, images.shape[0], self.batch_size):
            self.metric.update(images[s:s + self.batch_size].to(device), real=real)

    def __call__(self, images: torch.Tensor) -> float:
        """The FID of ``images`` (n, C, H, W) in [0, 1] against the real set."""
        self.metric.reset()  # keeps the real statistics (reset_real_features=False)
        self._update(_check_images(images, "generated images", self.image_shape), real=False)
        return float(self.metric.compute())


def _weights_path(weights_path: str | Path | None) -> Path | None:
    p = weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV)
    return Path(p).expanduser() if p else None


def inception_available(weights_path: str | Path | None = None) -> bool:
    """Whether :func:`make_scorer` can build Inception features here: torch-fidelity installed, and a local
    weights file, or a network download allowed (``VAEMI_OFFLINE`` not 1)."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return False
    p = _weights_path(weights_path)
    if p is not None:
        return p.is_file()
    return os.environ.get("VAEMI_OFFLINE") != "1"


def _inception(weights_path: str | Path | None) -> nn.Module:
    how = (f"put torch-fidelity's Inception weights file ({INCEPTION_WEIGHTS_FILE}) on this machine and set "
           f"{INCEPTION_WEIGHTS_ENV} to its path (or pass weights_path), with the package torch-fidelity installed; "
           "or use the classifier features (kind='classifier')")
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as e:  # pragma: no cover - torchmetrics is a dependency
        raise FIDUnavailable(f"torchmetrics' Inception is missing ({e}); {how}") from e
    p = _weights_path(weights_path)
    if p is not None and not p.is_file():
        raise FIDUnavailable(f"Inception weights file not found: {p}; {how}")
    if p is None and os.environ.get("VAEMI_OFFLINE") == "1":
        raise FIDUnavailable(f"Inception weights cannot be downloaded (VAEMI_OFFLINE=1); {how}")
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=str(p) if p is not None else None)
    except ModuleNotFoundError as e:
        raise FIDUnavailable(f"the package torch-fidelity is not installed; {how}") from e
    except Exception as e:  # download failed (no network), unreadable file
        raise FIDUnavailable(f"Inception features could not be built ({type(e).__name__}: {str(e)[:200]}); {how}") from e
    return _InceptionInput(net)


def make_scorer(kind: str, real_images: torch.Tensor, *, classifier: FeatureClassifier | None = None,
                weights_path: str | Path | None = None, batch_size: int = 500) -> FIDScorer:
    """An :class:`FIDScorer` for ``real_images`` with the chosen features.

    Parameters
    ----------
    kind : {"classifier", "inception", "auto"}
        ``"auto"``: Inception when :func:`inception_available`, else the classifier.
    classifier : FeatureClassifier, optional
        Needed for ``"classifier"`` (and for ``"auto"`` when Inception is not available).
    weights_path : path, optional
        Local Inception weights (default: ``$VAEMI_INCEPTION_WEIGHTS``).

    Raises
    ------
    FIDUnavailable
        Inception requested but not available (the message says what to provide).
    """
    if kind not in ("classifier", "inception", "auto"):
        raise ValueError(f"unknown FID features {kind!r}; choose 'classifier', 'inception' or 'auto'")
    if kind == "inception" or (kind == "auto" and inception_available(weights_path)):
        net = _inception(weights_path).to(real_images.device)
        return FIDScorer(net, real_images, label=INCEPTION_LABEL, batch_size=batch_size)
    if classifier is None:
        raise ValueError(f"FID features {kind!r} need a trained classifier (train_feature_classifier)")
    if tuple(real_images.shape[1:]) != classifier.image_shape:
        raise ValueError(f"the classifier was trained on images of shape {classifier.image_shape}, "
                         f"the real images are {tuple(real_images.shape[1:])}")
    return FIDScorer(classifier, real_images, label=CLASSIFIER_LABEL, batch_size=batch_size)
