import json
import re
from types import SimpleNamespace

import pytest

from conftest import ROOT
from vaemi.book.build import chapters, notebooks
from vaemi.book.params import Bool, Choice, Float, Int, ListOf, ParameterError, Str, require, validate


def test_validate_accepts_good_values():
    out = validate({"a": 3, "b": 0.5, "c": True, "d": "x", "e": [1, 2], "f": None},
                   {"a": Int(1, 5), "b": Float(0, 1, open_low=True), "c": Bool(), "d": Choice(["x", "y"]),
                    "e": ListOf(Int(1), increasing=True), "f": Str(allow_none=True)})
    assert out == {"a": 3, "b": 0.5, "c": True, "d": "x", "e": [1, 2], "f": None}


@pytest.mark.parametrize("checker,value,msg", [
    (Int(1), 0, ">= 1"), (Int(1), 2.5, "integer"), (Int(), True, "integer"), (Int(high=3), 4, "<= 3"),
    (Float(0, open_low=True), 0.0, "> 0"), (Float(0, 1, open_high=True), 1.0, "< 1"), (Float(), float("nan"), "finite"), (Float(), "1", "number"),
    (Bool(), 1, "True or False"), (Choice(["mnist"]), "cifar", "one of"), (Str(), 3, "string"),
    (ListOf(Int(1)), "12", "list"), (ListOf(Int(1)), [1, 0], r"x\[1\]"), (ListOf(Int(1), min_len=2), [1], "at least"),
    (ListOf(Float(), increasing=True), [2, 1], "increasing"),
])
def test_bad_values_name_the_parameter(checker, value, msg):
    with pytest.raises(ParameterError, match=msg) as e:
        validate({"x": value}, {"x": checker})
    assert "'x" in str(e.value)


def test_missing_parameter_and_require():
    with pytest.raises(ParameterError, match="not defined"):
        validate({}, {"x": Int()})
    with pytest.raises(ParameterError, match="custom message"):
        require(False, "custom message")


def _parameters_cell(nb):
    cell = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"])


@pytest.mark.parametrize("nb", notebooks(ROOT), ids=lambda p: p.stem)
def test_papermill_documents_every_parameter(nb):
    """`papermill --help-notebook` must parse every assignment of the parameters cell, with a help text."""
    from papermill.inspection import inspect_notebook

    params = [SimpleNamespace(**p) for p in inspect_notebook(str(nb)).values()]
    assigned = [l.split(":")[0].split("=")[0].strip() for l in _parameters_cell(nb).splitlines()
                if l.strip() and not l.strip().startswith("#")]
    assert [p.name for p in params] == assigned
    for p in params:
        assert p.help and len(p.help) > 10, f"{nb.name}: parameter {p.name!r} has no help comment"
        assert p.inferred_type_name != "None", f"{nb.name}: parameter {p.name!r} has no type annotation"


CHAPTERS = chapters(ROOT)
# papermill's `-p` values as it parses them; the last is inconsistent with n_train (a cross-parameter check)
BAD = [("epochs", -1, "epochs"), ("dataset", "imagenet", "dataset"), ("lr", 0, "lr"), ("seed", 1.5, "seed"),
       ("batch_size", 5000, "batch_size")]


def _validation_error(nb, **overrides):
    """Run a chapter's parameters cell, papermill's overrides, then its validation cell, in this process.

    The kernel path (papermill injects a cell, the validation cell raises before any data is loaded) is
    covered once per chapter by ``tests/test_unknown_params.py``; the value checks need no kernel.
    Returns the ``ParameterError`` message, or ``None`` when the values pass.
    """
    params_cell, validation_cell = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"][:2]
    ns = {"__name__": f"chapter_{nb.stem}"}
    exec("".join(params_cell["source"]), ns)
    ns.update(overrides)
    try:
        exec("".join(validation_cell["source"]), ns)
    except ParameterError as e:
        return str(e)
    return None


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_default_parameters_pass_validation(nb):
    assert _validation_error(nb) is None


@pytest.mark.parametrize("name,value", [("k", 1), ("temperature", 0), ("gauss_lam", 0.7), ("datasets", "cifar10")])
def test_thesis_chapter_checks_its_own_parameters(name, value):
    """K, the temperature, lambda (must be in the sweep) and the dataset list of book/vmim.ipynb."""
    err = _validation_error(ROOT / "book" / "vmim.ipynb", **{name: value})
    assert err is not None and f"parameter '{name}'" in err, err


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
@pytest.mark.parametrize("name,value,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_parameter_fails_fast_with_its_name(nb, name, value, expected):
    names = _parameters_cell(nb)
    if not re.search(rf"^{name}\b", names, re.M):
        pytest.skip(f"{nb.stem} has no parameter {name}")
    extra = {"n_train": 1000} if name == "batch_size" else {}
    err = _validation_error(nb, **{name: value}, **extra)
    assert err is not None and f"parameter '{expected}'" in err, err
