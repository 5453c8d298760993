"""``Result.print_tree``: a run's step provenance printed as a tree, Crystallize's layout.

The tree starts at "Experiment Summary" and groups the steps that read, wrote or recorded
something by the tokens of ``fmt`` (``treatment``, ``replicate``, ``step``; ``action``, when
given, last): "Treatment 'name'", "Replicate r", "Step Name", and under each step its
"Reads" (``key=value``), "Writes" and "Write Metrics" (``key: before -> after``). Printed
with rich's colours when rich imports, else as indented plain text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import ValidationError

if TYPE_CHECKING:
    from crystallize_dist.model.result import Result

_TOKENS = ("treatment", "replicate", "step", "action")
_COLOURS = ("bold yellow", "green", "cyan")
_LABELS = {"treatment": "Treatment '{}'", "replicate": "Replicate {}", "step": "Step {}"}
_ACTIONS = (
    ("reads", "Reads", "green"),
    ("wrote", "Writes", "blue"),
    ("metrics", "Write Metrics", "red"),
)


@dataclass
class Node:
    """One line of the tree, with its rich style and its children."""

    label: str
    style: str | None = None
    children: list[Node] = field(default_factory=list)

    def add(self, label: str, style: str | None = None) -> Node:
        child = Node(label, style)
        self.children.append(child)
        return child


def parse_fmt(fmt: str) -> list[str]:
    """The tokens of ``fmt``; unknown tokens, or ``action`` not last, raise ValueError."""
    tokens = [t.strip().lower() for t in fmt.split(">")]
    bad = [t for t in tokens if t not in _TOKENS]
    if bad:
        raise ValidationError(
            f"Invalid format spec {fmt!r}: unknown tokens {bad}; use {', '.join(_TOKENS)}"
        )
    if "action" in tokens and tokens[-1] != "action":
        raise ValidationError(f"Invalid format spec {fmt!r}: 'action' must be the final element")
    return tokens


def _rows(result: Result) -> list[dict[str, Any]]:
    """One row per step record that read, wrote or recorded something."""
    rows = []
    for cond, by_rep in result.provenance.get("ctx_changes", {}).items():
        for rep, steps in by_rep.items():
            for rec in steps:
                acts = rec.get("ctx_changes", {})
                if any(acts.get(a) for a in ("reads", "wrote", "metrics")):
                    rows.append(
                        {
                            "treatment": cond,
                            "replicate": rep,
                            "step": rec.get("step", ""),
                            "acts": acts,
                        }
                    )
    return rows


def _add_actions(parent: Node, acts: Mapping[str, Any]) -> None:
    for key, label, style in _ACTIONS:
        details = acts.get(key) or {}
        if not details:
            continue
        node = parent.add(label, style)
        for k, v in details.items():
            if key == "reads":
                node.add(f"{k}={v}")
            else:
                node.add(f"{k}: {v.get('before')} -> {v.get('after')}")


def _sort_key(value: Any) -> tuple[int, Any]:
    """Replicates as numbers (stored results give them as text), everything else as text."""
    text = str(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def _build(node: Node, rows: list[dict[str, Any]], tokens: list[str], level: int) -> None:
    styles = {t: _COLOURS[i] for i, t in enumerate(tokens) if i < len(_COLOURS)}
    token = tokens[level] if level < len(tokens) else "action"
    if token == "action":
        for row in rows:
            target = (
                node
                if "step" in tokens[:level]
                else node.add(f"Step {row['step']}", styles.get("step"))
            )
            _add_actions(target, row["acts"])
        return
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[token], []).append(row)
    for key in sorted(groups, key=_sort_key):
        child = node.add(_LABELS[token].format(key), styles.get(token))
        _build(child, groups[key], tokens, level + 1)


def build_tree(result: Result, fmt: str) -> Node:
    """The tree of ``result``'s provenance grouped as ``fmt`` says."""
    tokens = parse_fmt(fmt)
    root = Node("Experiment Summary", "bold")
    _build(root, _rows(result), tokens, 0)
    return root


def _print_plain(node: Node, depth: int = 0) -> None:
    print("  " * depth + node.label)
    for child in node.children:
        _print_plain(child, depth + 1)


def render_tree(result: Result, fmt: str) -> None:
    """Print the tree (see module doc)."""
    root = build_tree(result, fmt)
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.tree import Tree
    except ImportError:
        _print_plain(root)
        return

    def to_rich(node: Node) -> Tree:
        text = escape(node.label)
        tree = Tree(f"[{node.style}]{text}[/]" if node.style else text)
        for child in node.children:
            tree.add(to_rich(child))
        return tree

    Console().print(to_rich(root))
