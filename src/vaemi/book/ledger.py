"""The replication ledger: every item of the five source documents, its counterpart in the book, and its verdict.

The ledger lives in ``ledger/<chapter>.yaml`` (one file per source document; the format is ``ledger/README.md``).
This module

* loads and validates those files (:func:`load`, :func:`problems_in`);
* holds them to the chapters' results (:func:`check`): every claim key an item names exists in its chapter's
  results, every claim a chapter records belongs to an item (or is marked as ours or as a consistency check), no
  experimental item is decided by a consistency check, and no ``todo`` is left; the build fails on a mismatch,
  naming the item or the claim;
* gives every item its verdict in a run (:func:`item_verdict`) and over the seeds of the chapter's published seed
  sweep (:func:`seed_tally`), and the counts per document and in total (:func:`export`, the machine-readable
  ``ledger.json`` whose schema is ``ledger/schema.json``);
* renders the ledger page (:func:`render`) and each chapter's replication summary (:func:`summary_markdown`).

``python -m vaemi.book.ledger check RESULTS_DIR`` runs :func:`check` from the command line.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from vaemi.book.records import published_dir, repository_roots
from vaemi.book.results import FAILS, HOLDS, INCONCLUSIVE, NOT_EVALUATED, claim_group

__all__ = ["KINDS", "REASONS", "DIFFERS", "VERDICTS", "ledger_dir", "load", "problems_in", "check", "item_verdict",
           "seed_tally", "export", "write_export", "headline_rows", "render", "summary_markdown", "counts", "SEED_SWEEPS", "main"]

#: What an item of a source is.
KINDS = {"derivation": "derivation", "claim": "experimental claim", "figure": "figure", "table": "table",
         "setup": "set-up fact"}
#: Why an item cannot be tested here (the only reasons a ledger may give).
REASONS = {"data": "the data cannot be obtained here", "compute": "needs the paper's compute",
           "statement": "not a testable statement"}
#: Why our number may differ from the paper's.
DIFFERS = {"scale": "our runs are smaller", "proxy": "a proxy metric", "data": "another dataset",
           "disagreement": "a genuine disagreement", "seed_error": "an error in the source"}
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
NOT_TESTABLE, FOLLOWED, CHANGED = "not testable here", "set-up followed", "set-up changed"
#: Every verdict an item can get, in the order the pages list them.
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_EVALUATED, NOT_TESTABLE, FOLLOWED, CHANGED)
#: The published seed sweep of each chapter (``sweeps/results/<name>``), read for the n/N of every item.
SEED_SWEEPS = {"vae_basics": "vae-basics-seeds", "infovae": "infovae-seeds", "vmim": "vmim-seeds",
               "variance_loss": "variance-loss-seeds", "vimae": "vimae-seeds"}
_EXPERIMENTAL = ("claim", "figure", "table")
_FIELDS = {"id", "quote", "kind", "criterion", "claims", "section", "not_testable", "why", "params", "implemented_by",
           "differs", "note", "seed_error", "todo", "where"}
_HEADER = {"seed", "chapter", "document", "code", "items"}


def ledger_dir(root: Path | None = None) -> Path:
    """``ledger/`` of the repository (``root``, else the first repository root found, see
    :func:`vaemi.book.records.repository_roots`)."""
    if root is not None:
        return Path(root) / "ledger"
    roots = repository_roots()
    return (roots[0] if roots else Path.cwd()) / "ledger"


def load(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every ledger file of ``directory`` (default :func:`ledger_dir`), by chapter id, in the order of the book's
    table of contents (``_toc.yml`` beside the ledger folder) where there is one, else by name."""
    d = Path(directory) if directory is not None else ledger_dir()
    out = {}
    for f in sorted(d.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        out[doc.get("chapter", f.stem)] = doc
    toc = d.parent / "_toc.yml"
    if toc.exists():
        text = toc.read_text()
        rank = {ch: (text.find(f"book/{ch}") if f"book/{ch}" in text else len(text)) for ch in out}
        out = dict(sorted(out.items(), key=lambda kv: rank[kv[0]]))
    return out


def problems_in(doc: dict[str, Any]) -> list[str]:
    """What is wrong with one ledger file's structure (fields, kinds, reasons, duplicate ids, todos left)."""
    name = doc.get("chapter", "?")
    out = [f"{name}: missing header field {k!r}" for k in sorted(_HEADER - set(doc))]
    ids = set()
    for i, item in enumerate(doc.get("items") or []):
        where = f"{name}: item {item.get('id', i)!r}"
        unknown = set(item) - _FIELDS
        if unknown:
            out.append(f"{where}: unknown field(s) {sorted(unknown)}")
        for field in ("id", "quote", "kind"):
            if not item.get(field):
                out.append(f"{where}: no {field!r}")
        if item.get("id") in ids:
            out.append(f"{where}: the id is used twice")
        ids.add(item.get("id"))
        if item.get("kind") not in KINDS:
            out.append(f"{where}: kind {item.get('kind')!r} is not one of {list(KINDS)}")
        if "todo" in item:
            out.append(f"{where}: a todo is left: {item['todo']}")
        reason = item.get("not_testable")
        if reason is not None:
            if reason not in REASONS:
                out.append(f"{where}: not_testable {reason!r} is not one of {list(REASONS)}")
            if not item.get("why"):
                out.append(f"{where}: not testable, but no 'why'")
            if item.get("claims"):
                out.append(f"{where}: not testable, yet it names claims")
        elif item.get("kind") == "setup":
            if not (item.get("params") or item.get("claims") or item.get("implemented_by")):
                out.append(f"{where}: a set-up fact needs 'params' (the parameters that carry it), 'implemented_by' "
                           f"(the object of the package that implements it), 'claims' or a reason")
            for ref in item.get("implemented_by") or []:
                if _resolve(ref) is None:
                    out.append(f"{where}: implemented_by {ref!r} does not name an object of the package")
        else:
            if not item.get("claims"):
                out.append(f"{where}: no claims decide it and no reason says why it cannot be tested")
            if not item.get("criterion"):
                out.append(f"{where}: no criterion")
        if item.get("differs") is not None and item["differs"] not in DIFFERS:
            out.append(f"{where}: differs {item['differs']!r} is not one of {list(DIFFERS)}")
    return out


def _claims_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: e for k, e in run.get("entries", {}).items() if e.get("kind") == "claim"}


def check(ledgers: dict[str, dict[str, Any]], runs: Iterable[dict[str, Any]]) -> list[str]:
    """Every mismatch between the ledger and the chapters' results files (empty when they agree).

    For each chapter that has both a ledger and a results file: an item names a claim key the run did not record;
    a claim the run recorded belongs to no item and is not marked as ours or as a consistency check; an
    experimental item (a claim, figure or table of the source) is decided by a consistency check. Plus the
    structural problems of every ledger (:func:`problems_in`).
    """
    out = [p for doc in ledgers.values() for p in problems_in(doc)]
    for run in runs:
        doc = ledgers.get(run["chapter"])
        if doc is None:
            continue
        claims = _claims_of(run)
        named = set()
        for item in doc.get("items") or []:
            for key in item.get("claims") or []:
                named.add(key)
                if key not in claims:
                    out.append(f"{run['chapter']}: item {item['id']!r} names the claim {key!r}, which the chapter did "
                               f"not record")
                elif item.get("kind") in _EXPERIMENTAL and claim_group(claims[key]) == "consistency":
                    out.append(f"{run['chapter']}: item {item['id']!r} ({item['kind']}) is decided by the consistency "
                               f"check {key!r}, which holds for any model")
        for key, e in claims.items():
            if key not in named and claim_group(e) not in ("ours", "consistency"):
                out.append(f"{run['chapter']}: the claim {key!r} ({claim_group(e)}) belongs to no ledger item; add it to "
                           f"an item or mark it as ours or as a consistency check")
    return out


def _resolve(ref: str) -> Any:
    """The object a dotted path (``vaemi.models.likelihoods.BernoulliLikelihood``) names, or None."""
    import importlib

    module, _, attr = ref.rpartition(".")
    for mod, rest in ((ref, []), (module, [attr])):
        try:
            obj = importlib.import_module(mod)
        except ImportError:
            continue
        for a in rest:
            obj = getattr(obj, a, None)
        if obj is not None:
            return obj
    return None


def _setup_verdict(item: dict[str, Any], params: dict[str, Any]) -> str:
    """Followed when the run's parameters have the source's values and every implementing object exists."""
    ok = all(params.get(k) == v for k, v in (item.get("params") or {}).items())
    ok = ok and all(_resolve(ref) is not None for ref in item.get("implemented_by") or [])
    return FOLLOWED if ok else CHANGED


def item_verdict(item: dict[str, Any], run: dict[str, Any] | None) -> str:
    """The item's verdict in one run (one of :data:`VERDICTS`): not testable (its reason), a set-up fact followed or
    changed (the run's parameters against the seed's values), else from its claims: reproduced when all hold, not
    reproduced when one fails, inconclusive when one is inconclusive and none fails, not evaluated otherwise (no
    run, a claim missing or not evaluated)."""
    if item.get("not_testable"):
        return NOT_TESTABLE
    if item.get("kind") == "setup" and not item.get("claims"):
        return _setup_verdict(item, (run or {}).get("params", {})) if run else NOT_EVALUATED
    if run is None:
        return NOT_EVALUATED
    claims = _claims_of(run)
    statuses = [claims[k]["status"] if k in claims else NOT_EVALUATED for k in item.get("claims") or []]
    if not statuses:
        return NOT_EVALUATED
    if FAILS in statuses:
        return NOT_REPRODUCED
    if INCONCLUSIVE in statuses:
        return INCONCLUSIVE
    if all(s == HOLDS for s in statuses):
        return REPRODUCED
    return NOT_EVALUATED


def _seed_runs(chapter: str, root: Path | None = None) -> tuple[str | None, list[dict[str, Any]]]:
    """The results files of the chapter's published seed sweep (``(name, runs)``; ``(None, [])`` when none)."""
    name = SEED_SWEEPS.get(chapter)
    if name is None:
        return None, []
    d = (Path(root) / "sweeps" / "results" / name) if root is not None else published_dir(name)
    files = sorted((d / "runs").glob("*.json")) if (d / "runs").is_dir() else []
    return (name if files else None), [json.loads(f.read_text()) for f in files]


def seed_tally(item: dict[str, Any], seed_runs: list[dict[str, Any]]) -> dict[str, int] | None:
    """In how many runs of a seed sweep the item was reproduced: ``{"held": n, "of": N, "inconclusive": k}``
    (N counts the runs whose verdict is decided or inconclusive); None for an item with no claims or no runs, or
    whose claims no run of the sweep evaluated (a record published before they existed)."""
    if not seed_runs or not item.get("claims"):
        return None
    verdicts = [item_verdict(item, r) for r in seed_runs]
    judged = [v for v in verdicts if v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)]
    if not judged:
        return None
    return {"held": sum(v == REPRODUCED for v in judged), "of": len(judged),
            "inconclusive": sum(v == INCONCLUSIVE for v in judged)}


def counts(items: list[dict[str, Any]]) -> dict[str, int]:
    """``{"items": n, <verdict>: n, ...}`` over exported items (each with its ``verdict``)."""
    out = {"items": len(items)}
    for v in VERDICTS:
        out[v] = sum(i["verdict"] == v for i in items)
    return out


def export(ledgers: dict[str, dict[str, Any]], runs: Iterable[dict[str, Any]], *, root: Path | None = None,
           commit: str | None = None) -> dict[str, Any]:
    """The whole ledger with every item's verdict in this build and over the published seeds: the content of
    ``ledger.json`` (schema: ``ledger/schema.json``)."""
    by_chapter = {r["chapter"]: r for r in runs}
    documents = []
    for chapter, doc in ledgers.items():
        run = by_chapter.get(chapter)
        sweep, seed_runs = _seed_runs(chapter, root)
        claims = _claims_of(run) if run else {}
        items = []
        for item in doc.get("items") or []:
            out = {k: item[k] for k in ("id", "quote", "kind", "criterion", "section", "not_testable", "why", "params",
                                        "implemented_by", "differs", "note", "seed_error") if item.get(k) is not None}
            out["claims"] = [{"key": k, "status": claims.get(k, {}).get("status", NOT_EVALUATED),
                              "group": claim_group(claims[k]) if k in claims else None,
                              "statement": claims.get(k, {}).get("statement"), "value": claims.get(k, {}).get("value"),
                              "paper": claims.get(k, {}).get("paper")} for k in item.get("claims") or []]
            out["verdict"] = item_verdict(item, run)
            tally = seed_tally(item, seed_runs)
            out["seeds"] = None if tally is None else {**tally, "sweep": sweep}
            items.append(out)
        documents.append({"seed": doc["seed"], "chapter": chapter, "document": doc["document"], "code": doc["code"],
                          "title": run["title"] if run else chapter, "profile": run["profile"] if run else None,
                          "reduced_data": (run or {}).get("meta", {}).get("reduced_data"),
                          "seed_sweep": sweep, "seed_sweep_runs": len(seed_runs), "counts": counts(items),
                          "items": items})
    every = [i for d in documents for i in d["items"]]
    return {"title": "Mutual information in variational autoencoders — reproduced: the replication ledger",
            "schema": "ledger/schema.json", "generated": _dt.date.today().isoformat(), "commit": commit,
            "verdicts": list(VERDICTS), "reasons": REASONS, "differs": DIFFERS, "kinds": KINDS,
            "totals": counts(every), "documents": documents}


def write_export(data: dict[str, Any], results: Path | str) -> Path:
    """Write ``data`` (:func:`export`) to ``<results>/ledger/ledger.json`` (strict JSON), where the build picks it up
    for the site (``_static/data/ledger.json``); returns the path."""
    path = Path(results) / "ledger" / "ledger.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


# --------------------------------------------------------------------------------------------------- pages
_BADGE = {REPRODUCED: "ok", NOT_REPRODUCED: "bad", INCONCLUSIVE: "warn", NOT_EVALUATED: "warn", NOT_TESTABLE: "na",
          FOLLOWED: "ok", CHANGED: "na"}


def _verdict_words(item: dict[str, Any]) -> str:
    v = item["verdict"]
    if v == REPRODUCED and item["kind"] == "derivation":
        return "verified"
    if v == NOT_TESTABLE:
        return f"not testable here: {REASONS[item['not_testable']]}"
    return v


def _seeds_words(item: dict[str, Any]) -> str:
    s = item.get("seeds")
    if not s:
        return "—"
    extra = f", {s['inconclusive']} inconclusive" if s["inconclusive"] else ""
    return f"{s['held']}/{s['of']}{extra}"


def headline_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per document (named by its chapter's title; the document's full name heads its section) and a
    total: items, reproduced, not reproduced, inconclusive or not evaluated, not testable here, set-up facts."""
    def row(name, c):
        return {"source (chapter)": name, "items": c["items"], "reproduced": c[REPRODUCED],
                "not reproduced": c[NOT_REPRODUCED], "inconclusive / not evaluated": c[INCONCLUSIVE] + c[NOT_EVALUATED],
                "not testable here": c[NOT_TESTABLE], "set-up facts (followed / changed)": f"{c[FOLLOWED]} / {c[CHANGED]}"}
    return [row(d["title"], d["counts"]) for d in data["documents"]] + [row("Total", data["totals"])]


def _table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table class='table ledger-headline'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: dict[str, Any], *, link_prefix: str = "") -> str:
    """The ledger page's body as HTML: the headline, then per document every item (id, the source's words, kind,
    criterion, our counterpart linked to the section that checks it, verdict, n/N over seeds, why it differs)."""
    out = ["<div class='ledger-page'>", _table(headline_rows(data))]
    for d in data["documents"]:
        out.append(f"<h2 id='ledger-{html.escape(d['chapter'])}'>{html.escape(d['document'])}</h2>")
        sweep = (f"over the {d['seed_sweep_runs']} runs of the published seed sweep <code>{html.escape(d['seed_sweep'])}"
                 f"</code>") if d["seed_sweep"] else "no published seed sweep yet"
        scale = f"profile <code>{html.escape(str(d['profile']))}</code>" + (
            f", on reduced data ({html.escape(d['reduced_data'])})" if d.get("reduced_data") else "")
        out.append(f"<p>Source file <code>{html.escape(d['seed'])}</code>; chapter "
                   f"<a href='{link_prefix}{html.escape(d['chapter'])}.html'>{html.escape(d['title'])}</a>; verdicts of "
                   f"the run that built this page ({scale}) and n/N {sweep}. Original code: {html.escape(d['code'])}.</p>")
        rows = []
        for i in d["items"]:
            parts = [f"<code>{html.escape(c['key'])}</code>" for c in i["claims"]]
            if i.get("params"):
                parts.append(f"parameters {html.escape(json.dumps(i['params']))}")
            parts += [f"<code>{html.escape(r)}</code>" for r in i.get("implemented_by") or []]
            counterpart = ", ".join(parts) or "—"
            if i.get("section"):
                counterpart += f" (<a href='{link_prefix}{html.escape(d['chapter'])}.html#{html.escape(i['section'])}'>section</a>)"
            why = ""
            if i.get("differs"):
                why = f"{DIFFERS[i['differs']]}" + (f": {i['note']}" if i.get("note") else "")
            if i.get("seed_error"):
                why += ("; " if why else "") + f"error in the source: {i['seed_error']}"
            if i.get("why"):
                why += ("; " if why else "") + i["why"]
            cells = [html.escape(i["id"]), html.escape(i["quote"]), KINDS[i["kind"]], html.escape(i.get("criterion", "—")),
                     counterpart, f"<span class='verdict verdict-{_BADGE[i['verdict']]}'>{html.escape(_verdict_words(i))}</span>",
                     _seeds_words(i), html.escape(why) or "—"]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("item", "the source's words", "kind", "criterion", "our counterpart",
                                                  "verdict", "seeds (n/N)", "why it differs"))
        out.append(f"<table class='table ledger'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    out.append("</div>")
    return "\n".join(out)


def summary_markdown(data: dict[str, Any], chapter: str) -> str:
    """The verdict of one document in one sentence with its counts, for the replication summary at the top of its
    chapter (linked to the ledger page)."""
    d = next(x for x in data["documents"] if x["chapter"] == chapter)
    c = d["counts"]
    testable = c["items"] - c[NOT_TESTABLE] - c[FOLLOWED] - c[CHANGED]
    return (f"Of the **{c['items']}** items of the source, **{testable}** can be tested here: "
            f"**{c[REPRODUCED]}** reproduced, **{c[NOT_REPRODUCED]}** not reproduced, "
            f"**{c[INCONCLUSIVE] + c[NOT_EVALUATED]}** inconclusive or not evaluated in this build; "
            f"{c[NOT_TESTABLE]} are not testable here and {c[FOLLOWED] + c[CHANGED]} are set-up facts "
            f"({c[FOLLOWED]} followed by this run). Every item, with its criterion and verdict, is in the "
            f"[replication ledger](ledger.md#ledger-{chapter}).")


def main(argv: list[str] | None = None) -> None:
    """``python -m vaemi.book.ledger check RESULTS_DIR [CHAPTER ...]``: exit 1 listing every mismatch (of the named
    chapters only, when some are named)."""
    from vaemi.book.records import load_all

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "check":
        raise SystemExit("usage: python -m vaemi.book.ledger check RESULTS_DIR [CHAPTER ...]")
    ledgers, runs = load(), load_all(args[1])
    if args[2:]:
        ledgers = {k: v for k, v in ledgers.items() if k in args[2:]}
        runs = [r for r in runs if r["chapter"] in args[2:]]
    problems = check(ledgers, runs)
    for p in problems:
        print(" -", p)
    print(f"{len(problems)} problem(s)")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
