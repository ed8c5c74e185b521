"""The smoke profile (run by the test suite, online and offline) walks every path that the book profile (run by
`make book`) walks: the same datasets, architectures, section switches and choices, only smaller. Otherwise a path
of the main job is never tested (issue: the variance-loss chapter's book profile needed Fashion-MNIST, its smoke
profile did not, and the offline book build broke where no test looked)."""
import pytest
import yaml

from conftest import ROOT, chapter_of, notebook_defaults
from vaemi.book import params as P
from vaemi.book.build import chapters

CHAPTERS = chapters(ROOT)


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_smoke_profile_walks_every_path_of_the_book_profile(nb):
    book = notebook_defaults(nb)
    smoke = book | (yaml.safe_load((ROOT / "profiles" / "smoke" / f"{nb.stem}.yaml").read_text()) or {})
    differences = P.kind_differences(chapter_of(nb).schema, book, smoke)
    assert differences == [], f"{nb.stem}: the smoke profile leaves a path of the book untested"


def test_kind_differences_names_what_a_profile_leaves_out():
    spec = {"datasets": P.ListOf(P.Choice(["mnist", "fashion_mnist"])), "arch": P.Choice(["mlp", "conv"]),
            "omniglot": P.Bool(), "epochs": P.Int(1), "widths": P.ListOf(P.Int(1)), "seed": P.Int(0)}
    book = {"datasets": ["mnist", "fashion_mnist"], "arch": "conv", "omniglot": True, "epochs": 10, "widths": [500], "seed": 0}
    assert P.kind_differences(spec, book, book | {"epochs": 1, "widths": [8], "seed": 3}) == []  # sizes and policy only
    assert P.kind_differences(spec, book, book | {"datasets": ["fashion_mnist", "mnist", "mnist"]}) == []
    diffs = P.kind_differences(spec, book, book | {"datasets": ["mnist"], "arch": "mlp", "omniglot": False})
    assert len(diffs) == 3
    assert any(d.startswith("datasets: leaves out ['fashion_mnist']") for d in diffs)
    assert any(d.startswith("arch:") for d in diffs) and any(d.startswith("omniglot:") for d in diffs)
