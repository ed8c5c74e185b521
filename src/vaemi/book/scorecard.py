"""The scorecard page: every chapter's results file, laid out for a reader.

A headline (per chapter and in total: the source's claims reproduced, not reproduced, derivation checks
exact, our additional checks), then per chapter the data provenance (dataset, split sizes, origin; never a
path), the run (profile, date, commit) and the claims grouped by kind, each with the source's statement
and number, ours formatted for people, a verdict in words and a link to the section that checks it; last,
every claim that did not reproduce.

The page is HTML produced here (:func:`render`), so the notebook ``book/scorecard.ipynb`` is three lines.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from vaemi.book.build import toc_files
from vaemi.book.ledger import headline_rows
from vaemi.book.results import FAILS, GROUPS, HOLDS, INCONCLUSIVE, NOT_EVALUATED, claim_group

__all__ = ["fmt", "claim_anchors", "headline", "render"]

_VERDICT = {HOLDS: "holds", FAILS: "does not hold", INCONCLUSIVE: "inconclusive", NOT_EVALUATED: "not evaluated"}




def fmt(v: Any, digits: int = 4) -> str:
    """A value for people: 4 significant digits, lists as ``a → b → c``, dicts as ``key value, ...``."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        items = [fmt(x, digits) for x in v]
        if len(items) > 8:
            items = items[:6] + ["…", items[-1]]
        return " → ".join(items) if all(not isinstance(x, (list, dict)) for x in v) else "; ".join(items)
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt(x, digits)}" for k, x in v.items())
    return str(v)


def claim_anchors(book_dir: str | Path) -> dict[str, dict[str, str]]:
    """``{chapter: {claim key (or regex for f-string keys): section label}}`` from the notebooks:
    the MyST label ``(label)=`` of the section in which each ``R.claim(...)`` is made."""
    out: dict[str, dict[str, str]] = {}
    for nb in sorted(Path(book_dir).glob("*.ipynb")):
        try:
            cells = json.loads(nb.read_text())["cells"]
        except (ValueError, KeyError):
            continue
        label, keys = None, {}
        for c in cells:
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            if c["cell_type"] == "markdown":
                found = re.findall(r"^\(([\w-]+)\)=\s*$", src, flags=re.M)
                if found:
                    label = found[-1]
            elif c["cell_type"] == "code" and label:
                for m in re.finditer(r"R\.claim\(\s*(f?)\"([^\"]+)\"", src):
                    key = m.group(2)
                    if m.group(1):  # an f-string key: match it as a pattern
                        key = "re:" + re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(key))
                    keys[key] = label
        out[re.sub(r"^\d+_", "", nb.stem)] = keys  # the test suite's copies are numbered: 00_vae_basics
    return out


def _anchor(anchors: dict[str, str], key: str) -> str | None:
    if key in anchors:
        return anchors[key]
    for k, label in anchors.items():
        if k.startswith("re:") and re.fullmatch(k[3:], key):
            return label
    return None


def _claims(run: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, e) for k, e in run["entries"].items() if e["kind"] == "claim"]


def _counts(run: dict[str, Any]) -> dict[str, int]:
    c = {"source_held": 0, "source_not": 0, "source_unevaluated": 0, "derivation_held": 0, "derivation": 0,
         "consistency_held": 0, "consistency": 0, "ours_held": 0, "ours": 0}
    for _, e in _claims(run):
        g, st = claim_group(e), e.get("status")
        if g == "source":
            c["source_held" if st == HOLDS else ("source_not" if st == FAILS else "source_unevaluated")] += 1
        else:
            c[g] += 1
            c[f"{g}_held"] += st == HOLDS
    return c


def headline(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per chapter and a total: how much of each source reproduces."""
    rows = []
    for r in runs:
        c = _counts(r)
        rows.append({"chapter": r["title"], "id": r["chapter"], **c})
    total = {k: sum(row[k] for row in rows) for k in rows[0] if k not in ("chapter", "id")} if rows else {}
    return rows + ([{"chapter": "All chapters", "id": "", **total}] if rows else [])


def _provenance(run: dict[str, Any]) -> str:
    meta = run.get("meta", {})
    parts = []
    for name, d in (meta.get("datasets") or {}).items():
        parts.append(f"{d.get('dataset', name)} {d.get('split', '')} {fmt(d.get('n'))} ({d.get('origin', '?')})")
    data = "; ".join(parts) or meta.get("data_source") or "no dataset (exact and Monte Carlo checks only)"
    reduced = meta.get("reduced_data")
    if reduced:
        data = f"<strong>REDUCED DATA</strong> ({html.escape(reduced)}): not comparable with the paper. " \
               + html.escape(data)
    else:
        data = html.escape(data)
    commit = run.get("commit") or "unknown"
    return (f"<p class='scorecard-run'>Data: {data}.<br>Run: profile <code>{html.escape(run['profile'])}</code>, "
            f"written {html.escape(str(run.get('written', '?')))}, commit <code>{html.escape(commit)}</code>, "
            f"{fmt(run['entries'].get('chapter_minutes', {}).get('value'))} min.</p>")


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='table scorecard'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(e: dict[str, Any]) -> str:
    st = e.get("status", NOT_EVALUATED)
    word = _VERDICT.get(st, st)
    asserted = "asserted (a failure fails the build)" if e.get("asserted") else "a verdict, not asserted"
    return f"<span class='verdict verdict-{st.replace(' ', '-')}'><strong>{word}</strong></span><br><small>{asserted}</small>"


def _book_order(runs: list[dict[str, Any]], book_dir: Path) -> list[dict[str, Any]]:
    """The runs in the order of the book's table of contents (``_toc.yml`` above ``book_dir``), if found."""
    for toc in (book_dir / "_toc.yml", book_dir.parent / "_toc.yml"):
        if toc.exists():

            order = [f.split("/")[-1] for f in toc_files(toc.parent)]
            return sorted(runs, key=lambda r: order.index(r["chapter"]) if r["chapter"] in order else len(order))
    return runs


def render(runs: list[dict[str, Any]], book_dir: str | Path, ledger_data: dict[str, Any] | None = None) -> str:
    """The whole scorecard as HTML (links are relative to the chapter pages beside it), chapters in the
    order of the book; led by the replication ledger's headline (``ledger_data``, :func:`vaemi.book.ledger.export`)."""
    runs = _book_order(runs, Path(book_dir).resolve())
    anchors = claim_anchors(book_dir)
    out = ["<div class='scorecard-page'>"]
    if ledger_data is not None:
        out.append("<h3 id='sc-ledger'>Every item of the sources</h3>")
        out.append("<p>Items of the five documents (equations, figures, tables, experimental statements, set-up facts) "
                   "and their verdicts in this build; each is listed with its criterion in the "
                   "<a href='ledger.html'>replication ledger</a>.</p>")
        out.append(ledger_headline_table(ledger_data))
        out.append("<h3 id='sc-claims'>Claims by chapter</h3>")
    head = headline(runs)
    rows = [[(f"<a href='{h['id']}.html'>{html.escape(h['chapter'])}</a>" if h["id"] else f"<strong>{h['chapter']}</strong>"),
             f"{h['source_held']} of {h['source_held'] + h['source_not'] + h['source_unevaluated']}",
             str(h["source_not"]) + (f" (+{h['source_unevaluated']} not evaluated)" if h["source_unevaluated"] else ""),
             f"{h['derivation_held']} of {h['derivation']}", f"{h['consistency_held']} of {h['consistency']}",
             f"{h['ours_held']} of {h['ours']}"] for h in head]
    out.append(_table(rows, ["chapter", "source claims reproduced", "not reproduced",
                             "derivation checks that hold", "consistency checks that hold (not counted)",
                             "our additional checks that hold"]))
    failed = []
    for r in runs:
        out.append(f"<h3 id='sc-{r['chapter']}'>{html.escape(r['title'])}</h3>")
        out.append(_provenance(r))
        for group, title in GROUPS.items():
            rows = []
            for key, e in _claims(r):
                if claim_group(e) != group:
                    continue
                label = _anchor(anchors.get(r["chapter"], {}), key)
                where = f"{r['chapter']}.html" + (f"#{label}" if label else "")
                rows.append([f"{html.escape(e['statement'])}<br><small><a href='{where}'>where it is checked</a></small>",
                             html.escape(fmt(e.get("paper"))), html.escape(fmt(e.get("value"))), _verdict(e)])
                if group == "source" and e.get("status") != HOLDS:
                    failed.append((r, e, where))
            if rows:
                out.append(f"<h4>{title}</h4>")
                out.append(_table(rows, ["claim", "source", "ours", "verdict"]))
    out.append("<h3 id='sc-not-reproduced'>Claims of the sources that did not reproduce</h3>")
    if failed:
        rows = [[html.escape(r["title"]), f"{html.escape(e['statement'])}<br><small><a href='{where}'>the chapter's "
                 f"discussion</a></small>", html.escape(fmt(e.get("paper"))), html.escape(fmt(e.get("value"))),
                 _verdict(e)] for r, e, where in failed]
        out.append(_table(rows, ["chapter", "claim", "source", "ours", "verdict"]))
    else:
        out.append("<p>None: every claim of the sources held in this build.</p>")
    out.append("</div>")
    return "\n".join(out)


def ledger_headline_table(data: dict[str, Any]) -> str:
    """The ledger's headline (:func:`vaemi.book.ledger.headline_rows`) as a scorecard table."""
    rows = headline_rows(data)
    return _table([[html.escape(str(v)) for v in r.values()] for r in rows], list(rows[0]))
