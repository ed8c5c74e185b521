"""Numbers typed into a chapter's prose.

Every number, parameter value and verdict in the text must come from the run (a ``{glue:...}`` role) or be quoted as
the source's. :func:`typed_numbers` finds the numerals of a Markdown cell that are neither; the test suite runs it on
every chapter (and the ablation notebooks) and fails on any it finds.

What is not a typed number:

* math (``$...$``, ``$$...$$``), code (inline and fenced), MyST roles and directives (``{glue:text}`key:.2f```,
  ``{cite}``, ``{ref}``, ``{eq}``, labels ``(name)=``), links' targets;
* a reference to a numbered thing of a source or of the book: ``eq. 4.9``, ``eqs. 3-4``, ``Fig. 2``, ``Table 1``,
  ``§4.5``, ``Algorithm 1``, ``Lemma 1``, ``section 3``, ``chapter 4``, ``Appendix A``, a numbered heading (``## 3.``),
  a list item's number;
* a year (1900-2099), a dataset or model name with digits (``CIFAR-10``, ``Inception-v3``), a seed file's number;
* the source's own words: a number inside quotation marks ("...", “...”) is the source's, quoted.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["typed_numbers", "notebook_typed_numbers", "NAMES_WITH_DIGITS"]

#: Names that contain digits and are not numbers.
NAMES_WITH_DIGITS = ("CIFAR-10", "CIFAR10", "Inception-v3", "InceptionV3", "Fashion-MNIST", "L2", "L1", "β-VAE",
                     "2S-VAE", "2-D", "1-D", "3-D", "8-D", "4x4", "3x3", "x2", "log2", "torch.float64", "float64",
                     "float32", "β_H", "β_A", "Adam", "ReLU", "N(0,", "N(0, 1)", "N(0,I)", "H100", "s2")
_STRIP = [
    (r"```.*?```", re.S), (r"\$\$.*?\$\$", re.S), (r"\$[^$\n]*\$", 0), (r"`[^`]*`", 0),  # code, math, roles' targets
    (r"\{[a-z:]+\}", 0),  # the role names whose targets the line above removed
    (r"^\(\S+\)=\s*$", re.M),  # MyST labels
    (r"\]\([^)]*\)", 0),  # link targets
    (r"<[^>]+>", 0),  # HTML tags
    (r"“[^”]*”", 0), (r'"[^"\n]*"', 0),  # the source's words, quoted
    (r"^\s*:[a-z_-]+:.*$", re.M),  # directive options (:name:, :class:)
    (r"^#+\s*\d+(\.\d+)*\.?", re.M),  # a numbered heading
    (r"^\s*\d+\.\s", re.M),  # a numbered list item
    (r"\(\d+(?:\.\d+)*[a-z]?\)", 0),  # an equation number, (3) or (4.9)
]
_REFERENCE = re.compile(
    r"(?:\b(?:eqs?|Eqs?|Figs?|figs?|Figures?|figures?|Tables?|tables?|Algorithms?|Lemmas?|Theorems?|Definitions?|"
    r"[Ss]ections?|[Cc]hapters?|ch|Appendix|[Ss]teps?|[Ee]xp(?:eriment)?s?|[Ll]ines?|[Pp]ages?|[Ii]ssues?|[Ss]eeds?|"
    r"Tables?\s+\d+\s*(?:and|–|-)|eq\.\s*\(|Props?)\.?\s*\(?)"
    r"\d+(?:\.\d+)*[a-z]?(?:\s*(?:[-–,]|and|to)\s*\d+(?:\.\d+)*[a-z]?)*\)?"
    r"|§\s*\d+(?:\.\d+)*(?:\s*[-–]\s*\d+(?:\.\d+)*)?")
_YEAR = re.compile(r"\b(?:19|20)\d\d[a-z]?\b")
_NAME = re.compile(r"\b[A-Z][A-Za-z]*-\d+[a-z]?\b")  # GEN-2, CIFAR-10, MNIST-10: names, not numbers
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?%?")


def typed_numbers(markdown: str) -> list[str]:
    """The numerals of ``markdown`` that are neither glued from the run nor quoted, referenced or named (see the
    module docstring); each with a little of its context."""
    text = markdown
    for pattern, flags in _STRIP:
        text = re.sub(pattern, " ", text, flags=flags)
    for name in NAMES_WITH_DIGITS:
        text = text.replace(name, " ")
    text = _REFERENCE.sub(" ", text)
    text = _YEAR.sub(" ", text)
    text = _NAME.sub(" ", text)
    out = []
    for m in _NUMBER.finditer(text):
        a, b = max(m.start() - 30, 0), min(m.end() + 30, len(text))
        out.append(" ".join(text[a:b].split()))
    return out


def notebook_typed_numbers(path: str | Path) -> list[tuple[int, str]]:
    """``(cell index, context)`` of every typed number in the Markdown cells of a notebook."""
    cells = json.loads(Path(path).read_text())["cells"]
    out = []
    for i, c in enumerate(cells):
        if c["cell_type"] == "markdown":
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            out += [(i, hit) for hit in typed_numbers(src)]
    return out
