"""Plain-text tables for the CLI's reports (bench, eval, cluster): one format everywhere."""
from __future__ import annotations

import math


def _cell(v, decimals: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{decimals}f}" if isinstance(v, float) else str(v)


def _is_number(text: str) -> bool:
    if text == "-":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_table(headers: list[str], rows: list[list], title: str | None = None, decimals: int = 2) -> str:
    """Columns of numbers right-aligned, text left-aligned; floats with `decimals` places, None and NaN as
    '-'. Format a number as a string first to give it other decimals than its column."""
    cells = [[_cell(v, decimals) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [bool(cells) and all(_is_number(r[i]) for r in cells) for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()
    out = [title] if title else []
    out += [line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out)
