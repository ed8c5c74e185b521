"""A PDF of the whole book, made offline from the built site: every page of the table of contents printed by a
headless Chromium (the browser renders MathJax and the figures exactly as on the site, from the site's own files),
then joined into one file with a bookmark per page (pypdf).

``python -m vaemi.book pdf`` (``make pdf``) after ``make book``; the PDF goes to ``_build/pdf/book.pdf``. LaTeX is not
needed (jupyter-book's LaTeX route needs a TeX installation, its ``pdfhtml`` route downloads a browser).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pypdf import PdfReader, PdfWriter

__all__ = ["chromium", "print_page", "build_pdf", "PAGE_BUDGET_MS"]

#: Virtual time a page gets to run its scripts (MathJax typesetting) before it is printed.
PAGE_BUDGET_MS = 8_000
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--run-all-compositor-stages-before-draw", "--no-pdf-header-footer"]


def chromium() -> str:
    """The Chromium (or Chrome) executable; SystemExit saying how to install it when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("[pdf] no Chromium found: install Debian's package (sudo apt-get install chromium) and run again")


def print_page(html: Path, pdf: Path, *, browser: str | None = None, budget_ms: int = PAGE_BUDGET_MS) -> Path:
    """Print one built page (``html``) to ``pdf`` with a headless Chromium, after its scripts ran."""
    with tempfile.TemporaryDirectory(prefix="vaemi-pdf-") as profile:
        cmd = [browser or chromium(), *_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
               f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode or not pdf.is_file() or pdf.stat().st_size == 0:
        raise SystemExit(f"[pdf] Chromium could not print {html.name}: {r.stderr[-2000:]}")
    return pdf


def build_pdf(html_dir: Path, pages: list[str], out: Path, *, browser: str | None = None) -> Path:
    """Print ``pages`` (toc paths without suffix, e.g. ``book/vmim``) of the site in ``html_dir`` and join them into
    ``out``, one bookmark per page (its title)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = PdfWriter()
    with tempfile.TemporaryDirectory(prefix="vaemi-pages-") as tmp:
        for i, page in enumerate(pages):
            html = html_dir / f"{page}.html"
            if not html.is_file():
                raise SystemExit(f"[pdf] {html} is missing: build the book first (make book)")
            part = print_page(html, Path(tmp) / f"{i:02d}.pdf", browser=browser)
            reader = PdfReader(part)
            start = len(writer.pages)
            for p in reader.pages:
                writer.add_page(p)
            title = (reader.metadata.title if reader.metadata and reader.metadata.title else page).split(" — ")[0]
            writer.add_outline_item(title=title, page_number=start)
            print(f"[pdf] {page}: {len(reader.pages)} pages", flush=True)
    writer.add_metadata({"/Title": "Mutual information in variational autoencoders — reproduced"})
    with open(out, "wb") as f:
        writer.write(f)
    return out
