"""Tables that fit the terminal (80 columns and up): their text columns (condition, metric,
worker names) wrap, a long name folded over several lines, and their number columns never
wrap or shrink, so every number and interval stays whole on one line. A table of names in
groups (metrics of conditions) whose two name columns would be squeezed narrower than
``NAME_WIDTH`` gives the groups rows of their own above their names, so the names share
one wider column."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

NAME_WIDTH = 16  # characters a name column keeps before a grouped table gives up its columns
_UNBOUNDED = 1_000_000  # characters: a width no table reaches, to measure one unwrapped
_COLUMN_FRAME = 3  # characters a column adds besides its text: its padding and a border


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


def _room_for_names(
    numbers: Sequence[str], rows: Sequence[tuple[str, str, Sequence[str]]], console: Console
) -> int:
    """The characters ``console``'s width leaves for two name columns beside ``numbers``."""
    table = fitted_table("", (), numbers)
    for _, _, values in rows:
        table.add_row(*values)
    unbounded = console.options.update_width(_UNBOUNDED)
    return console.width - console.measure(table, options=unbounded).maximum - 2 * _COLUMN_FRAME


def grouped_table(
    title: str,
    heads: tuple[str, str],
    numbers: Sequence[str],
    rows: Sequence[tuple[str, str, Sequence[str]]],
    console: Console,
) -> Table:
    """A table of ``rows`` (group, name, numbers) with the columns ``heads`` and
    ``numbers`` when ``console``'s width leaves each name column ``NAME_WIDTH`` characters
    (or all it needs); else one text column headed "group / name", each group on a row of
    its own (a rule above it) and its names indented below it."""
    widest = [
        max([cell_len(heads[0]), *(cell_len(group) for group, _, _ in rows)]),
        max([cell_len(heads[1]), *(cell_len(name) for _, name, _ in rows)]),
    ]
    needs = [min(NAME_WIDTH, width) for width in widest]
    if sum(needs) <= _room_for_names(numbers, rows, console):
        table = fitted_table(title, heads, numbers)
        for group, name, values in rows:
            table.add_row(group, name, *values)
        return table
    table = fitted_table(title, (" / ".join(heads),), numbers)
    last: str | None = None
    for group, name, values in rows:
        if group != last:
            if last is not None:
                table.add_section()
            table.add_row(Text(group, style="bold"), *([""] * len(numbers)))
            last = group
        table.add_row(f"  {name}", *values)
    return table
