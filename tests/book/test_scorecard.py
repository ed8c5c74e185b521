"""The scorecard: values formatted for people, claims grouped, verdicts in words, links to sections."""
import json

from vaemi.book.results import Results
from vaemi.book.scorecard import claim_anchors, claim_group, fmt, headline, render


def test_values_are_formatted_for_people():
    assert fmt(3.689134422629465) == "3.689"
    assert fmt([3.689134422629465, 8.655202822797884]) == "3.689 → 8.655"
    assert fmt({"rec": [94.920628125, 94.93], "elbo": -110.8993}) == "rec 94.92 → 94.93, elbo -110.9"
    assert fmt(60000) == "60,000" and fmt(None) == "—" and fmt(True) == "yes"
    assert fmt(1.1102230246251565e-16) == "1.110e-16"
    assert "…" in fmt(list(range(20)))


def test_groups_are_explicit_or_inferred():
    assert claim_group({"type": "identity", "paper": "eq. 3"}) == "derivation"
    assert claim_group({"type": "estimate", "paper": "not stated"}) == "ours"
    assert claim_group({"type": "estimate", "paper": "(not reported)"}) == "ours"
    assert claim_group({"type": "estimate", "paper": "82%"}) == "source"
    assert claim_group({"type": "estimate", "paper": "82%", "group": "ours"}) == "ours"


class _Data:
    name, split, source, is_fallback = "mnist", "train", "torchvision MNIST, local copy", False
    provenance = {"dataset": "mnist", "split": "train", "n": 60000, "origin": "local copy", "source": source}


def _run(tmp_path):
    r = Results("demo", "Demo chapter", {"seed": 0})
    r.claim("mc_check", "a Monte Carlo check of a derivation", True, paper="eq. 2", group="derivation")
    r.claim("theorem", "IWAE >= ELBO on our samples", True, group="consistency")
    r.use_data(_Data())
    r.claim("id1", "an identity", True, kind="identity", paper="eq. 1", ours=1e-16)
    r.claim("src_ok", "the source's claim A", True, ours=[1.0, 2.0], paper="A (Fig. 2)")
    r.claim("src_bad", "the source's claim B", False, ours={"x": 0.5}, paper="B (Table 1)")
    r.claim("mine", "an extra check", True, paper="not stated")
    r.claim("sandwich_vae_c", "a claim with an f-string key", True, paper="not stated")
    return json.loads(r.save(tmp_path).read_text())


def test_render_headline_links_and_failures(tmp_path):
    run = _run(tmp_path)
    book = tmp_path / "book"
    book.mkdir()
    nb = {"cells": [
        {"cell_type": "markdown", "source": "(demo-part-1)=\n## Part 1\n"},
        {"cell_type": "code", "source": 'R.claim("src_ok", "...", True)\nR.claim("src_bad", "...", False)'},
        {"cell_type": "markdown", "source": "(demo-part-2)=\n## Part 2\n"},
        {"cell_type": "code", "source": 'for n in ("vae",):\n    R.claim(f"sandwich_{n}_c", "...", True)'}]}
    (book / "demo.ipynb").write_text(json.dumps(nb))
    anchors = claim_anchors(book)["demo"]
    assert anchors["src_ok"] == "demo-part-1"
    h = headline([run])
    assert h[0]["source_held"] == 1 and h[0]["source_not"] == 1 and h[0]["derivation"] == 2 and h[0]["ours"] == 2
    assert h[0]["consistency"] == 1
    page = render([run], book)
    assert "demo.html#demo-part-1" in page and "demo.html#demo-part-2" in page
    assert "does not hold" in page and "✅" not in page and "❌" not in page
    assert "Consistency checks" in page and "never counted" in page
    assert "1.000 → 2.000" in page or "1 → 2" in page
    not_reproduced = page.split("did not reproduce")[1]
    assert "the source&#x27;s claim B" in not_reproduced and "claim A" not in not_reproduced
    assert str(tmp_path) not in page
    assert "mnist train 60,000 (local copy)" in page and run["commit"] in page
