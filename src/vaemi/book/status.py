"""The execution status page: how the book was executed, one row per chapter (profile, seed, wall time, models
trained / loaded from the cache / resumed, claims that hold of all, status), then the build's commit, date, machine
and versions. Generated from the chapters' results files at build time (``book/status.ipynb``)."""
from __future__ import annotations

import html
from typing import Any

from vaemi.book.results import ASSERTED_GROUPS, FAILS, HOLDS, INCONCLUSIVE, NOT_EVALUATED, claim_group

__all__ = ["rows", "render"]


def _status(run: dict[str, Any]) -> str:
    claims = [e for e in run["entries"].values() if e.get("kind") == "claim"]
    broken = [e for e in claims if claim_group(e) in ASSERTED_GROUPS and e.get("status") == FAILS]
    return "checks failed" if broken else "ok"


def rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per results file: ``chapter``, ``title``, ``profile``, ``seed``, ``minutes``, ``trained``, ``loaded``,
    ``resumed``, ``held``, ``claims``, ``inconclusive``, ``not_evaluated``, ``failed``, ``reduced_data``, ``status``,
    ``written``, ``commit``."""
    out = []
    for r in runs:
        claims = [e for e in r["entries"].values() if e.get("kind") == "claim"]
        models = r.get("meta", {}).get("model_counts") or {}
        out.append({"chapter": r["chapter"], "title": r["title"], "profile": r["profile"],
                    "seed": r.get("params", {}).get("seed"),
                    "minutes": r["entries"].get("chapter_minutes", {}).get("value"),
                    "trained": models.get("trained"), "loaded": models.get("loaded"), "resumed": models.get("resumed"),
                    "held": sum(e["status"] == HOLDS for e in claims), "claims": len(claims),
                    "inconclusive": sum(e["status"] == INCONCLUSIVE for e in claims),
                    "not_evaluated": sum(e["status"] == NOT_EVALUATED for e in claims),
                    "failed": sum(e["status"] == FAILS for e in claims),
                    "reduced_data": r.get("meta", {}).get("reduced_data"), "status": _status(r),
                    "written": r.get("written"), "commit": r.get("commit")})
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.1f}"
    return html.escape(str(v))


def render(runs: list[dict[str, Any]]) -> str:
    """The status page's body as HTML."""
    table = rows(runs)
    head = ["chapter", "profile", "seed", "wall time (min)", "models trained / loaded / resumed",
            "claims that hold", "status", "written (UTC)"]
    body = []
    for r in table:
        models = "—" if r["trained"] is None else f"{r['trained']} / {r['loaded']} / {r['resumed']}"
        held = f"{r['held']} of {r['claims']}" + "".join(
            f"; {r[k]} {w}" for k, w in (("failed", "fail"), ("inconclusive", "inconclusive"),
                                         ("not_evaluated", "not evaluated")) if r[k])
        profile = _cell(r["profile"]) + (" (reduced data)" if r["reduced_data"] else "")
        cells = [f"<a href='{html.escape(r['chapter'])}.html'>{html.escape(r['title'])}</a>", profile, _cell(r["seed"]),
                 _cell(r["minutes"]), models, held, _cell(r["status"]), _cell(r["written"])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    total = sum(r["minutes"] or 0 for r in table)
    out = ["<div class='status-page'>",
           "<table class='table status'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
           + "".join(body) + "</tbody></table>",
           f"<p>Chapters' wall time in all: {total:.1f} min (execution only; a chapter whose cells, parameters and code "
           f"did not change since the last build is not executed again, and its row shows that earlier run).</p>"]
    env = [("commit", {r["commit"] for r in runs}), ("machine", {r.get("meta", {}).get("machine") for r in runs}),
           ("device", {r.get("meta", {}).get("device") for r in runs}),
           ("Python", {r.get("python") for r in runs}),
           ("torch", {(r.get("meta", {}).get("versions") or {}).get("torch") or r.get("meta", {}).get("torch_version")
                      for r in runs}),
           ("CUDA", {(r.get("meta", {}).get("versions") or {}).get("cuda") or "none (CPU build of torch)" for r in runs})]
    items = "".join(f"<li><strong>{name}</strong>: {', '.join(html.escape(str(v)) for v in sorted(vals, key=str) if v) or '—'}</li>"
                    for name, vals in env)
    out.append(f"<p>Built with:</p><ul>{items}</ul></div>")
    return "\n".join(out)
