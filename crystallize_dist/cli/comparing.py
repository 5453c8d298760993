"""Printing paired comparisons (``result RUN --compare``) and the long format
(``result RUN --format rows``). Names from the store go through ``text.plain``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from crystallize_dist.cli.rows import write_text
from crystallize_dist.cli.text import plain
from crystallize_dist.model.compare import Comparison, shown_bounds
from crystallize_dist.model.comparisons import Comparer
from crystallize_dist.model.result import Result


def _g(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _interval(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "-"
    low, high = shown_bounds(lo, hi)
    return f"[{_g(low)}, {_g(high)}]"


def effect_text(c: Comparison) -> str:
    """The effect size; "inf" when every difference is the same nonzero number."""
    if c.effect_size is None and c.n >= 2 and c.mean_diff:
        return "inf" if c.mean_diff > 0 else "-inf"
    return _g(c.effect_size, 3)


def gain_text(c: Comparison) -> str:
    """The pairing gain; "inf" when the paired interval has no width and the unpaired has."""
    if c.pairing_gain is not None:
        return f"{c.pairing_gain:.3g}x"
    if c.ci_low is not None and c.ci_low == c.ci_high and c.unpaired_ci_low != c.unpaired_ci_high:
        return "inf"
    return "-"


def compare_tables(comparisons: Sequence[Comparison], console: Console) -> None:
    """One table per metric: every treatment against the baseline, the paired 95% interval
    above the unpaired one (fits 80 columns)."""
    metrics = list(dict.fromkeys(c.metric for c in comparisons))
    for metric in metrics:
        rows = [c for c in comparisons if c.metric == metric]
        table = Table(
            title=plain(f"{metric}: treatment - {rows[0].baseline}, paired by replicate"),
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 0),
        )
        longest = max(len(plain(c.treatment)) for c in rows)
        table.add_column("treatment", overflow="fold", min_width=min(16, max(9, longest)))
        for col in ("n", "mean diff", "95% CI paired\n(unpaired)", "effect", "p", "p Holm", "gain"):
            table.add_column(col, justify="right", no_wrap=True)
        for c in rows:
            table.add_row(
                plain(c.treatment),
                f"{c.n}" + (f" (-{c.dropped})" if c.dropped else ""),
                _g(c.mean_diff),
                _interval(c.ci_low, c.ci_high)
                + "\n("
                + _interval(c.unpaired_ci_low, c.unpaired_ci_high)
                + ")",
                effect_text(c),
                _p(c.p_value),
                _p(c.p_holm),
                gain_text(c),
            )
        console.print(table)
    if any(c.dropped for c in comparisons):
        console.print(
            "n (-k): k replicates are not paired (a cell of the pair failed, has no record or "
            "no finite value)"
        )


def compare_json(comparisons: Sequence[Comparison]) -> str:
    """A JSON list of objects with exactly the keys of ``Comparison.to_dict``."""
    return json.dumps([c.to_dict() for c in comparisons], indent=2, allow_nan=False)


def dropped_notes(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per comparison that left replicates unpaired."""
    return [
        plain(f"note: {c.treatment} / {c.metric}: {c.dropped} replicates not paired")
        for c in comparisons
        if c.dropped
    ]


def write_comparisons(result: Result, fmt: str, output: str | None, baseline: str) -> None:
    """Every treatment against ``baseline``, metric by metric, as tables or JSON; a metric
    that cannot be compared is one note on stderr."""
    found, notes = Comparer(result.conditions(), result.provenance).every(None, baseline)
    if fmt == "json":
        write_text(compare_json(found) + "\n", output)
        notes += dropped_notes(found)
    elif output:
        with open(output, "w") as fh:
            compare_tables(found, Console(file=fh, width=100, markup=False))
    else:
        compare_tables(found, Console(soft_wrap=True, markup=False))
    for line in notes:
        sys.stderr.write(plain(line if line.startswith("note: ") else f"note: {line}") + "\n")
