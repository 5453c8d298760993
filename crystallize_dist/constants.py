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
#: A file of SQLITE_RESERVE_BYTES bytes kept beside the SQLite store (its name plus this
#: suffix) for as long as the store lives: when the disk fills up mid-run it is deleted, so
#: the run can still be marked failed with the cause (``distributed/store/reserve.py``).
SQLITE_RESERVE_SUFFIX = "-reserve"
#: bytes: size of that reserve file (a state update needs a few 4 KiB pages).
SQLITE_RESERVE_BYTES = 64 * 1024

# --- Redis run store: every key, its type and lifetime ---------------------------------------
# All keys of one run share the prefix ``cdist:run:{<run_id>}:`` (the braces are a Redis
# Cluster hash tag: one run's keys live in one slot, so its Lua scripts may touch them all) and
# expire together ``DEFAULT_RESULT_TTL`` seconds after the last write: every write refreshes
# the TTL of all of them (``run_keys``), so no key of a live run expires.
KEY_PREFIX = "cdist"
#: sorted set of run ids scored by creation time (unix seconds); pruned of runs older than the
#: TTL and given the TTL itself whenever a run is created, so it expires with its runs.
KEY_RUNS = f"{KEY_PREFIX}:runs"
#: sorted set of worker nodes scored by their last heartbeat (unix seconds); a node silent for
#: a day is dropped.
KEY_NODES = f"{KEY_PREFIX}:nodes"
#: string with NX/EX: held by the one process that looks for orphaned messages right now.
KEY_REAPER = f"{KEY_PREFIX}:reaper"
#: kombu's Redis transport (not ours): the hash of messages delivered to a worker and not yet
#: acknowledged (delivery tag -> [message, exchange, routing key]), and the sorted set of
#: their delivery times (unix seconds).
KOMBU_UNACKED = "unacked"
KOMBU_UNACKED_INDEX = "unacked_index"


def key_manifest(run_id: str) -> str:
    """String: the run's immutable manifest (JSON)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:manifest"


def key_records(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> cell record text (first write wins), then
    the store's note of what its write counted (``store/scripts.py``)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:records"


def key_counters(run_id: str) -> str:
    """Hash: O(1) status counters (``ok:<cond>``, ``failed:<cond>``, ``attempts``, ...)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:counters"


def key_attempts(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> number of deliveries that started the cell,
    while it has no record (its record's note keeps the number)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:attempts"


def key_duplicates(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> deliveries that found the cell recorded."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:duplicates"


def key_workers(run_id: str) -> str:
    """Hash: worker hostname -> JSON of its environment (versions, drift)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:workers"


def key_state(run_id: str) -> str:
    """Hash: mutable run state (``cancelled``, ``resumes``, timestamps, ``failed``: why the
    run could not go on, ``driver``: the process running a ``--local`` run)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:state"


def key_skipped(run_id: str) -> str:
    """Set: cells a worker did not start because the run was cancelled (``resume`` sends
    them again even while their spent message is still held unacknowledged)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:skipped"


def key_status(run_id: str) -> str:
    """Hash: field ``<condition>:<replicate>`` -> the status (and node) its record was counted
    under, for records written without a note (``store/bulk_scripts.py``), so deleting one takes
    back exactly what its write added to the counters."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:status"


def key_node_ids(run_id: str) -> str:
    """Hash: worker node -> its number in the run, ``#<number>`` -> node, and ``#`` -> the
    last number given (a record's note names the node that wrote it by number)."""
    return f"{KEY_PREFIX}:run:{{{run_id}}}:nodeids"


def run_keys(run_id: str) -> list[str]:
    """Every key of a run (they share its hash slot and its TTL)."""
    return [
        key_manifest(run_id),
        key_state(run_id),
        key_records(run_id),
        key_counters(run_id),
        key_attempts(run_id),
        key_duplicates(run_id),
        key_status(run_id),
        key_workers(run_id),
        key_skipped(run_id),
        key_node_ids(run_id),
    ]


def key_node(node: str) -> str:
    """String: a worker node's last heartbeat (JSON: host, pid, pool, versions, the delivery
    tags of the messages it holds, its cells in flight per run); lives NODE_TTL seconds."""
    return f"{KEY_PREFIX}:node:{node}"


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
#: how many loads of the run's experiment failed on workers (all nodes together)
COUNTER_LOAD_FAILURES = "load_failures"

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
#: node_numbers(run_id, node, number; PK(run_id, node)): each worker node's number in a run
TABLE_NODE_NUMBERS = "node_numbers"

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
#: seconds between two heartbeats of a worker node.
DEFAULT_HEARTBEAT_INTERVAL = 5.0
#: seconds: a node silent this long is dead; the messages it held are given to other workers.
DEFAULT_HEARTBEAT_GRACE = 30.0
#: seconds a node's heartbeat key (and its entry in KEY_NODES) outlives its last beat.
NODE_TTL = 24 * 3600
#: seconds without any worker taking a cell before a waiting submitter says so.
NO_WORKER_NOTICE = 15.0
#: seconds a worker process waits before it tries again to load an experiment it failed to.
LOAD_RETRY_SECONDS = 5.0
#: deliveries of one cell before it is recorded as failed with "worker lost".
DEFAULT_MAX_ATTEMPTS = 3
#: extra runs of a cell whose code raised, before its error is recorded.
DEFAULT_RETRIES = 0
#: bytes: largest cell record stored; a bigger one becomes a RecordTooLargeError cell error.
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
#: cells: larger results leave per-step provenance (ctx_changes) in the cell records only.
STEP_PROVENANCE_LIMIT = 10_000
#: cells: the per-cell provenance of a big result's JSON is encoded this many cells at a
#: time, so its text is never held whole (model/result_stream.py).
JSON_CHUNK_CELLS = 10_000
#: replicates: a bigger run's manifest holds its seed table packed (base64 of int64s, one
#: string to parse) instead of as a JSON list (distributed/store/seed_table.py).
SEED_TABLE_LIST_LIMIT = 10_000
#: records fetched per round trip when streaming a run's records.
DEFAULT_PAGE_SIZE = 2000
#: seconds: the longest a worker keeps the records of quick cells that ran ahead of their
#: starts before it writes them (one round trip for all of them); a killed worker loses at
#: most this much work, which runs again with the same seeds.
RECORD_FLUSH_SECONDS = 0.1
#: seconds: how long a command waits for Redis to answer its first ping (a port that accepts
#: connections but never answers is an error after this, not a hang).
PING_TIMEOUT = 5.0
#: seconds: how long a failed first connection's endpoint is probed the other way round
#: (plain for ``rediss://``, TLS for ``redis://``) to tell a TLS mix-up from a server down.
TLS_PROBE_TIMEOUT = 2.0
#: where ``result`` and ``wait`` write a run's artifact files (relative to the folder they
#: run in); the run's manifest has no say in it.
DEFAULT_ARTIFACTS_DIR = "data"
#: bytes: block size for hashing and copying artifact files (never held whole in memory).
ARTIFACT_BLOCK_BYTES = 1024 * 1024
#: the artifact store (``CRYSTALLIZE_DIST_ARTIFACT_STORE``) keeps a file at
#: ``<store>/<sha[:2]>/<sha256 hex>``, for as long as its owner keeps the store (nothing
#: here deletes it); records name the file's sha256 and size.
ARTIFACT_STORE_LAYOUT = "{sha2}/{sha}"
#: bytes: largest code bundle ``submit`` will pack.
DEFAULT_BUNDLE_LIMIT = 20 * 1024 * 1024

# --- Results people read: comparisons, reports, the canary --------------------------------------
#: resamples of a comparison's bootstrap intervals (paired and unpaired).
COMPARE_RESAMPLES = 10_000
#: random sign patterns of a comparison's permutation test (more pairs than EXACT_FLIP_PAIRS).
COMPARE_PERMUTATIONS = 10_000
#: pairs up to which the sign-flip test enumerates all 2**n sign patterns (exact p-value).
EXACT_FLIP_PAIRS = 16
#: the confidence level of every interval a comparison gives.
COMPARE_LEVEL = 0.95
#: seconds of counters ``status --watch`` measures its throughput over.
LIVE_RATE_WINDOW = 30.0
#: cells: ``status --watch`` reads a run's failed records for its error list up to this size.
LIVE_SCAN_LIMIT = 20_000
#: lines of recent cell errors, and of the waiter's notices, ``status --watch`` shows.
LIVE_ERRORS = 5
LIVE_NOTICES = 3
#: seconds between two redraws of ``status --watch``.
LIVE_POLL = 1.0
#: run state field prefix of the canary's verdicts (``canary:<condition>:<replicate>``).
CANARY_FIELD = "canary:"
#: mixed with a run's master seed to draw its canary sample.
CANARY_SALT = 0x63616E61
#: task id suffix of canary messages (``<run>:<condition>:<replicate>:canary``).
CANARY_TASK_SUFFIX = ":canary"
#: times a worker hands a canary message back to find another process or worker for it,
#: before it runs the cell again itself.
CANARY_HANDBACKS = 16
#: cells of the sample a worker looks at for one another process recorded, when it hands
#: back a canary message of a cell it recorded itself.
CANARY_LOOKS = 8
#: seconds a worker stays busy after it hands a canary message back (at least; at most
#: twice as long, drawn at random).
CANARY_PAUSE = 0.5
