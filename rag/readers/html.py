"""HTML pages: visible text by heading path, tables kept as tables, hidden markup and page
furniture dropped. The page is parsed as a stream (`HTMLSections`, also EPUB's chapter reader),
fed in blocks against the document's budget: its memory follows the text kept, not a tree."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from ..types import Section
from .budget import Budget
from .encoding import decode
from .tables import CellTally, table_section

# the page is fed to the parser in blocks of this many characters, the time budget asked between them
HTML_BLOCK = 64 << 10


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    text = decode(raw, path)
    budget.check_time()
    return parse(text, budget)


def parse(text: str, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = budget if budget is not None else Budget("<html>")
    p = HTMLSections(budget)
    for start in range(0, len(text), HTML_BLOCK):
        budget.spend("unpacked_bytes", min(HTML_BLOCK, len(text) - start))  # asks the time too
        p.feed(text[start:start + HTML_BLOCK])
    p.close()
    title = " ".join(p.title.split())
    if not title:
        title = next((s.headings[0] for s in p.sections if s.headings), "")
    return title, tuple(p.sections)


class HTMLSections(HTMLParser):
    """Collects visible text by heading. Hidden markup is dropped: it is invisible to the reader
    and a favourite place to hide instructions aimed at the model. So is page furniture that
    says nothing about the page: navigation bars and sidebars (Sphinx's "Navigation", "Table of
    Contents" and "Quick search" blocks), search boxes, footers and heading permalinks (`¶`)."""

    SKIP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "nav",
            "search"}
    # roles and classes of navigation and permalinks (Sphinx, Read the Docs and common themes)
    SKIP_ROLES = {"navigation", "search", "contentinfo"}
    SKIP_CLASSES = {"headerlink", "sphinxsidebar", "sphinxsidebarwrapper", "related", "searchbox",
                    "wy-nav-side", "rst-footer-buttons", "footer"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "pre", "blockquote", "table",
             "ul", "ol", "dd", "dt", "header", "footer", "main", "nav", "aside", "figure"}
    VOID = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed",
            "source", "track", "wbr"}
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    # Elements whose end tag HTML lets a page leave out: the start tag of the key closes the
    # innermost open element of the first set when it is found above the innermost open one of
    # the second (its scope). `<p>a<p>b`, `<li>` lists and `<td>` tables written that way are
    # valid and common; without this their elements would pile up on the stack to the depth cap.
    # A simplified form of the HTML5 "in body" rules: only same-kind siblings, which is what
    # keeps the stack as deep as the page's real nesting.
    _SCOPE = frozenset({"table", "td", "th", "caption", "button", "object", "template", "applet",
                        "marquee", "html"})
    IMPLIED = {
        "p": (frozenset({"p"}), _SCOPE),
        "li": (frozenset({"li"}), _SCOPE | {"ul", "ol", "menu"}),
        "dt": (frozenset({"dt", "dd"}), _SCOPE | {"dl"}),
        "dd": (frozenset({"dt", "dd"}), _SCOPE | {"dl"}),
        "tr": (frozenset({"tr"}), frozenset({"table", "thead", "tbody", "tfoot", "html"})),
        "td": (frozenset({"td", "th"}), frozenset({"tr", "table", "html"})),
        "th": (frozenset({"td", "th"}), frozenset({"tr", "table", "html"})),
        "thead": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table", "html"})),
        "tbody": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table", "html"})),
        "tfoot": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table", "html"})),
        "option": (frozenset({"option"}), frozenset({"select", "datalist", "optgroup", "html"})),
        "optgroup": (frozenset({"optgroup", "option"}), frozenset({"select", "html"})),
    }

    def __init__(self, budget: Budget | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self._budget = budget if budget is not None else Budget("<html>")
        self._title: list[str] = []
        self.sections: list[Section] = []
        self._heads: list[tuple[int, str]] = []
        self._buf: list[str] = []
        # open elements as (tag, hidden): hidden is "hidden from here on", this element's own
        # hiding or any parent's, so asking whether text is visible looks at the top entry only
        self._stack: list[tuple[str, bool]] = []
        self._bullet = 0  # a list item has started and its first words have not come yet: its depth
        # where each tag is open on the stack (ascending positions): an end tag finds its element,
        # or learns there is none, without scanning a deep stack
        self._open: dict[str, list[int]] = {}
        self._heading_level = 0
        self._heading_buf: list[str] = []
        self._in_title = False
        # an open table (outermost only; a table inside a cell reads as that cell's text)
        self._table: list[list[str]] | None = None
        self._table_depth = 0
        self._cell: list[str] | None = None
        self._tally = None  # the open table's CellTally

    @property
    def title(self) -> str:
        return "".join(self._title)

    def _hidden(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def _push(self, tag: str, hidden: bool) -> None:
        self._open.setdefault(tag, []).append(len(self._stack))
        self._stack.append((tag, hidden or self._hidden()))
        self._budget.allow("depth", len(self._stack))

    def _pop_to(self, depth: int) -> None:
        """Close every element from stack position `depth` up."""
        while len(self._stack) > depth:
            tag, _ = self._stack.pop()
            self._open[tag].pop()

    def _innermost(self, tags: frozenset[str]) -> int:
        at = -1
        for t in tags:
            where = self._open.get(t)
            if where and where[-1] > at:
                at = where[-1]
        return at

    def handle_starttag(self, tag, attrs):
        if attrs:
            a = {k: (v or "") for k, v in attrs}
            style = a.get("style", "").replace(" ", "").lower()
            hidden = (tag in self.SKIP or "hidden" in a or a.get("aria-hidden") == "true"
                      or "display:none" in style or "visibility:hidden" in style
                      or a.get("role", "").strip().lower() in self.SKIP_ROLES
                      or a.get("id", "").strip().lower() == "searchbox"
                      or not self.SKIP_CLASSES.isdisjoint(a.get("class", "").lower().split()))
        else:
            hidden = tag in self.SKIP
        if tag == "title":
            self._in_title = True
        if tag in self.IMPLIED:
            closes, scope = self.IMPLIED[tag]
            at = self._innermost(closes)
            if at >= 0 and at > self._innermost(scope):
                self._pop_to(at)
        if tag not in self.VOID:
            self._push(tag, hidden)
        if self._start_table_tag(tag):
            self._bullet = 0  # a table in an item is read as a table
            return
        if tag in self.HEADINGS and not self._hidden():
            self._flush()
            self._heading_level = int(tag[1])
            self._heading_buf = []
        elif tag in self.BLOCK:
            self._buf.append("\n")
            if tag == "li" and not self._hidden():
                # the item's first words get the marker, whatever wraps them; an item inside
                # another item or a definition is indented under it
                self._bullet = len(self._open.get("li", ())) - 1 + len(self._open.get("dd", ())) + 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self.VOID:
            return
        self._end_table_tag(tag)
        if tag == "li":
            self._bullet = 0  # an item with no text of its own marks nothing after it
        # close the innermost open element of this tag and those inside it; an end tag with
        # nothing open to close is ignored (sloppy markup)
        if self._open.get(tag):
            self._pop_to(self._open[tag][-1])
        if tag in self.HEADINGS and self._heading_level:
            text = " ".join("".join(self._heading_buf).split())
            level = self._heading_level
            self._heading_level = 0
            if text:
                self._heads = [(lv, t) for lv, t in self._heads if lv < level] + [(level, text)]
        elif tag in self.BLOCK:
            self._buf.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self._title.append(data)
            return
        if self._hidden():
            return
        if self._table is not None:
            if self._cell is not None:
                self._cell.append(data)
            return
        if self._bullet and not self._heading_level and data.strip():
            # a list item reads as a Markdown entry ("- git-init(1) to create ..."), so a list
            # stays a list in the chunk text (rag.survey reads its entries)
            data = "\n" + "  " * (self._bullet - 1) + "- " + data.lstrip()
            self._bullet = 0
        (self._heading_buf if self._heading_level else self._buf).append(data)

    def _start_table_tag(self, tag: str) -> bool:
        """Tables are kept as tables (Markdown, header row repeated per chunk). True when the tag
        belongs to an open table and needs nothing else."""
        if tag == "table" and self._table is not None:
            self._table_depth += 1  # nested, hidden or not: its end tag must balance this
            return True
        if self._hidden():
            return False
        if tag == "table":
            self._table_depth = 1
            self._flush()
            self._table, self._cell = [], None
            self._tally = CellTally(self._budget)  # cells charged as they are read, not at the end
            return True
        if self._table is None or self._table_depth > 1:
            if self._cell is not None:
                self._cell.append(" ")
            return self._table is not None
        if tag == "tr":
            self._close_cell()
            self._tally.end_row()
            self._table.append([])
        elif tag in ("td", "th"):
            self._close_cell()
            if not self._table:
                self._table.append([])
            self._cell = []
        elif self._cell is not None:
            self._cell.append(" ")
        return True

    def _close_cell(self) -> None:
        if self._cell is not None and self._table:
            text = " ".join("".join(self._cell).split())
            if text:
                self._tally.cell(len(self._table[-1]))
            self._table[-1].append(text)
        self._cell = None

    def _end_table_tag(self, tag: str) -> None:
        if self._table is None or tag != "table":
            if self._table is not None and tag in ("td", "th") and self._table_depth == 1:
                self._close_cell()
            return
        self._table_depth -= 1
        if self._table_depth:
            return
        self._close_cell()
        self._tally.end_row()
        section = table_section(self._table, headings=tuple(t for _, t in self._heads), budget=self._budget,
                                counted=True)
        self._table = None
        if section is not None:
            self.sections.append(section)

    def _flush(self):
        text = re.sub(r"[ \t]+", " ", "".join(self._buf))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        if text:
            self.sections.append(Section(text, tuple(t for _, t in self._heads)))
        self._buf = []

    def close(self):
        super().close()
        self._flush()
