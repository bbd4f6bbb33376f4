"""The report as a list of blocks (headings, paragraphs, lists, tables, the figure) and its two renderings:
Markdown (the plot beside it as a PNG file) and self-contained HTML (the plot inlined as a data URI)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from edgevit.report.views import NOT_MEASURED


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Block:
    kind: Literal["h1", "h2", "h3", "p", "ul", "table", "figure"]
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: Table | None = None
    source: str = ""  # a figure's own PNG file name (default: the Pareto plot's)


def _md_cell(text: str) -> str:
    """Escape what Markdown would interpret; an underscore inside a word (rss_growth) is left readable."""
    out = text.replace("\\", "\\\\").replace("\r", " ").replace("\n", " ")
    for ch in "|*`<":
        out = out.replace(ch, "\\" + ch)
    out = out.replace("](", "\\](")  # no accidental links; a lone [1] stays readable
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", out)


def to_markdown(blocks: Sequence[Block], png_name: str) -> str:
    """The blocks as Markdown; the figure refers to the PNG written beside it as ``png_name``."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + _md_cell(b.text))
        elif b.kind == "p":
            out.append(_md_cell(b.text))
        elif b.kind == "ul":
            out.append("\n".join(f"- {_md_cell(i)}" for i in b.items))
        elif b.kind == "figure":
            out.append(f"![{_md_cell(b.text)}]({b.source or png_name})")
        elif b.table is not None:
            t = b.table
            lines = ["| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
                     "|" + "---|" * len(t.headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.nm { color: #a33; font-style: italic; }
img { max-width: 100%; height: auto; }
"""


def _html_cell(text: str, tag: str) -> str:
    cls = ' class="nm"' if NOT_MEASURED in text or text.startswith(("failed", "not run")) else ""
    return f"<{tag}{cls}>{html.escape(text)}</{tag}>"


def to_html(blocks: Sequence[Block], title: str, png: bytes, images: Mapping[str, bytes] | None = None) -> str:
    """The blocks as one HTML file with no external references: the plots are inlined as data URIs (``images``:
    a figure's ``source`` -> its PNG)."""
    def uri(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    data_uri = uri(png)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "figure":
            src = uri(images[b.source]) if b.source and images and b.source in images else data_uri
            out.append(f'<figure><img alt="{html.escape(b.text)}" src="{src}"></figure>')
        elif b.table is not None:
            head = "".join(_html_cell(h, "th") for h in b.table.headers)
            body = "".join("<tr>" + "".join(_html_cell(c, "td") for c in row) + "</tr>"
                           for row in b.table.rows)
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                       f"<tbody>{body}</tbody></table></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
