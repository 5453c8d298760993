"""Runs people can find: the name and tags a run was submitted with (``submit --name
--tag``, kept in its manifest's options, so they are signed with it), and the runs of a
store that match a name, tags and a state (``crystallize-dist list``)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crystallize_dist.distributed.messages import RUN_ID_PATTERN
from crystallize_dist.distributed.signing import verify_manifest
from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.errors import CrystallizeError, InvalidOptionError, RunNotFoundError

TAG_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: characters of a run name or a tag value at most
LABEL_LIMIT = 200
#: the states ``list --status`` filters by
STATES = ("running", "finished", "cancelled", "interrupted", "failed", "stopped")


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a mapping (the last value of a key wins)."""
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not TAG_KEY.match(key):
            raise InvalidOptionError(
                f"--tag {item!r} is not KEY=VALUE (a key of letters, digits, '_', '.', ':' "
                "or '-', at most 64)"
            )
        if len(value) > LABEL_LIMIT:
            raise InvalidOptionError(f"--tag {key}: value over {LABEL_LIMIT} characters")
        tags[key] = value
    return tags


def labels(name: str | None, tags: Sequence[str]) -> dict[str, Any]:
    """The run options ``submit --name --tag`` add (nothing when neither is given)."""
    out: dict[str, Any] = {}
    if name is not None:
        if not name.strip() or len(name) > LABEL_LIMIT:
            raise InvalidOptionError(f"--name must be 1 to {LABEL_LIMIT} characters, got {name!r}")
        out["name"] = name
    if tags:
        out["tags"] = parse_tags(tags)
    return out


@dataclass
class RunSummary:
    """One line of ``list``."""

    run_id: str
    name: str | None
    tags: dict[str, str]
    experiment: str
    state: str
    done: int
    failed: int
    total: int
    created: float
    elapsed: float
    notes: list[str] = field(default_factory=list)


def _labels_of(manifest: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """A manifest's name and tags, read by shape."""
    options = manifest.get("options")
    options = options if isinstance(options, Mapping) else {}
    name = options.get("name")
    tags = options.get("tags")
    return (
        name if isinstance(name, str) else None,
        {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {},
    )


def matches(run: RunSummary, name: str | None, tags: Mapping[str, str], state: str | None) -> bool:
    """Whether ``run`` has the name (a glob; the experiment's name for a run without one),
    every tag and the state asked for."""
    if state is not None and run.state != state:
        return False
    if name is not None and not fnmatch.fnmatchcase(run.name or run.experiment, name):
        return False
    return all(run.tags.get(k) == v for k, v in tags.items())


def find_runs(
    store: RunStore,
    limit: int,
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    state: str | None = None,
    secret: str | None = None,
) -> tuple[list[RunSummary | str], list[str]]:
    """The newest ``limit`` runs that match, newest first (a run that cannot be read is
    its id alone), and notes. Runs whose keys expired are left out, and so are entries of
    the runs index that are not run ids. With ``secret`` a run whose manifest does not
    verify shows ``bad signature`` as its state."""
    filtering = name is not None or bool(tags) or state is not None
    found = store.run_ids(limit * 50 if filtering else limit)
    ids = [i for i in found if RUN_ID_PATTERN.match(i)]
    notes: list[str] = []
    if len(ids) < len(found):
        notes.append(
            f"note: {len(found) - len(ids)} entries of the runs index are not run ids; left out"
        )
    out: list[RunSummary | str] = []
    for run_id in ids:
        if len(out) >= limit:
            break
        try:
            st = run_status(store, run_id)
            manifest = store.manifest(run_id)
        except RunNotFoundError:  # expired: its keys outlived by the runs index
            continue
        except (CrystallizeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if not filtering:
                out.append(run_id)
                notes.append(f"note: {exc}")
            continue
        run_name, run_tags = _labels_of(manifest)
        summary = RunSummary(
            run_id, run_name, run_tags, st.experiment, st.state, st.done, st.failed,
            st.total, st.created, st.elapsed,
        )  # fmt: skip
        if secret:
            try:
                verify_manifest(manifest, run_id, secret)
            except CrystallizeError:
                summary.state = "bad signature"
        if matches(summary, name, tags or {}, state):
            out.append(summary)
    return out, notes
