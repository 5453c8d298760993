"""``Result.print_tree``: provenance grouped as a tree (rich when available)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import ValidationError

if TYPE_CHECKING:
    from crystallize_dist.model.result import Result

_TOKENS = ("treatment", "replicate", "step", "action")


def parse_fmt(fmt: str) -> list[str]:
    tokens = [t.strip() for t in fmt.split(">") if t.strip()]
    bad = [t for t in tokens if t not in _TOKENS]
    if bad or not tokens:
        raise ValidationError(
            f"print_tree format {fmt!r}: unknown tokens {bad}; use {', '.join(_TOKENS)}"
        )
    if "action" in tokens and tokens[-1] != "action":
        raise ValidationError(f"print_tree format {fmt!r}: 'action' must come last")
    return tokens


def _rows(result: Result) -> list[dict[str, Any]]:
    rows = []
    changes = result.provenance.get("ctx_changes", {})
    for cond, by_rep in changes.items():
        for rep, steps in by_rep.items():
            for rec in steps:
                ch = rec.get("ctx_changes", {})
                if not (ch.get("reads") or ch.get("wrote") or ch.get("metrics")):
                    continue
                rows.append(
                    {
                        "treatment": cond,
                        "replicate": f"Replicate {rep}",
                        "step": rec.get("step", "?"),
                        "changes": ch,
                    }
                )
    return rows


def _actions(changes: dict[str, Any]) -> list[str]:
    out = [f"read {k} = {v!r}" for k, v in changes.get("reads", {}).items()]
    out += [
        f"wrote {k}: {v.get('before')!r} -> {v.get('after')!r}"
        for k, v in changes.get("wrote", {}).items()
    ]
    out += [
        f"metric {k}: {v.get('before')!r} -> {v.get('after')!r}"
        for k, v in changes.get("metrics", {}).items()
    ]
    return out


def build_tree(result: Result, fmt: str) -> dict[str, Any]:
    """Nested dicts label -> children (``action`` leaves are lists of strings)."""
    tokens = parse_fmt(fmt)
    levels = [t for t in tokens if t != "action"]
    root: dict[str, Any] = {}
    for row in _rows(result):
        node = root
        for level in levels:
            node = node.setdefault(str(row[level]), {})
        if "action" in tokens:
            node.setdefault("__actions__", []).extend(_actions(row["changes"]))
    return root


def render_tree(result: Result, fmt: str) -> None:
    tree = build_tree(result, fmt)
    try:
        from rich.console import Console
        from rich.tree import Tree
    except ImportError:  # pragma: no cover - rich is a dependency
        _print_plain(tree, 0)
        return
    top = Tree("Provenance")

    def add(node: Any, children: dict[str, Any]) -> None:
        for label, sub in children.items():
            if label == "__actions__":
                for action in sub:
                    node.add(action)
            else:
                add(node.add(label), sub)

    add(top, tree)
    Console().print(top)


def _print_plain(tree: dict[str, Any], depth: int) -> None:
    for label, sub in tree.items():
        if label == "__actions__":
            for action in sub:
                print("  " * depth + action)
        else:
            print("  " * depth + label)
            _print_plain(sub, depth + 1)
