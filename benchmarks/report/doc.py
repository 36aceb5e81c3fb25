"""The report as a list of blocks (headings, paragraphs, warnings, tables, images) rendered to Markdown and to a
self-contained HTML page (images embedded as data URIs, so the one file can be mailed), and the formatting
helpers every section uses: the document is built once, so the two renderings never disagree."""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TITLE = "GAN parity suite"  # the report's title names the backends after it (title)
BACKEND_NAMES = {"torch": "PyTorch", "tf": "TensorFlow", "jax": "JAX"}
BACKEND_SHORT = {"torch": "PyTorch", "tf": "TF", "jax": "JAX"}
MODE_NAMES = {("torch", "eager"): "eager", ("torch", "compiled"): "torch.compile", ("tf", "eager"): "eager",
              ("tf", "compiled"): "tf.function", ("tf", "xla"): "XLA", ("jax", "eager"): "eager",
              ("jax", "compiled"): "jax.jit"}


@dataclass(frozen=True)
class Link:
    """A table cell that links to a heading's anchor below (the summary's verdicts point at their evidence)."""
    text: str
    anchor: str

    def __str__(self) -> str:
        return self.text


def anchor_of(text: str) -> str:
    """The id a heading gets when it is not given one: its text, lower case, every other character a hyphen."""
    return "".join(c if c.isalnum() else "-" for c in text.lower())


@dataclass
class Doc:
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        """``anchor``: the id a Link points at (default: anchor_of(text), which repeats for repeated headings)."""
        self.blocks.append(("heading", level, text, anchor))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def warn(self, text: str) -> None:
        self.blocks.append(("warn", text))

    def table(self, frame: pd.DataFrame, table_id: str | None = None) -> None:
        """Cells may be Links; ``table_id`` becomes the HTML table's id."""
        self.blocks.append(("table", frame, table_id))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    def images(self, items: list[tuple[Path, str]]) -> None:
        """Images shown side by side (GIFs of the two backends)."""
        self.blocks.append(("images", items))


def md_cell(value) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return f"[{text}](#{value.anchor})" if isinstance(value, Link) else text


def md_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def render_md(doc: Doc, out_dir: Path) -> str:
    parts = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            anchor = f'<a id="{block[3]}"></a>\n\n' if block[3] else ""
            parts.append(anchor + "#" * block[1] + " " + block[2])
        elif kind == "text":
            parts.append(block[1])
        elif kind == "warn":
            parts.append("> **Warning:** " + block[1])
        elif kind == "table":
            parts.append(md_table(block[1]))
        elif kind == "image":
            parts.append(f"![{block[1].stem}]({block[1].relative_to(out_dir).as_posix()})\n\n*{block[2]}*")
        elif kind == "images":
            parts.append("  ".join(f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p, _ in block[1])
                         + "\n\n" + "; ".join(f"*{c}*" for _, c in block[1]))
    return "\n\n".join(parts) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1250px; margin: 2em auto;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { border-bottom: 3px solid #1f6fb4; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 2em; }
h3 { margin-top: 1.4em; color: #333; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
tr:nth-child(even) td { background: #fafbfc; }
.warn { background: #fff4e5; border-left: 5px solid #e8710a; padding: .6em 1em; margin: .8em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
.torch { color: #e8710a; font-weight: bold; } .tf { color: #1f6fb4; font-weight: bold; }
"""


def data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{data_uri(path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def html_cell(value) -> str:
    if isinstance(value, Link):
        return f'<a href="#{html.escape(value.anchor)}">{html.escape(value.text)}</a>'
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, table_id: str | None) -> str:
    """Cells escaped here (Links become anchors), so pandas must not escape them again."""
    cells = frame.map(html_cell) if len(frame) else frame.copy()
    cells.columns = [html.escape(str(c)) for c in frame.columns]
    return cells.to_html(index=False, border=0, escape=False, na_rep="—", table_id=table_id)


def render_html(doc: Doc) -> str:
    parts = []
    page_title = next((b[2] for b in doc.blocks if b[0] == "heading" and b[1] == 1), TITLE)
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            anchor = block[3] or anchor_of(block[2])
            parts.append(f'<h{block[1]} id="{anchor}">{html.escape(block[2])}</h{block[1]}>')
        elif kind == "text":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "warn":
            parts.append(f'<div class="warn"><b>Warning:</b> {html.escape(block[1])}</div>')
        elif kind == "table":
            parts.append(html_table(block[1], block[2]))
        elif kind == "image":
            parts.append(html_figure(block[1], block[2]))
        elif kind == "images":
            parts.append('<div class="row">' + "".join(html_figure(p, c) for p, c in block[1]) + "</div>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(page_title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


# ----------------------------------------------------------------------------- formatting


def fmt_time(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds == 0:
        return "0"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}".replace(",", " ")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else str(value)
    return f"{value:.{digits}g}"


def label(backend: str, mode: str) -> str:
    return f"{BACKEND_SHORT.get(backend, backend)} {MODE_NAMES.get((backend, mode), mode)}"


def title(backends) -> str:
    """E.g. "GAN parity suite: PyTorch vs TensorFlow"."""
    return f"{TITLE}: " + " vs ".join(BACKEND_NAMES.get(b, b) for b in backends)


def pair_label(pair: tuple[str, str]) -> str:
    """E.g. "PyTorch vs TF"."""
    return " vs ".join(BACKEND_SHORT.get(b, b) for b in pair)


def per_pair(name: str, pair: tuple[str, str], pairs: list) -> str:
    """A table column of one pair: ``name`` alone where the table holds one pair, else with the pair named."""
    return name if len(pairs) <= 1 else f"{name}, {pair_label(pair)}"
