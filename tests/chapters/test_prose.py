"""Every number, parameter value and verdict in a chapter's prose comes from the run (a glue role) or is the source's,
quoted; the check that finds typed numbers (vaemi.book.prose) is itself tested on what it must and must not flag."""
import pytest

from conftest import ROOT
from vaemi.book.build import notebooks
from vaemi.book.prose import notebook_typed_numbers, typed_numbers

NOTEBOOKS = notebooks(ROOT) + sorted((ROOT / "sweeps").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_number_is_typed_into_the_prose(nb):
    hits = notebook_typed_numbers(nb)
    assert hits == [], f"{nb.name}: numbers typed into the prose (glue them, or quote the source's): {hits[:8]}"


@pytest.mark.parametrize("text", [
    "the MSE is {glue:text}`fig3_mse:.3f` against the paper's “0.546”",
    "eq. 4.9, eqs. 3–4, Fig. 2, Table 1, §4.5, Algorithm 1, (3), in 2019 on CIFAR-10",
    "$\\beta = 10$ and `lam = 10` in code", "```python\nx = 3\n```", "(vl-eq2)=\n## 2. The minimum",
    "the paper reports \"69.8 ± 1.1\" for GEN-2"])
def test_what_is_not_a_typed_number(text):
    assert typed_numbers(text) == []


@pytest.mark.parametrize("text", ["we trained 3 models", "an accuracy of 82% (MI)", "with β = 10, λ = 10",
                                  "KL 2.27 ≈ ln 10", "10 dimensions, MI on 5", "held in all 4 runs"])
def test_what_is_a_typed_number(text):
    assert typed_numbers(text), text
