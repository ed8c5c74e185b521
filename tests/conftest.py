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


#: Tests that share one expensive fixture run on one pytest-xdist worker (``make test``), so that it is built once, not
#: once per worker: node-id prefix -> group. (xdist's own ``xdist_group`` mark does not group under pytest 9: it rewrites
#: a node id attribute that pytest no longer reads; the scheduler below groups by this table instead.)
XDIST_GROUPS = {
    "tests/book/test_book.py::test_strict_smoke_build_of_the_whole_book": "smoke_site",  # builds the smoke site
    "tests/book/test_site.py": "smoke_site",  # reads it
    "tests/book/test_pdf.py": "smoke_site",  # prints it
    "tests/sweeps/test_sweep.py": "infovae_sweep",  # the module's 2 x 2 sweep
}


def xdist_group(nodeid: str) -> str | None:
    """The group of the test with this node id, or ``None``."""
    for prefix, group in XDIST_GROUPS.items():
        if nodeid == prefix or nodeid.startswith(prefix + "::"):
            return group
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup``: every test is its own unit of work, but a group of :data:`XDIST_GROUPS` is one."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid) or nodeid

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Every test that reads the smoke site is in its xdist group (:data:`XDIST_GROUPS`)."""
    loose = [item.nodeid for item in items
             if "smoke_site" in getattr(item, "fixturenames", ()) and xdist_group(item.nodeid) != "smoke_site"]
    if loose:
        raise pytest.UsageError("these tests read the smoke site outside its xdist group (add them to "
                                "tests/conftest.py's XDIST_GROUPS): " + ", ".join(loose))


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
