import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _fresh_dataset_cache():
    """Data loading is memoized per process; tests that change roots must not see each other's data."""
    from vaemi.data import loading

    loading._load_cached.cache_clear()
    yield
    loading._load_cached.cache_clear()


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


@pytest.fixture(scope="session")
def smoke_site(tmp_path_factory):
    """The whole book built once at the smoke profile, strictly (warnings are errors): ``(out, command,
    completed process)``; the site is in ``out/_build/html``."""
    out = tmp_path_factory.mktemp("smoke-site")
    cmd = [sys.executable, "-m", "vaemi.book", "build", "--profile", "smoke", "--out", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return out, cmd, r


def pytest_collection_modifyitems(config, items):
    """``make test`` spreads the suite over pytest-xdist workers: every test that reads the smoke site must sit in its
    xdist group (``@pytest.mark.xdist_group("smoke_site")``), so that one worker builds it once, not one per worker."""
    loose = [item.nodeid for item in items if "smoke_site" in getattr(item, "fixturenames", ())
             and "smoke_site" not in {str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args}]
    if loose:
        raise pytest.UsageError("these tests read the smoke site but are not in its xdist group "
                                "(mark them pytest.mark.xdist_group('smoke_site')): " + ", ".join(loose))


#: Each notebook's :class:`vaemi.chapters.common.Chapter` (its schema), by notebook stem.
CHAPTER_OBJECTS = {"vae_basics": ("vae_basics", "chapter"), "infovae": ("infovae", "chapter"), "vmim": ("vmim", "chapter"),
                   "variance_loss": ("variance_loss", "chapter"), "vimae": ("vimae", "chapter"),
                   "infovae_exp2": ("infovae", "exp2"), "vmim_clustering": ("vmim", "clustering")}


def chapter_of(nb):
    """The Chapter object that validates notebook ``nb`` (a path or a stem)."""
    import importlib

    module, name = CHAPTER_OBJECTS[Path(nb).stem]
    return getattr(importlib.import_module(f"vaemi.chapters.{module}"), name)


def parameters_cell(nb):
    """The source of the notebook's cell tagged ``parameters``."""
    import json

    cell = next(c for c in json.loads(Path(nb).read_text())["cells"]
                if c["cell_type"] == "code" and "parameters" in c["metadata"].get("tags", []))
    return "".join(cell["source"])


def notebook_defaults(nb):
    """The values assigned by the notebook's ``parameters`` cell (papermill's defaults)."""
    ns = {}
    exec(parameters_cell(nb), ns)
    return {k: v for k, v in ns.items() if not k.startswith("__")}
