"""What every chapter does first: validate its parameters against its schema, then set itself up (seeds, plotting
style, device, the results collector, the data it cannot do without).

Each chapter module declares one :class:`Chapter` (its id, title, parameter schema and cross-parameter checks).
The notebook's ``parameters`` cell stays papermill's source of defaults and of ``--help-notebook``; the schema says
what each value may be, once (a test holds the two to each other). The notebook then needs two calls::

    params = chapter.validate(globals())        # fails in seconds, naming the parameter, before any data
    R, device = chapter.start(params, data=["mnist"])
    ...
    chapter.finish(R)                            # the last cell: results file, replication summary, assertions
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from vaemi.book import ledger
from vaemi.book.machine import machine, versions
from vaemi.book.params import Choice, validate
from vaemi.book.records import seed_robustness
from vaemi.book.results import ASSERTED_GROUPS, Results, glue_markdown
from vaemi.chapters.figures import set_style
from vaemi.data import ORIGIN_FALLBACK, planned_origin
from vaemi.train import resolve_device, seed_everything
from vaemi.train.variants import FITS, fit_counts

__all__ = ["Chapter", "PROFILE", "expect_data"]

#: The ``profile`` parameter of every chapter: the name of the parameter set, stored with the results.
PROFILE = Choice(["smoke", "book", "paper", "custom"])


@dataclass(frozen=True)
class Chapter:
    """A chapter's identity and parameter schema.

    Parameters
    ----------
    name : str
        Short id: the notebook's stem and the results file's name.
    title : str
        Human-readable title (the scorecard shows it).
    schema : mapping of str to checker
        Every parameter of the notebook's ``parameters`` cell with what it may be (:mod:`vaemi.book.params`).
    checks : sequence of callables
        Cross-parameter checks, each called with the validated parameters; they raise
        :class:`vaemi.book.params.ParameterError` (via :func:`vaemi.book.params.require`).
    """

    name: str
    title: str
    schema: Mapping[str, Any]
    checks: Sequence[Callable[[dict[str, Any]], None]] = field(default_factory=tuple)

    def validate(self, values: Mapping[str, Any], injected: Sequence[str] | None = None) -> dict[str, Any]:
        """Check every parameter (typically ``globals()`` of the notebook) and the cross-parameter rules;
        return the validated parameters. A name injected by papermill that the schema does not define is an
        error naming the closest parameter."""
        params = validate(values, self.schema, injected=injected)
        for check in self.checks:
            check(params)
        return params

    def start(self, params: dict[str, Any], *, data: str | Sequence[str] | None = None) -> tuple[Results, torch.device]:
        """Set the chapter up: seed every sampler (``params["seed"]``), set the plotting style, pick the device,
        create the :class:`~vaemi.book.results.Results` (with the device, the torch version and the chapter's
        clock), and say which data the chapter will run on (:func:`expect_data`, for each dataset in ``data``
        that the chapter cannot do without: a missing one stops here, before any work, unless it is MNIST and
        ``params["allow_fallback"]``). Returns the results and the device."""
        set_style()
        seed_everything(params.get("seed", 0))
        results = Results(self.name, self.title, params, profile=params.get("profile", "custom"))
        device = resolve_device()
        results.set_meta(device=str(device), torch_version=torch.__version__, machine=machine(), versions=versions())
        FITS.clear()  # the models this chapter trains or loads (recorded by finish)
        results.started = time.perf_counter()
        results.seed_tally = seed_tally(self.name)
        for name in [data] if isinstance(data, str) else (data or []):
            expect_data(results, name, allow_fallback=params.get("allow_fallback", True))
        return results, device

    def finish(self, results: Results):
        """The chapter's last cell: glue the replication summary of this run (``ledger_summary``: the source's items
        and their verdicts, from ``ledger/<chapter>.yaml``, for the summary at the top of the page), then
        :meth:`Results.finish` (write the results file, show every claim, assert the derivation and consistency
        checks). Returns the table of claims."""
        results.meta["model_counts"] = fit_counts()
        docs = ledger.load()
        if self.name in docs:
            data = ledger.export({self.name: docs[self.name]}, [results.to_dict()])
            results.set_meta(ledger_counts=data["documents"][0]["counts"])
            glue_markdown("ledger_summary", ledger.summary_markdown(data, self.name))
        else:
            glue_markdown("ledger_summary", "This chapter has no ledger file (`ledger/<chapter>.yaml`) yet.")
        table = results.finish()
        if results.seed_tally and len(table):
            table["held over seeds"] = [results.seed_tally.get(k, "") if g not in ASSERTED_GROUPS else ""
                                        for k, g in zip(table["claim"], table["group"])]
        return table


def seed_tally(chapter: str) -> dict[str, str]:
    """How often each claim of ``chapter`` held over its published seed sweep (:data:`vaemi.book.ledger.SEED_SWEEPS`):
    ``{claim key: "3 of 4"}`` (with ", 1 inconclusive" where some were); empty when none is published."""
    name = ledger.SEED_SWEEPS.get(chapter)
    try:
        table, _ = seed_robustness(name) if name else (None, None)
    except FileNotFoundError:
        return {}
    if table is None:
        return {}
    return {r.claim: f"{r.held} of {r.n}" + (f", {r.inconclusive} inconclusive" if r.inconclusive else "")
            for r in table.itertuples() if r.n}


def expect_data(results: Results, name: str = "mnist", *, allow_fallback: bool = True) -> str:
    """Say, before any training, which data the chapter will run on.

    When the dataset's files are missing and cannot be downloaded, the packaged fallback stands in
    (``allow_fallback``, MNIST only): a banner is shown at this place of the page and the chapter's estimates are
    recorded, not asserted (:meth:`Results.mark_reduced`). When the fallback is not allowed (the paper profile),
    :class:`vaemi.data.DatasetNotFoundError` is raised here, before any work, saying which files to put where.
    Returns the origin that will be used.
    """
    origin = planned_origin(name, allow_fallback=allow_fallback)
    results.meta.setdefault("data_planned", {})[name] = origin
    if origin == ORIGIN_FALLBACK:
        results.mark_reduced(f"{name}: the 5,000-digit packaged fallback stands in for the full dataset")
    return origin
