import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _fresh_dataset_cache():
    """Data loading is memoized per process; tests that change roots must not see each other's data."""
    from vaemi import data

    data._load_cached.cache_clear()
    yield
    data._load_cached.cache_clear()


@pytest.fixture
def shared_data_root():
    root = Path(os.environ.get("VAEMI_DATA", SHARED))
    if not (root / "MNIST" / "raw").exists():
        pytest.skip("full MNIST not available locally (set VAEMI_DATA)")
    return root


@pytest.fixture
def tiny_images():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(64, 1, 28, 28, generator=g) > 0.7).float()
