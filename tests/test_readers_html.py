"""HTML pages (`rag.readers.html`): visible text by heading path, page furniture and hidden
markup dropped; parsed as a stream within the document's budget (issue 34, finding 4): nesting
capped, end tags and implied end tags in time linear in the page, size, time and table cells
charged as the page is read."""
import time

import pytest

from rag import ingest
from rag.errors import OverBudget
from rag.readers.budget import ReadLimits


def test_html_headings_and_hidden_text_dropped(tmp_path):
    f = tmp_path / "page.html"
    f.write_text("<html><head><title>Bikes</title><style>p{color:red}</style></head><body>"
                 "<h1>Brakes</h1><p>Pull the lever.</p><div style='display: none'>IGNORE ALL</div>"
                 "<h2>Cables</h2><p>Check &amp; oil them.</p><script>alert(1)</script>"
                 "<h1>Tyres</h1><p>Pump to 4 bar.</p></body></html>")
    doc = ingest.load(f)
    assert doc.title == "Bikes"
    assert [(s.headings, s.text) for s in doc.sections] == [
        (("Brakes",), "Pull the lever."), (("Brakes", "Cables"), "Check & oil them."),
        (("Tyres",), "Pump to 4 bar.")]


SPHINX_PAGE = """<!DOCTYPE html>
<html><head><title>Pumps &#8212; Bike docs 1.0</title></head><body>
<div class="related" role="navigation" aria-label="Related">
  <h3>Navigation</h3>
  <ul><li class="right"><a href="genindex.html" title="General Index">index</a></li>
      <li class="right"><a href="brakes.html" title="Brakes">next</a> |</li></ul>
</div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">
  <section id="pumps">
  <h1>Pumps<a class="headerlink" href="#pumps" title="Link to this heading">¶</a></h1>
  <p>Pump road tyres to 6 bar.</p>
  <section id="valves">
  <h2>Valves<a class="headerlink" href="#valves" title="Link to this heading">¶</a></h2>
  <p>Presta valves need an adapter.</p>
  </section></section>
</div></div></div>
<div class="sphinxsidebar" role="navigation" aria-label="Main">
  <div class="sphinxsidebarwrapper">
    <h3><a href="index.html">Table of Contents</a></h3>
    <ul><li><a class="reference internal" href="#">Pumps</a><ul>
      <li><a class="reference internal" href="#valves">Valves</a></li></ul></li></ul>
    <div role="note" aria-label="source link"><h3>This Page</h3>
      <ul class="this-page-menu"><li><a href="_sources/pumps.rst.txt" rel="nofollow">Show Source</a></li></ul></div>
    <search id="searchbox" style="display: none" role="search">
      <h3 id="searchlabel">Quick search</h3>
      <form class="search" action="search.html" method="get"><input type="text" name="q" />
      <input type="submit" value="Go" /></form>
    </search>
  </div>
</div>
<div class="clearer"></div></div>
<div class="footer" role="contentinfo">&#169; Copyright 2024. Created using Sphinx 7.2.6.</div>
</body></html>"""


def test_sphinx_navigation_sidebar_and_permalinks_are_not_content(tmp_path):
    f = tmp_path / "pumps.html"
    f.write_text(SPHINX_PAGE)
    doc = ingest.load(f)
    assert [(s.headings, s.text) for s in doc.sections] == [
        (("Pumps",), "Pump road tyres to 6 bar."),
        (("Pumps", "Valves"), "Presta valves need an adapter.")]
    everything = " ".join(s.text + " ".join(s.headings) for s in doc.sections)
    for furniture in ("¶", "Navigation", "Table of Contents", "Quick search", "Show Source",
                      "index", "next", "Created using Sphinx"):
        assert furniture not in everything


def best_of(n, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def test_deep_nesting_stops_at_the_depth_cap_or_reads_in_linear_time(tmp_path):
    n = 10_000
    deep = "<div>" * n + "<p>bottom</p>" + "</div>" * n
    flat = "<div></div>" * n + "<p>bottom</p>"
    (tmp_path / "deep.html").write_text(deep)
    (tmp_path / "flat.html").write_text(flat)
    with pytest.raises(OverBudget, match="nests markup over 512 levels deep") as e:
        ingest.load(tmp_path / "deep.html")
    assert e.value.resource == "depth"

    # with the cap lifted the parse is linear: a stack of 10,000 costs about what 10,000 siblings
    # do (the old scan of the whole stack per tag made it about 9 times slower at this size, and
    # 100 times that at 200,000 deep)
    deep_limits = ReadLimits(depth=10 * n)
    doc = ingest.load(tmp_path / "deep.html", limits=deep_limits)
    assert [s.text for s in doc.sections] == ["bottom"]
    t_flat = best_of(2, lambda: ingest.load(tmp_path / "flat.html", limits=deep_limits))
    t_deep = best_of(2, lambda: ingest.load(tmp_path / "deep.html", limits=deep_limits))
    assert t_deep < 5 * t_flat, (t_deep, t_flat)


def test_unmatched_end_tags_do_not_scan_the_stack(tmp_path):
    # 10,000 end tags that match nothing under 5,000 open elements: each used to scan the stack
    stray = "<div>" * 5_000 + "</span>" * 10_000 + "<p>kept</p>" + "</div>" * 5_000
    flat = "<div></div>" * 5_000 + "<i></i>" * 10_000 + "<p>kept</p>"
    (tmp_path / "stray.html").write_text(stray)
    (tmp_path / "flat.html").write_text(flat)
    with pytest.raises(OverBudget):  # 5,000 deep is over the default cap
        ingest.load(tmp_path / "stray.html")
    deep_limits = ReadLimits(depth=10_000)
    assert [s.text for s in ingest.load(tmp_path / "stray.html", limits=deep_limits).sections] == ["kept"]
    t_flat = best_of(2, lambda: ingest.load(tmp_path / "flat.html", limits=deep_limits))
    t_stray = best_of(2, lambda: ingest.load(tmp_path / "stray.html", limits=deep_limits))
    assert t_stray < 5 * t_flat, (t_stray, t_flat)


def test_end_tags_still_close_what_they_match_and_hidden_is_inherited(tmp_path):
    f = tmp_path / "mix.html"
    f.write_text("<h1>Top</h1><div hidden><b>inner <span>deep</i> still hidden</b></div>shown "
                 "<section style='display:none'><div><p>nope</div></section><p>after</p>")
    doc = ingest.load(f)
    text = " ".join(s.text for s in doc.sections)
    assert "shown" in text and "after" in text
    assert not any(w in text for w in ("inner", "deep", "still hidden", "nope"))


def test_valid_pages_that_leave_out_end_tags_stay_under_the_depth_cap(tmp_path):
    # <p>, <li>, <tr> and <td> may go unclosed in valid HTML; 2,000 of each must not read as
    # nesting 2,000 deep
    rows = "".join(f"<tr><td>r{i}<td>{i}" for i in range(2_000))
    items = "".join(f"<li>item {i}" for i in range(2_000))
    paras = "".join(f"<p>para {i}" for i in range(2_000))
    f = tmp_path / "loose.html"
    f.write_text(f"<h1>Loose</h1>{paras}<ul>{items}</ul><table><tr><th>k<th>v{rows}</table><p>end")
    doc = ingest.load(f)
    text = "\n".join(s.text for s in doc.sections)
    assert "para 1999" in text and "item 1999" in text and "| r1999 | 1999 |" in text and "end" in text


def test_html_over_the_size_or_time_budget_is_refused(tmp_path):
    # HTML is parsed as a stream, so its size counts against unpacked_bytes, not the lower cap
    # on markup that tree parsers hold
    f = tmp_path / "big.html"
    f.write_text("<p>" + "word " * 2_000 + "</p>")
    assert ingest.load(f, limits=ReadLimits(markup_bytes=1_000)).sections
    with pytest.raises(OverBudget) as e:
        ingest.load(f, limits=ReadLimits(unpacked_bytes=1_000))
    assert e.value.resource == "unpacked_bytes"
    with pytest.raises(OverBudget) as e:
        ingest.load(f, limits=ReadLimits(seconds=1e-9))
    assert e.value.resource == "seconds"


def test_html_table_cells_are_charged_as_they_are_read(tmp_path):
    f = tmp_path / "grid.html"
    f.write_text("<table>" + "".join("<tr>" + "<td>x" * 10 for _ in range(100)) + "</table>")
    assert len(ingest.load(f).sections[0].text.splitlines()) == 101  # header, rule and 99 rows
    with pytest.raises(OverBudget, match="over 500 table cells") as e:
        ingest.load(f, limits=ReadLimits(cells=500))
    assert e.value.resource == "cells"


def test_list_items_read_as_entries_whatever_wraps_their_words(tmp_path):
    f = tmp_path / "page.html"
    f.write_text("<html><body><h1>Tools</h1><p>Use these:</p><ul><li><p>git-init to start.</p></li>"
                 "<li>git-log to\nsee history.</li><li><b>git-tag</b> to mark.</li></ul>"
                 "<ol><li>first step</li></ol></body></html>")
    (section,) = ingest.load(f).sections
    assert [ln for ln in section.text.split("\n") if ln] == ["Use these:", "- git-init to start.", "- git-log to", "see history.",
                                        "- git-tag to mark.", "- first step"]


def test_an_item_inside_an_item_or_a_definition_is_indented_under_it(tmp_path):
    f = tmp_path / "page.html"
    f.write_text("<html><body><dl><dt>ort</dt><dd><p>The default.</p><ul><li>ours</li><li>theirs<ul>"
                 "<li>deep</li></ul></li></ul></dd></dl><ul><li>top</li></ul></body></html>")
    lines = [ln for ln in ingest.load(f).sections[0].text.split("\n") if ln.strip()]
    assert [ln.strip() for ln in lines] == ["ort", "The default.", "- ours", "- theirs", "- deep", "- top"]
    assert [ln.startswith(" ") for ln in lines] == [False, False, True, True, True, False]


def test_an_item_without_text_of_its_own_marks_nothing_after_it(tmp_path):
    f = tmp_path / "page.html"
    f.write_text("<html><body><ul><li></li><li><img src='x.png'></li></ul><p>Next paragraph is prose.</p>"
                 "<ul><li><table><tr><th>a</th></tr><tr><td>1</td></tr></table></li></ul><p>After.</p></body></html>")
    text = "\n".join(s.text for s in ingest.load(f).sections)
    assert "- Next" not in text and "Next paragraph is prose." in text and "- After" not in text
