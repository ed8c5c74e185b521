"""The built site as a reader meets it (the strict smoke build of ``conftest.smoke_site``): every image there,
no path of the build machine, nothing unrendered, every chapter with its page, figures and scorecard section,
every claim link resolving, nothing fetched from outside the site; and, where Debian's chromium is installed,
a real browser with the network off that renders every equation."""
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import ROOT
from vaemi.book import build as book

pytestmark = pytest.mark.slow  # kernels, builds or clusters: minutes; left out of `-m 'not slow'`


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.scripts, self.styles, self.links, self.ids, self.text = [], [], [], [], set(), []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "script":
            self._skip += 1
            if a.get("src"):
                self.scripts.append(a["src"])
        elif tag in ("style", "pre"):  # code blocks may hold TeX in strings (plot labels)
            self._skip += 1
        elif tag == "link" and "stylesheet" in (a.get("rel") or "") and a.get("href"):
            self.styles.append(a["href"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "pre") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text())
    p.visible = " ".join(p.text)
    return p


@pytest.fixture(scope="module")
def site(smoke_site):
    out = smoke_site[0]
    html = out / "_build" / "html"
    pages = {p: _parse(p) for p in html.rglob("*.html") if "_static" not in p.parts}
    return out, html, pages


def test_every_image_exists_and_is_not_empty(site):
    _, html, pages = site
    for page, p in pages.items():
        for src in p.images:
            if src.startswith("data:"):
                continue
            assert not urlparse(src).scheme, f"{page.name}: image from outside the site: {src}"
            f = (page.parent / unquote(urlparse(src).path)).resolve()
            assert f.is_file() and f.stat().st_size > 0, f"{page.name}: missing or empty image {src}"


def test_no_path_of_the_build_machine(site):
    out, html, pages = site
    machine = {str(ROOT), str(out), str(Path.home()), os.environ.get("VAEMI_DATA", str(ROOT)), "/tmp/pytest-of-"}
    for page in pages:
        text = page.read_text()
        for path in machine:
            assert path not in text, f"{page.relative_to(html)} shows a path of the build machine: {path}"


#: Role or directive text that only shows when MyST did not render it (e.g. a glue role inside inline code).
LEFTOVERS = re.compile(r"\{(glue(:[a-z]+)?|cite(:[a-z]+)?|ref|numref|doc|eq|download|term)\}|^\s*:::|```\{", re.M)


def test_nothing_unrendered(site):
    _, html, pages = site
    for page, p in pages.items():
        m = LEFTOVERS.search(p.visible)
        assert not m, f"{page.relative_to(html)}: unrendered role or directive {m.group(0)!r}: ...{p.visible[max(m.start() - 60, 0):m.end() + 60]}..."
        assert "Traceback (most recent call last)" not in p.visible, f"{page.relative_to(html)}: a traceback"


def test_the_unrendered_check_catches_a_glue_role_in_inline_code():
    page = _Page()
    page.feed("<p>x_tilde = <code>{glue:text}</code><code>x_tilde_used</code>, and <code>:::{note}</code></p>")
    assert LEFTOVERS.search(" ".join(page.text))
    page = _Page()
    page.feed("<p>x_tilde = relaxed</p><pre>{glue:text}`in a code block, shown on purpose`</pre>")
    assert not LEFTOVERS.search(" ".join(page.text))


def test_every_chapter_has_its_page_figures_and_scorecard_section(site):
    _, html, pages = site
    score = pages[html / "book" / f"{book.SCORECARD}.html"]
    for nb in book.notebooks(ROOT):
        page = html / "book" / f"{nb.stem}.html"
        assert page in pages, f"no page for {nb.stem}"
        if nb.stem in book.SUMMARY_PAGES:
            continue
        n_figures = sum("".join(c["source"]).count("{glue:figure}") for c in json.loads(nb.read_text())["cells"])
        assert len(pages[page].images) >= n_figures, f"{nb.stem}: {n_figures} figures, {len(pages[page].images)} images"
        assert f"sc-{nb.stem}" in score.ids, f"the scorecard has no section for {nb.stem}"


def test_every_scorecard_link_resolves(site):
    _, html, pages = site
    page = html / "book" / f"{book.SCORECARD}.html"
    links = [h for h in pages[page].links if not urlparse(h).scheme and not h.startswith("#") and ".html" in h]
    claim_links = [h for h in links if "#" in h]
    assert claim_links, "the scorecard links no claim to its section"
    for href in links:
        target, _, anchor = href.partition("#")
        t = (page.parent / target).resolve()
        assert t in pages, f"scorecard link to a missing page: {href}"
        if anchor:
            assert anchor in pages[t].ids, f"scorecard link to a missing anchor: {href}"


def test_no_script_or_stylesheet_from_outside_the_site(site):
    _, html, pages = site
    for page, p in pages.items():
        for url in p.scripts + p.styles:
            assert not re.match(r"(https?:)?//", url), f"{page.relative_to(html)} loads {url} from the network"


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


_HARNESS = """<html><body><div id="result">pending</div>
<iframe id="f" src="%s" width="1280" height="900"></iframe>
<script>
function check() {
  try {
    const d = document.getElementById('f').contentDocument;
    const imgs = Array.from(d.images);
    const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
    const body = d.body.cloneNode(true);
    body.querySelectorAll('pre, script, style, mjx-assistive-mml').forEach(e => e.remove());
    const text = body.textContent;
    const raw = ['\\\\begin{', '\\\\[', '\\\\frac'].filter(t => text.includes(t));
    document.getElementById('result').textContent = JSON.stringify(
      {images: imgs.length, broken: bad, math: d.getElementsByTagName('mjx-container').length, raw: raw});
  } catch (e) { document.getElementById('result').textContent = JSON.stringify({error: String(e)}); }
}
document.getElementById('f').addEventListener('load', () => setTimeout(check, 3000));
</script></body></html>"""


def test_pages_render_in_a_browser_with_the_network_off(site, tmp_path):
    """Headless Chromium opens every chapter page offline (all traffic to a dead proxy): MathJax must typeset
    every equation (no raw TeX left in the visible text) and every figure must load."""
    exe = _browser()
    if exe is None:
        pytest.skip("no headless browser: install Debian's 'chromium' (the CI script does) to run this check")
    _, html, pages = site
    for nb in book.notebooks(ROOT):
        page = html / "book" / f"{nb.stem}.html"
        harness = tmp_path / f"check_{nb.stem}.html"
        harness.write_text(_HARNESS % page.as_uri())
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
               "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=30000",
               "--dump-dom", harness.as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        m = re.search(r'<div id="result">([^<]*)</div>', r.stdout)
        assert m and m.group(1) != "pending", f"{nb.stem}: the browser check did not run: {r.stderr[-1500:]}"
        res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        assert "error" not in res, f"{nb.stem}: {res}"
        assert res["broken"] == [], f"{nb.stem}: figures that did not load: {res['broken']}"
        assert res["images"] >= len(pages[page].images)
        assert res["raw"] == [], f"{nb.stem}: unrendered TeX {res['raw']} in the page"
        source = page.read_text()
        if "\\(" in source or "\\[" in source:
            assert res["math"] > 0, f"{nb.stem}: MathJax did not run (offline)"


def test_every_chapter_offers_its_downloads_from_the_site_itself(site):
    """The executed notebook, the chapter's results file and the ledger's export, linked at the top of every chapter
    page and served by the site (they work offline)."""
    _, html, pages = site
    for nb in book.chapters(ROOT):
        page = html / "book" / f"{nb.stem}.html"
        links = [h for h in pages[page].links if h.endswith((".ipynb", ".json"))]
        wanted = {f"{nb.stem}.ipynb", f"{nb.stem}.json", "ledger.json"}
        assert {Path(urlparse(h).path).name for h in links} >= wanted, f"{nb.stem}: downloads {links}"
        for h in links:
            assert not urlparse(h).scheme, f"{nb.stem}: a download from outside the site: {h}"
            f = (page.parent / unquote(urlparse(h).path)).resolve()
            assert f.is_file() and f.stat().st_size > 0, f"{nb.stem}: the download {h} is missing"
        results = json.loads((html / "_static" / "data" / "results" / f"{nb.stem}.json").read_text())
        assert results["chapter"] == nb.stem and results["entries"]
    export = json.loads((html / "_static" / "data" / "ledger.json").read_text())
    assert {d["chapter"] for d in export["documents"]} == {nb.stem for nb in book.chapters(ROOT)}


def test_status_and_ledger_pages_cover_every_chapter(site):
    _, html, pages = site
    status = pages[html / "book" / "status.html"]
    ledger = pages[html / "book" / "ledger.html"]
    for nb in book.chapters(ROOT):
        assert f"{nb.stem}.html" in " ".join(status.links), f"the status page has no row for {nb.stem}"
        assert f"ledger-{nb.stem}" in ledger.ids, f"the ledger page has no section for {nb.stem}"
    for word in ("profile", "wall time", "models trained", "claims that hold", "Python", "torch", "CUDA", "commit"):
        assert word in status.visible, f"the status page does not say {word!r}"
    assert "not testable here" in ledger.visible and "criterion" in ledger.visible
