"""How ozkernels shows paths to people (the CLI, the server's page, error messages)."""

from __future__ import annotations

import os


def shorten(path: str) -> str:
    """A path with $HOME shown as ~."""
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home != "/" and path.startswith(home + "/") else path


def middle(text: str, width: int) -> str:
    """Text cut to width by replacing its middle with '…' (both ends of a path stay)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def terminal_width() -> int | None:
    """COLUMNS, else the terminal's width when stdout is one; None: do not cut."""
    import shutil
    import sys

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def table(rows: list[list[str]], headers: list[str], width: int | None = None,
          shrink: tuple[int, ...] = ()) -> str:
    """A plain text table with left-aligned columns; the `shrink` columns are cut in the
    middle, in `shrink` order (each down to a floor before the next), until it fits `width`."""
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(c) for c in col) for col in zip(*cells)]
    if width:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        # Paths and module lists go first; what users type back (kernel names) is cut last.
        for i in shrink:
            if excess <= 0:
                break
            cut = min(excess, widths[i] - min(widths[i], max(len(headers[i]), 10)))
            widths[i] -= cut
            excess -= cut
    lines = ["  ".join(middle(c, w).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in cells]
    return "\n".join(lines)
