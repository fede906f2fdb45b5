"""A parser of the rendered report page, shared by the report tests."""

from __future__ import annotations

from html.parser import HTMLParser


class ReportParser(HTMLParser):
    """Section ids, tables by id (rows of cell texts), image sources, every tag name, headings
    (tag, section, text), the class of each table's parent element, and the texts of <li>s by
    the class of their <ul>."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: list[str] = []
        self.headings: list[tuple[str, str, str]] = []
        self.table_parents: dict[str, str] = {}
        self.items: dict[str, list[str]] = {}
        self._stack: list[tuple[str, str]] = []
        self._heading: list[str] | None = None
        self._item: list[str] | None = None
        self._list_class = ""
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag in ("h2", "h3", "p"):
            self._heading = []
            self._heading_tag = tag if tag != "p" else f"p.{a.get('class') or ''}"
        if tag == "ul":
            self._list_class = a.get("class") or ""
        if tag == "li" and self._item is None:
            self._item = []
        if tag not in ("img", "br", "meta"):
            self._stack.append((tag, a.get("class") or ""))
        if tag == "section":
            self.sections.append(a["id"] or "")
        elif tag == "table":
            self._table = (a["id"] or "").removeprefix("table-")
            self.tables[self._table] = []
            self.table_parents[self._table] = self._stack[-2][1] if len(self._stack) > 1 else ""
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(a["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1][0] == tag:
            self._stack.pop()
        if tag in ("h2", "h3", "p") and self._heading is not None:
            self.headings.append((self._heading_tag, self.sections[-1] if self.sections else "",
                                  "".join(self._heading).strip()))
            self._heading = None
        if tag == "li" and self._item is not None:
            self.items.setdefault(self._list_class, []).append("".join(self._item).strip())
            self._item = None
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._item is not None:
            self._item.append(data)
