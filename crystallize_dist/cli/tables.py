"""Tables that fit the terminal (80 columns and up): their text columns (condition, metric,
worker names) wrap, a long name folded over several lines, and their number columns never
wrap or shrink, so every number and interval stays whole on one line."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table


def fitted_table(
    title: str, text: Sequence[str], numbers: Sequence[str], *, text_last: Sequence[str] = ()
) -> Table:
    """A table titled ``title`` with the columns ``text`` (left-aligned, wrapping), then
    ``numbers`` (right-aligned, never wrapping), then ``text_last`` (wrapping)."""
    table = Table(title=title)
    for name in text:
        table.add_column(name, justify="left", overflow="fold")
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    for name in text_last:
        table.add_column(name, justify="left", overflow="fold")
    return table
