"""A parameter the chapter does not define fails fast, naming the closest valid one (issue 9, item 4).

papermill only warns about an unknown ``-p`` name and runs the notebook with its defaults; the
chapter's validation cell must reject it instead.
"""
from __future__ import annotations

import pytest

from conftest import ROOT
from vaemi.book.build import chapters
from vaemi.book.params import Int, ParameterError, injected_names, validate

pytestmark = pytest.mark.slow  # kernels, builds or clusters: minutes; left out of `-m 'not slow'`

CHAPTERS = chapters(ROOT)


def test_injected_names_reads_papermills_cell():
    history = ["", "# Parameters (papermill: ...)\nepochs: int = 3\n", "# Parameters\nepoch = 3\nseed = 1\n", "x = 1"]
    assert injected_names(history) == ["epoch", "seed"]
    assert injected_names(["epochs = 2"]) is None


def test_unknown_name_is_rejected_with_a_suggestion():
    with pytest.raises(ParameterError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        validate({"epochs": 1}, {"epochs": Int(1)}, injected=["epoch"])
    assert validate({"epochs": 1}, {"epochs": Int(1)}, injected=["epochs"]) == {"epochs": 1}


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_papermill_typo_fails_in_the_validation_cell(nb, tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"seeed": 1},
                            cwd=str(nb.parent), progress_bar=False, log_output=False)
    assert e.value.ename == "ParameterError"
    assert "'seeed' (did you mean 'seed'?)" in e.value.evalue
    assert e.value.exec_count <= 3, "the typo must be caught before any data or training"
