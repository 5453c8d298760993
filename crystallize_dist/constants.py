"""Every name, key, default and limit crystallize-dist uses, each with its unit and lifetime.

Core (Crystallize-compatible) constants come first; then the run store's Redis keys and
SQLite tables; then the defaults that ``Settings`` falls back to.
"""

from __future__ import annotations

#: This package's version (also in pyproject.toml); workers compare it with the submitter's.
VERSION = "0.1.0"

# --- Crystallize-compatible context keys and file names ------------------------------------
METADATA_FILENAME = "metadata.json"
BASELINE_CONDITION = "baseline"
REPLICATE_KEY = "replicate"
CONDITION_KEY = "condition"
SEED_USED_KEY = "seed_used"
STEP_NAME_KEY = "step_name"
#: the pools ParallelExecution runs replicates on (its ``executor_type``)
VALID_EXECUTOR_TYPES = frozenset({"thread", "process"})

# --- Environment variables -----------------------------------------------------------------
ENV_PREFIX = "CRYSTALLIZE_DIST_"
#: Folder holding the embedded SQLite store and the code-bundle cache.
HOME_DIRNAME = ".crystallize-dist"
SQLITE_FILENAME = "runs.sqlite3"

# --- Redis run store: every key, its type and lifetime ---------------------------------------
# All keys of one run share the prefix ``cdist:run:{<run_id>}:`` (the braces are a Redis
# Cluster hash tag: one run's keys live in one slot, so its Lua scripts may touch them all) and
# expire together ``DEFAULT_RESULT_TTL`` seconds after the last write (each write refreshes it).
KEY_PREFIX = "cdist"
#: sorted set of run ids scored by creation time (unix seconds); lives forever, pruned by TTL.
KEY_RUNS = f"{KEY_PREFIX}:runs"


def key_manifest(run_id: str) -> str:
    """String: the run's immutable manifest (JSON)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:manifest"


def key_records(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> cell record JSON (first write wins)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:records"


def key_counters(run_id: str) -> str:
    """Hash: O(1) status counters (``ok:<cond>``, ``failed:<cond>``, ``attempts``, ...)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:counters"


def key_attempts(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> number of deliveries that started the cell."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:attempts"


def key_duplicates(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> deliveries that found the cell recorded."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:duplicates"


def key_workers(run_id: str) -> str:
    """Hash: worker hostname -> JSON of its environment (versions, drift)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:workers"


def key_state(run_id: str) -> str:
    """Hash: mutable run state (``cancelled``, ``resumes``, timestamps)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:state"


def key_skipped(run_id: str) -> str:
    """Set: cells a worker did not start because the run was cancelled (``resume`` sends
    them again even while their spent message is still held unacknowledged)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:skipped"


def key_bundle(digest: str) -> str:
    """String: a zipped code bundle, content-addressed by its sha256."""
    return f"{KEY_PREFIX}:bundle:{digest}"


#: Field names inside the counters hash (records count under their status, "ok" / "error",
#: and under "<status>:<condition>").
COUNTER_OK = "ok"
COUNTER_FAILED = "error"
COUNTER_ATTEMPTS = "attempts"
COUNTER_DUPLICATES = "duplicates"
COUNTER_FIRST_AT = "first_at"
COUNTER_LAST_AT = "last_at"

# --- SQLite run store: tables ----------------------------------------------------------------
#: runs(run_id PK, created REAL unix s, manifest TEXT JSON, state TEXT JSON)
TABLE_RUNS = "runs"
#: records(run_id, cell, condition, replicate, status, record TEXT JSON; PK(run_id, cell))
TABLE_RECORDS = "records"
#: counters(run_id, name, value; PK(run_id, name))
TABLE_COUNTERS = "counters"
#: attempts(run_id, cell, n, duplicates; PK(run_id, cell))
TABLE_ATTEMPTS = "attempts"
#: workers(run_id, host, info TEXT JSON; PK(run_id, host))
TABLE_WORKERS = "workers"
#: blobs(key PK, data BLOB): content-addressed code bundles
TABLE_BLOBS = "blobs"

#: set (to "1") in every process that runs cells for crystallize-dist workers or the
#: ``--local`` pool: an experiment run from inside one must not submit runs of its own
ENV_IN_WORKER = "CRYSTALLIZE_DIST_IN_WORKER"

# --- Celery ----------------------------------------------------------------------------------
TASK_RUN_CELLS = "crystallize_dist.run_cells"
DEFAULT_QUEUE = "crystallize"

# --- Defaults (Settings falls back to these) ---------------------------------------------------
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
#: seconds: a cell running longer than this is killed and recorded as a timeout.
DEFAULT_CELL_TIME_LIMIT = 3600.0
#: seconds: an unacknowledged message is re-delivered after this; must exceed the time limit.
DEFAULT_VISIBILITY_TIMEOUT = 3900.0
#: seconds: how long a run's keys live in Redis after their last write (30 days).
DEFAULT_RESULT_TTL = 30 * 24 * 3600
#: deliveries of one cell before it is recorded as failed with "worker lost".
DEFAULT_MAX_ATTEMPTS = 3
#: extra runs of a cell whose code raised, before its error is recorded.
DEFAULT_RETRIES = 0
#: bytes: largest cell record stored; a bigger one becomes a RecordTooLargeError cell error.
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
#: cells: larger results leave per-step provenance (ctx_changes) in the cell records only.
STEP_PROVENANCE_LIMIT = 10_000
#: records fetched per round trip when streaming a run's records.
DEFAULT_PAGE_SIZE = 2000
#: seconds: how long a command waits for Redis to answer its first ping (a port that accepts
#: connections but never answers is an error after this, not a hang).
PING_TIMEOUT = 5.0
#: bytes: largest code bundle ``submit`` will pack.
DEFAULT_BUNDLE_LIMIT = 20 * 1024 * 1024
