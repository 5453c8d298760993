"""The report page's sections as HTML. Every piece of text is escaped (``esc``): names and
messages come from a run store, which a hostile writer may fill with markup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crystallize_dist.model.compare import Comparison, shown_bounds
from crystallize_dist.model.report.data import ReportInput
from crystallize_dist.model.report.html import esc, num, seconds, table, when
from crystallize_dist.model.statistics import summarize

#: lines of each error's traceback the page shows
TRACEBACK_LINES = 12


def header(data: ReportInput) -> str:
    prov = data.result.provenance
    found = prov.get("environment")
    env: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    versions = ", ".join(
        f"{k} {env[k]}" for k in ("python", "numpy", "crystallize_dist", "celery") if env.get(k)
    )
    found_options = prov.get("options")
    options: Mapping[str, Any] = found_options if isinstance(found_options, Mapping) else {}
    tags = options.get("tags") if isinstance(options.get("tags"), Mapping) else {}
    facts = [
        ("run", data.run_id or "(in-process)"),
        ("name", options.get("name") or "-"),
        ("tags", " ".join(f"{k}={v}" for k, v in sorted((tags or {}).items())) or "-"),
        ("experiment", data.experiment or "-"),
        ("submitted", when(data.submitted)),
        ("duration", seconds(data.duration)),
        ("master seed", prov.get("master_seed", "-")),
        ("replicates", prov.get("replicates", "-")),
        ("fingerprint", prov.get("fingerprint") or "-"),
        ("versions", versions or "-"),
    ]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    items += f'<dt>digest</dt><dd><code id="digest">{esc(data.result.digest)}</code></dd>'
    banner = (
        f'<p class="partial" id="partial">Partial: {esc(data.partial)}. This page shows '
        "what has finished.</p>"
        if data.partial
        else ""
    )
    title = f"Run {data.run_id}" if data.run_id else "Result"
    return f"<h1>{esc(title)}</h1>{banner}<dl>{items}</dl>"


def summary(data: ReportInput) -> str:
    rows = []
    for cond, metrics in data.result.conditions().items():
        for metric in sorted(metrics):
            s = summarize(metrics[metric])
            ci = "-" if s["ci_low"] is None else f"[{num(s['ci_low'])}, {num(s['ci_high'])}]"
            rows.append([esc(cond), esc(metric), num(s["n"]), num(s["mean"]), num(s["std"]), ci])
    head = ["condition", "metric", "n", "mean", "std", "95% CI"]
    return "<h2>Summary</h2>" + table(head, rows)


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "-"
    low, high = shown_bounds(lo, hi)
    return f"[{num(low)}, {num(high)}]"


def comparisons(found: Sequence[Comparison], notes: Sequence[str], forests: str) -> str:
    if not found and not notes:
        return ""
    rows = [
        [
            esc(c.metric),
            esc(c.treatment),
            f"{c.n}" + (f" ({c.dropped} dropped)" if c.dropped else ""),
            num(c.mean_diff),
            _bounds(c.ci_low, c.ci_high),
            num(c.effect_size, 3),
            num(c.p_value, 3),
            num(c.p_holm, 3),
            _bounds(c.unpaired_ci_low, c.unpaired_ci_high),
            "-" if c.pairing_gain is None else f"{c.pairing_gain:.3g}x",
        ]
        for c in found
    ]
    head = ["metric", "treatment", "pairs", "mean diff", "95% CI", "effect", "p", "p Holm",
            "unpaired 95% CI", "gain"]  # fmt: skip
    base = found[0].baseline if found else "baseline"
    lines = "".join(f"<p class='note'>{esc(n)}</p>" for n in notes)
    return (
        f"<h2>Paired comparisons (treatment - {esc(base)})</h2>"
        "<p>Replicate r of every condition ran with the same seed, so the differences are "
        "paired: bootstrap intervals, sign-flip p-values (Holm-adjusted per metric), and "
        "the pairing gain (unpaired width / paired width).</p>"
        + table(head, rows)
        + lines
        + forests
    )


def errors(data: ReportInput) -> str:
    errs = data.result.errors
    if not errs:
        return "<h2>Errors</h2><p>No cell failed.</p>"
    parts = []
    for key, err in errs.items():
        kind = str(getattr(err, "error_type", type(err).__name__))
        original = getattr(getattr(err, "original_exception", None), "error_type", None)
        kind += f" ({original})" if original else ""
        lines = str(getattr(err, "traceback_str", "") or "").splitlines()
        shown = "\n".join(lines[:TRACEBACK_LINES])
        more = f"\n… ({len(lines) - TRACEBACK_LINES} more lines)" if len(lines) > 12 else ""
        parts.append(
            f"<div class='error'><h3>{esc(key)}: {esc(kind)}</h3><p>{esc(err)}</p>"
            f"<pre>{esc(shown + more)}</pre></div>"
        )
    return f"<h2>Errors ({len(errs)} cells)</h2>" + "".join(parts)


def workers(data: ReportInput) -> str:
    if not data.workers:
        return ""
    cols = ["node", "host", "pid", "pool", "concurrency", "state", "last heartbeat", "cells",
            "versions"]  # fmt: skip
    rows = []
    for w in data.workers:
        versions = w.get("versions") if isinstance(w.get("versions"), Mapping) else {}
        beat = w.get("last_beat")
        rows.append(
            [
                esc(w.get("node", "-")),
                esc(w.get("host", "-")),
                esc(w.get("pid", "-")),
                esc(w.get("pool") or "-"),
                esc(w.get("concurrency") or "-"),
                esc(w.get("state") or "-"),
                esc(when(beat) if isinstance(beat, (int, float)) else "-"),
                esc(w.get("cells", "-")),
                esc(", ".join(f"{k} {v}" for k, v in (versions or {}).items()) or "-"),
            ]
        )
    return "<h2>Workers</h2>" + table(cols, rows)


def canary(data: ReportInput) -> str:
    info = data.canary
    if not info:
        return ""
    bad = info.get("mismatched") or []
    verdict = (
        f"<p class='partial'>{len(bad)} mismatched: the same cell with the same seed gave "
        "other numbers in another process.</p>"
        if bad
        else "<p>Every checked cell gave the same numbers in another process.</p>"
    )
    rows = [
        [esc(m.get("cell")), esc(m.get("stored")), esc(m.get("canary")), esc(m.get("where"))]
        for m in bad
        if isinstance(m, Mapping)
    ]
    counts = (
        f"<p>sample {esc(len(info.get('cells') or []))} cells: checked "
        f"{esc(info.get('checked', 0))}, matched {esc(info.get('matched', 0))}, "
        f"mismatched {esc(len(bad))}.</p>"
    )
    listing = table(["cell", "stored", "canary", "where"], rows) if rows else ""
    return "<h2>Determinism canary</h2>" + counts + verdict + listing
