"""The replication ledger: every item of the five sources with its counterpart and verdict (issue: a reader must find
in one click whether an item reproduces). The build fails when an item names a claim the chapter did not record, or a
chapter records a claim that belongs to no item; the export validates against its schema."""
import json

import jsonschema
import pytest

from conftest import ROOT
from vaemi.book import ledger
from vaemi.book.build import chapters, check_ledger


def _run(chapter, claims, params=None):
    return {"chapter": chapter, "title": chapter.title(), "profile": "smoke", "params": params or {"seed": 0},
            "meta": {}, "entries": {k: {"kind": "claim", "type": "estimate", "group": g, "status": s,
                                        "statement": k, "value": None, "paper": None}
                                    for k, (g, s) in claims.items()}}


def _doc(items):
    return {"seed": "000.txt", "chapter": "demo", "document": "Demo", "code": "none", "items": items}


ITEMS = [
    {"id": "eq. 1", "quote": "a = b", "kind": "derivation", "criterion": "exact", "claims": ["eq1"]},
    {"id": "Fig. 2", "quote": "it rises", "kind": "figure", "criterion": "slope > 0 by 2 SE", "claims": ["rises"]},
    {"id": "Table 9", "quote": "on CelebA", "kind": "table", "not_testable": "data", "why": "no CelebA here"},
    {"id": "batch 100", "quote": "batch 100", "kind": "setup", "params": {"batch_size": 100}},
    {"id": "Bernoulli decoder", "quote": "Bernoulli", "kind": "setup",
     "implemented_by": ["vaemi.models.likelihoods.BernoulliLikelihood"]},
]


def test_the_committed_ledgers_are_complete_and_well_formed():
    docs = ledger.load(ROOT / "ledger")
    assert set(docs) == {nb.stem for nb in chapters(ROOT)}, "one ledger per chapter"
    problems = [p for d in docs.values() for p in ledger.problems_in(d)]
    assert problems == [], "\n".join(problems[:20])
    assert sum(len(d["items"]) for d in docs.values()) >= 180  # the floor: about 180 items in all


def test_check_names_every_mismatch():
    run = _run("demo", {"eq1": ("derivation", "holds"), "rises": ("consistency", "holds"), "stray": ("source", "fails"),
                        "mine": ("ours", "holds")})
    items = ITEMS + [{"id": "eq. 3", "quote": "c", "kind": "derivation", "criterion": "exact", "claims": ["missing"]}]
    problems = ledger.check({"demo": _doc(items)}, [run])
    assert any("'eq. 3' names the claim 'missing'" in p for p in problems)
    assert any("'Fig. 2' (figure) is decided by the consistency check 'rises'" in p for p in problems)
    assert any("the claim 'stray' (source) belongs to no ledger item" in p for p in problems)
    assert not any("'mine'" in p for p in problems)  # ours: allowed outside the ledger
    assert len(problems) == 3


def test_structure_problems_are_named():
    bad = [{"id": "x", "quote": "q", "kind": "theorem", "criterion": "c", "claims": ["k"]},
           {"id": "x", "quote": "q", "kind": "claim", "claims": ["k"], "todo": "add it"},
           {"id": "y", "quote": "q", "kind": "table", "not_testable": "too hard", "why": "."},
           {"id": "z", "quote": "q", "kind": "setup"},
           {"id": "w", "quote": "q", "kind": "setup", "implemented_by": ["vaemi.models.NoSuchThing"]}]
    problems = " | ".join(ledger.problems_in(_doc(bad)))
    for expected in ("kind 'theorem'", "used twice", "a todo is left", "no criterion", "not_testable 'too hard'",
                     "a set-up fact needs", "does not name an object"):
        assert expected in problems, expected


def test_the_build_stops_on_a_mismatch(tmp_path):
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "demo.yaml").write_text(json.dumps(_doc(ITEMS)))  # YAML is a superset of JSON
    results = tmp_path / "results"
    results.mkdir()
    (results / "demo.json").write_text(json.dumps(_run("demo", {"eq1": ("derivation", "holds")})))
    with pytest.raises(SystemExit, match="'Fig. 2' names the claim 'rises'"):
        check_ledger(tmp_path, results)
    (results / "demo.json").write_text(json.dumps(_run("demo", {"eq1": ("derivation", "holds"),
                                                                "rises": ("source", "fails")})))
    check_ledger(tmp_path, results)  # agrees: no exception


@pytest.mark.parametrize("statuses,verdict", [
    (["holds", "holds"], "reproduced"), (["holds", "fails"], "not reproduced"),
    (["holds", "inconclusive"], "inconclusive"), (["inconclusive", "fails"], "not reproduced"),
    (["holds", "not evaluated"], "not evaluated")])
def test_item_verdicts(statuses, verdict):
    item = {"id": "i", "quote": "q", "kind": "claim", "criterion": "c", "claims": ["a", "b"]}
    run = _run("demo", {"a": ("source", statuses[0]), "b": ("source", statuses[1])})
    assert ledger.item_verdict(item, run) == verdict


def test_setup_facts_and_reasons():
    run = _run("demo", {}, params={"batch_size": 100})
    assert ledger.item_verdict(ITEMS[3], run) == "set-up followed"
    assert ledger.item_verdict(ITEMS[3], _run("demo", {}, params={"batch_size": 64})) == "set-up changed"
    assert ledger.item_verdict(ITEMS[4], run) == "set-up followed"
    assert ledger.item_verdict(ITEMS[2], run) == "not testable here"


def test_the_export_validates_against_its_schema(tmp_path):
    schema = json.loads((ROOT / "ledger" / "schema.json").read_text())
    run = _run("demo", {"eq1": ("derivation", "holds"), "rises": ("source", "fails")}, params={"batch_size": 100})
    seeds = tmp_path / "sweeps" / "results" / "demo-seeds" / "runs"
    seeds.mkdir(parents=True)
    for s, status in enumerate(["fails", "holds", "inconclusive"]):
        (seeds / f"seed={s}.json").write_text(json.dumps(_run("demo", {"eq1": ("derivation", "holds"),
                                                                       "rises": ("source", status)})))
    old = dict(ledger.SEED_SWEEPS)
    ledger.SEED_SWEEPS["demo"] = "demo-seeds"
    try:
        data = ledger.export({"demo": _doc(ITEMS)}, [run], root=tmp_path, commit="abc")
    finally:
        ledger.SEED_SWEEPS.clear()
        ledger.SEED_SWEEPS.update(old)
    jsonschema.validate(data, schema)
    items = {i["id"]: i for i in data["documents"][0]["items"]}
    assert items["Fig. 2"]["verdict"] == "not reproduced"
    assert items["Fig. 2"]["seeds"] == {"held": 1, "of": 3, "inconclusive": 1, "sweep": "demo-seeds"}
    assert data["totals"]["items"] == 5 and data["totals"]["not testable here"] == 1
    html = ledger.render(data)
    assert "ledger-demo" in html and "1/3, 1 inconclusive" in html and "not testable here" in html


def test_the_export_of_the_real_ledger_validates(tmp_path):
    schema = json.loads((ROOT / "ledger" / "schema.json").read_text())
    jsonschema.validate(ledger.export(ledger.load(ROOT / "ledger"), [], root=ROOT), schema)


def test_ledgers_load_in_the_order_of_the_table_of_contents(tmp_path):
    import yaml
    (tmp_path / "ledger").mkdir()
    for ch in ("alpha", "beta", "gamma"):
        (tmp_path / "ledger" / f"{ch}.yaml").write_text(yaml.safe_dump({**_doc(ITEMS[:1]), "chapter": ch}))
    assert list(ledger.load(tmp_path / "ledger")) == ["alpha", "beta", "gamma"]  # by name without a table of contents
    (tmp_path / "_toc.yml").write_text("root: book/intro\nchapters:\n- file: book/gamma\n- file: book/alpha\n")
    assert list(ledger.load(tmp_path / "ledger")) == ["gamma", "alpha", "beta"]  # the book's order, the rest after
    assert list(ledger.load()) == [p.stem for p in chapters(ROOT)]  # the repository: every chapter, in book order


def test_an_item_no_seed_run_evaluated_has_no_tally():
    runs = [_run("demo", {"rises": ("source", "not evaluated")}) for _ in range(4)]
    assert ledger.seed_tally(ITEMS[1], runs) is None  # not "0/0": the sweep did not see this claim
    runs[0] = _run("demo", {"rises": ("source", "holds")})
    assert ledger.seed_tally(ITEMS[1], runs) == {"held": 1, "of": 1, "inconclusive": 0}
