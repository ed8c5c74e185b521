"""A sweep's tables: ``numbers.csv`` (mean, std and n of every recorded number per grid point), ``claims.csv``
(in how many runs each claim held, per grid point) and ``robustness.png`` (:func:`aggregate`)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

from vaemi.book.records import MANIFEST, SEED, hashable

__all__ = ["aggregate", "plot_robustness"]


# ---------------------------------------------------------------------------------------------- tables
def _grid_names(meta: dict[str, Any]) -> tuple[list[str], list[str]]:
    names = list(meta.get("grid", {}))
    return names, [n for n in names if n != SEED]


def _point_label(row: dict[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{n}={row[n]}" for n in names) or "all"


def aggregate(out: str | Path, number: str | None = None) -> dict[str, Any]:
    """Aggregate a sweep's runs into ``numbers.csv``, ``claims.csv`` and ``robustness.png``.

    Only runs whose folder holds the chapter's results file count (a run that failed before the chapter
    saved its results does not).

    Parameters
    ----------
    out : str or Path
        The sweep's folder (with ``manifest.json``).
    number : str, optional
        The number drawn against the first swept non-seed parameter in ``robustness.png``; default: the
        first number whose mean changes along the grid.

    Returns
    -------
    dict
        ``{"numbers": DataFrame, "claims": DataFrame, "runs": int, "plot": Path or None}``. ``numbers``:
        one row per grid point and number, with ``mean``, ``std`` (ddof 1; empty when n = 1) and ``n``.
        ``claims``: one row per grid point and claim, with ``held``, ``failed``, ``inconclusive``, ``not_evaluated``,
        ``missing`` (runs without the claim), ``n`` (runs with results) and ``share_held``.
    """
    import pandas as pd

    out = Path(out)
    meta = json.loads((out / MANIFEST).read_text())
    chapter = meta["chapter"]
    names, point_names = _grid_names(meta)
    nums, claims, n_runs = [], [], {}
    for m in meta["runs"]:
        f = out / m["name"] / f"{chapter}.json"
        if not f.is_file():
            continue
        res = json.loads(f.read_text())
        point = {k: hashable(m["point"][k]) for k in point_names}
        label = _point_label(point, point_names)
        n_runs[label] = n_runs.get(label, 0) + 1
        for key, e in res.get("entries", {}).items():
            if e.get("kind") == "number":
                v = e.get("value")
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    nums.append({"point": label, **point, "number": key, "value": float(v)})
            elif e.get("kind") == "claim":
                claims.append({"point": label, **point, "claim": key, "status": e.get("status"),
                               "statement": e.get("statement")})
    keys = ["point", *point_names]
    if nums:
        nt = pd.DataFrame(nums)
        numbers = (nt.groupby(keys + ["number"], sort=False, dropna=False)["value"]
                   .agg(mean="mean", std="std", n="count").reset_index())
    else:
        numbers = pd.DataFrame(columns=keys + ["number", "mean", "std", "n"])
    rows = []
    if claims:
        ct = pd.DataFrame(claims)
        for (label, claim), g in ct.groupby(["point", "claim"], sort=False):
            n = n_runs[label]
            held = int((g.status == "holds").sum())
            rows.append({"point": label, **{k: g.iloc[0][k] for k in point_names}, "claim": claim,
                         "held": held, "failed": int((g.status == "fails").sum()),
                         "inconclusive": int((g.status == "inconclusive").sum()),
                         "not_evaluated": int((g.status == "not evaluated").sum()), "missing": n - len(g), "n": n,
                         "share_held": held / n, "statement": g.iloc[0].statement})
    claims_t = pd.DataFrame(rows, columns=keys + ["claim", "held", "failed", "inconclusive", "not_evaluated", "missing", "n",
                                                  "share_held", "statement"])
    numbers.to_csv(out / "numbers.csv", index=False)
    claims_t.to_csv(out / "claims.csv", index=False)
    plot = plot_robustness(out, claims_t, numbers, point_names, number) if len(claims_t) or len(numbers) else None
    return {"numbers": numbers, "claims": claims_t, "runs": sum(n_runs.values()), "plot": plot}


def _default_number(numbers, param: str) -> str | None:
    skip = re.compile(r"(_minutes|_used|_n|_shown)$")
    for name, g in numbers.groupby("number", sort=False):
        if skip.search(name) or len(g) < 2:
            continue
        if g["mean"].nunique() > 1:
            return name
    return None


def plot_robustness(out: str | Path, claims, numbers, point_names: Sequence[str], number: str | None = None) -> Path:
    """Draw ``robustness.png``: the share of runs in which each claim held, per grid point (a heatmap
    annotated ``held/n``), and, when a numeric non-seed parameter is swept, one number (mean ± std over
    the seeds) against it.

    Parameters
    ----------
    out : str or Path
        The sweep's folder.
    claims, numbers : pandas.DataFrame
        The tables of :func:`aggregate`.
    point_names : sequence of str
        The swept parameters other than the seed.
    number : str, optional
        The number to draw; default: the first that changes along the grid.

    Returns
    -------
    Path
        The PNG written.
    """
    import numpy as np
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    param = next((p for p in point_names
                  if pd.api.types.is_numeric_dtype(numbers[p]) and numbers[p].nunique() > 1), None) \
        if len(numbers) else None
    if param is not None and number is None:
        number = _default_number(numbers, param)
    two = param is not None and number is not None and number in set(numbers["number"])
    n_claims = max(1, claims["claim"].nunique()) if len(claims) else 1
    n_points = max(1, claims["point"].nunique()) if len(claims) else 1
    fig = Figure(figsize=(max(5.0, 1.3 * n_points + 4.5) + (5.0 if two else 0), 1.2 + 0.32 * n_claims))
    axes = fig.subplots(1, 2 if two else 1, squeeze=False, gridspec_kw={"width_ratios": [1.3, 1] if two else [1]})[0]
    ax = axes[0]
    if len(claims):
        share = claims.pivot_table(index="claim", columns="point", values="share_held", sort=False)
        share = share[list(dict.fromkeys(claims["point"]))]
        held = claims.pivot_table(index="claim", columns="point", values="held", sort=False).reindex_like(share)
        n = claims.pivot_table(index="claim", columns="point", values="n", sort=False).reindex_like(share)
        annot = held.astype(int).astype(str) + "/" + n.astype(int).astype(str)
        sns.heatmap(share, ax=ax, vmin=0, vmax=1, cmap="RdYlGn", annot=annot.values, fmt="", cbar=True,
                    cbar_kws={"label": "share of runs in which the claim held"}, linewidths=0.5)
        ax.set_xlabel(", ".join(point_names) if point_names else "all runs")
        ax.set_ylabel("")
        ax.set_title("claim robustness: runs in which each claim held")
    if two:
        g = numbers[numbers["number"] == number].sort_values(param)
        ax2 = axes[1]
        others = [p for p in point_names if p != param]
        for label, gg in (g.groupby(others, sort=False) if others else [("", g)]):
            ax2.errorbar(gg[param], gg["mean"], yerr=np.nan_to_num(gg["std"].to_numpy(dtype=float)), marker="o",
                         capsize=4, label=str(label) if others else None)
        if others:
            ax2.legend(title=", ".join(others))
        ax2.set_xlabel(param)
        ax2.set_ylabel(number)
        ax2.set_title(f"{number}: mean ± std over seeds (n = {int(g['n'].max())})")
    fig.tight_layout()
    path = Path(out) / "robustness.png"
    fig.savefig(path, dpi=110)
    return path
