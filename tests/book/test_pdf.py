"""The PDF of the whole book (``make pdf``): built offline from the strict smoke site by a headless Chromium, with
every page of the table of contents, every chapter's title, and no raw TeX or unrendered role in its text."""
import json
import re
import shutil

import pytest
from pypdf import PdfReader

from conftest import ROOT
from vaemi.book import build as book
from vaemi.book.pdf import build_pdf

pytestmark = pytest.mark.slow  # prints every page of the smoke site: about a minute


def test_pdf_of_the_whole_book(smoke_site, tmp_path):
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no headless browser: install Debian's 'chromium' (the CI script does) to build the PDF")
    html = smoke_site[0] / "_build" / "html"
    pages = book.toc_files(ROOT)
    pdf = build_pdf(html, pages, tmp_path / "book.pdf")
    reader = PdfReader(pdf)
    assert len(reader.pages) >= 3 * len(pages), f"{len(reader.pages)} pages for {len(pages)} documents"
    assert len(reader.outline) == len(pages)  # one bookmark per page of the book
    text = "\n".join(p.extract_text() for p in reader.pages)
    flat = " ".join(text.split())  # a title may wrap over two lines
    for nb in book.notebooks(ROOT):
        title = re.search(r"^# (.+)$", "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"][:1]), re.M)
        assert title and " ".join(title.group(1).split(":")[0].split()) in flat, f"{nb.stem}: its title is not in the PDF"
    for raw in ("$$", "\\begin{", "{glue", "{doc}", "{ref}", "{cite", "{eq}", ":::"):
        assert raw not in text, f"the PDF shows {raw!r} (unrendered)"
