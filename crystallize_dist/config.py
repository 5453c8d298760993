"""Settings: one typed dataclass, read from ``CRYSTALLIZE_DIST_*`` environment variables.

=====================================  ==========================  ==========================
variable                               field                       default
=====================================  ==========================  ==========================
CRYSTALLIZE_DIST_BROKER_URL            broker_url                  redis://localhost:6379/0
CRYSTALLIZE_DIST_STORE_URL             store_url                   the broker URL
CRYSTALLIZE_DIST_HOME                  home                        ./.crystallize-dist
CRYSTALLIZE_DIST_QUEUE                 queue                       crystallize
CRYSTALLIZE_DIST_CELL_TIME_LIMIT       cell_time_limit (s)         3600
CRYSTALLIZE_DIST_VISIBILITY_TIMEOUT    visibility_timeout (s)      3900
CRYSTALLIZE_DIST_MAX_ATTEMPTS          max_attempts                3
CRYSTALLIZE_DIST_RETRIES               retries                     0
CRYSTALLIZE_DIST_MAX_RECORD_BYTES      max_record_bytes            16777216 (16 MiB)
CRYSTALLIZE_DIST_RESULT_TTL            result_ttl (s)              2592000 (30 days)
CRYSTALLIZE_DIST_SECRET                secret (HMAC-SHA256 key)    unset
CRYSTALLIZE_DIST_DRIFT_POLICY          drift_policy                warn
CRYSTALLIZE_DIST_REQUIRE_NOEVICTION    require_noeviction          0 (warn only)
CRYSTALLIZE_DIST_HEARTBEAT_INTERVAL    heartbeat_interval (s)      5
CRYSTALLIZE_DIST_HEARTBEAT_GRACE       heartbeat_grace (s)         30
CRYSTALLIZE_DIST_STRICT_PARAMS         strict_params               0 (warn only)
=====================================  ==========================  ==========================

With ``secret`` set, submitters sign each run's manifest and code bundle, workers sign the
records and stamps they write, and every reader verifies them (see docs/security.md).
``require_noeviction`` turns the warning about a run store whose Redis may evict keys
(its ``maxmemory-policy`` is not ``noeviction``) into a refusal. ``strict_params`` makes a
treatment parameter that no step or datasource of the first replicate read fail that cell
instead of giving a warning (``submit --strict-params``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.errors import InvalidOptionError
from crystallize_dist.urls import check_url, redact

BROKER_SCHEMES = ("redis", "rediss")
STORE_SCHEMES = ("redis", "rediss", "sqlite")
DRIFT_POLICIES = ("warn", "refuse")


def _number(env: Mapping[str, str], name: str, default: float, cast: type) -> Any:
    raw = env.get(C.ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise InvalidOptionError(f"{C.ENV_PREFIX}{name}={raw!r} is not a {cast.__name__}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(C.ENV_PREFIX + name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise InvalidOptionError(f"{C.ENV_PREFIX}{name}={raw!r} is not 0 or 1")


def task_limits(cell_time_limit: float, cells: int = 1) -> tuple[float, float]:
    """Celery's (soft, hard) time limits for a task of ``cells`` cells.

    Each cell has its own deadline (``cell_time_limit``, raised inside the cell by the
    runner); Celery's soft limit comes a grace period later and its hard limit - which kills
    the pool process - one more grace period after that.
    """
    grace = max(1.0, min(30.0, cell_time_limit / 2))
    budget = cell_time_limit * cells
    return budget + grace, budget + 2 * grace


@dataclass(frozen=True, repr=False)
class Settings:
    """Where the broker and store are and how cells are run (see the module table)."""

    broker_url: str = C.DEFAULT_BROKER_URL
    store_url: str | None = None
    home: Path = field(default_factory=lambda: Path(C.HOME_DIRNAME))
    queue: str = C.DEFAULT_QUEUE
    cell_time_limit: float = C.DEFAULT_CELL_TIME_LIMIT
    visibility_timeout: float = C.DEFAULT_VISIBILITY_TIMEOUT
    max_attempts: int = C.DEFAULT_MAX_ATTEMPTS
    retries: int = C.DEFAULT_RETRIES
    max_record_bytes: int = C.DEFAULT_MAX_RECORD_BYTES
    result_ttl: int = C.DEFAULT_RESULT_TTL
    secret: str | None = None
    drift_policy: str = "warn"
    require_noeviction: bool = False
    heartbeat_interval: float = C.DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_grace: float = C.DEFAULT_HEARTBEAT_GRACE
    strict_params: bool = False

    def __post_init__(self) -> None:
        # checked before anything is dialled; query-string credentials moved to the userinfo
        object.__setattr__(
            self, "broker_url", check_url(self.broker_url, BROKER_SCHEMES, "broker URL")
        )
        if self.store_url is not None:
            object.__setattr__(
                self, "store_url", check_url(self.store_url, STORE_SCHEMES, "store URL")
            )
        if self.cell_time_limit <= 0:
            raise InvalidOptionError(f"cell_time_limit must be > 0, got {self.cell_time_limit}")
        hard = self.task_limits()[1]
        if self.visibility_timeout <= hard:
            raise InvalidOptionError(
                f"visibility_timeout ({self.visibility_timeout:g}s) must be longer than a "
                f"one-cell task's hard time limit ({hard:g}s for a cell time limit of "
                f"{self.cell_time_limit:g}s), or running cells get delivered twice"
            )
        if self.max_attempts < 1:
            raise InvalidOptionError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.retries < 0:
            raise InvalidOptionError(f"retries must be >= 0, got {self.retries}")
        if self.heartbeat_interval <= 0 or self.heartbeat_grace < 2 * self.heartbeat_interval:
            raise InvalidOptionError(
                f"heartbeat_grace ({self.heartbeat_grace:g}s) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval:g}s, > 0), or live workers "
                "look dead between two beats"
            )
        if self.drift_policy not in DRIFT_POLICIES:
            raise InvalidOptionError(
                f"drift_policy must be one of {DRIFT_POLICIES}, got {self.drift_policy!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``CRYSTALLIZE_DIST_*`` variables; ``overrides`` (not None) win."""
        env = os.environ if env is None else env
        p = C.ENV_PREFIX
        values: dict[str, Any] = {
            "broker_url": env.get(p + "BROKER_URL") or C.DEFAULT_BROKER_URL,
            "store_url": env.get(p + "STORE_URL") or None,
            "home": Path(env.get(p + "HOME") or C.HOME_DIRNAME),
            "queue": env.get(p + "QUEUE") or C.DEFAULT_QUEUE,
            "cell_time_limit": _number(env, "CELL_TIME_LIMIT", C.DEFAULT_CELL_TIME_LIMIT, float),
            "visibility_timeout": _number(
                env, "VISIBILITY_TIMEOUT", C.DEFAULT_VISIBILITY_TIMEOUT, float
            ),
            "max_attempts": _number(env, "MAX_ATTEMPTS", C.DEFAULT_MAX_ATTEMPTS, int),
            "retries": _number(env, "RETRIES", C.DEFAULT_RETRIES, int),
            "max_record_bytes": _number(env, "MAX_RECORD_BYTES", C.DEFAULT_MAX_RECORD_BYTES, int),
            "result_ttl": _number(env, "RESULT_TTL", C.DEFAULT_RESULT_TTL, int),
            "secret": env.get(p + "SECRET") or None,
            "drift_policy": env.get(p + "DRIFT_POLICY") or "warn",
            "require_noeviction": _flag(env, "REQUIRE_NOEVICTION"),
            "heartbeat_interval": _number(
                env, "HEARTBEAT_INTERVAL", C.DEFAULT_HEARTBEAT_INTERVAL, float
            ),
            "heartbeat_grace": _number(env, "HEARTBEAT_GRACE", C.DEFAULT_HEARTBEAT_GRACE, float),
            "strict_params": _flag(env, "STRICT_PARAMS"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not (overrides.get("visibility_timeout") or env.get(p + "VISIBILITY_TIMEOUT")):
            # not chosen by the user: keep it longer than a one-cell task can live
            hard = task_limits(float(values["cell_time_limit"]))[1]
            values["visibility_timeout"] = max(values["visibility_timeout"], hard + 240)
        return cls(**values)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["broker_url"] = redact(self.broker_url)
        if self.store_url:
            shown["store_url"] = redact(self.store_url)
        if self.secret:
            shown["secret"] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def task_limits(self, cells: int = 1) -> tuple[float, float]:
        """Celery's (soft, hard) time limits for a task of ``cells`` cells."""
        return task_limits(self.cell_time_limit, cells)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def effective_store_url(self) -> str:
        return self.store_url or self.broker_url

    @property
    def sqlite_path(self) -> Path:
        """The embedded store file (``--local``)."""
        return self.home / C.SQLITE_FILENAME

    def env(self) -> dict[str, str]:
        """These settings as ``CRYSTALLIZE_DIST_*`` variables (for child processes)."""
        p = C.ENV_PREFIX
        out = {
            p + "BROKER_URL": self.broker_url,
            p + "HOME": str(self.home),
            p + "QUEUE": self.queue,
            p + "CELL_TIME_LIMIT": str(self.cell_time_limit),
            p + "VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            p + "MAX_ATTEMPTS": str(self.max_attempts),
            p + "RETRIES": str(self.retries),
            p + "MAX_RECORD_BYTES": str(self.max_record_bytes),
            p + "RESULT_TTL": str(self.result_ttl),
            p + "DRIFT_POLICY": self.drift_policy,
            p + "REQUIRE_NOEVICTION": "1" if self.require_noeviction else "0",
            p + "HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
            p + "HEARTBEAT_GRACE": str(self.heartbeat_grace),
            p + "STRICT_PARAMS": "1" if self.strict_params else "0",
        }
        if self.store_url:
            out[p + "STORE_URL"] = self.store_url
        if self.secret:
            out[p + "SECRET"] = self.secret
        return out
