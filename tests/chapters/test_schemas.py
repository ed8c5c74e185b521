"""Each parameter is declared once: the chapter module's schema says what a value may be; the notebook's
``parameters`` cell (papermill's defaults and ``--help-notebook`` text) must name exactly the same parameters, with
annotations of the matching type and defaults that pass the schema."""
import pytest

from conftest import ROOT, chapter_of, notebook_defaults, parameters_cell
from vaemi.book import params as P
from vaemi.book.build import chapters

NOTEBOOKS = chapters(ROOT) + sorted((ROOT / "sweeps").glob("*.ipynb"))
TYPES = {P.Int: "int", P.Float: "float", P.Bool: "bool", P.Choice: "str", P.Str: "str", P.ListOf: "list"}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_and_schema_agree(nb):
    import re

    chapter = chapter_of(nb)
    annotated = dict(re.findall(r"^([A-Za-z_]\w*)\s*:\s*([A-Za-z]+)\s*=", parameters_cell(nb), flags=re.M))
    assert list(annotated) == list(notebook_defaults(nb)), f"{nb.stem}: every parameter needs a type annotation"
    assert set(annotated) == set(chapter.schema), (f"{nb.stem}: only in the notebook {sorted(set(annotated) - set(chapter.schema))}, "
                                                   f"only in the schema {sorted(set(chapter.schema) - set(annotated))}")
    for name, checker in chapter.schema.items():
        assert annotated[name] == TYPES[type(checker)], f"{nb.stem}: {name} is annotated {annotated[name]}, the schema says {checker}"
    assert chapter.validate(notebook_defaults(nb), injected=[]).keys() == chapter.schema.keys()


def test_chapter_ids_match_their_notebooks():
    for nb in NOTEBOOKS:
        assert chapter_of(nb).name == nb.stem
