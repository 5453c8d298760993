"""Every exception crystallize-dist raises, under one root.

::

    CrystallizeError                    root: catch this to catch everything of ours
    ├── MissingMetricError              a hypothesis names a metric a condition lacks (KeyError)
    ├── PipelineExecutionError          a pipeline step raised; ``.original_exception``
    ├── ContextMutationError            a context key was written twice
    ├── ValidationError                 an experiment is not runnable as configured (ValueError)
    │   ├── ConfigError                 a config.yaml folder is malformed
    │   │   └── MissingConfigError      a config folder (or one it refers to) does not
    │   │                               exist (FileNotFoundError)
    │   └── InvalidOptionError          a run option (replicates, seed, treatment, ...) is wrong
    ├── MetricValueError                a metric value has no JSON form
    ├── ComparisonError                 a comparison cannot be made as asked (ValueError)
    ├── CacheError                      the step cache cannot be written (OSError)
    ├── MissingArtifactError            an artifact file or manifest entry is missing
    │                                   (FileNotFoundError)
    ├── ArtifactError                   an Artifact used unbound, or without a producer or
    │                                   ArtifactPlugin (RuntimeError)
    ├── ExperimentLoadError             an experiment reference does not import or is not one
    ├── ExtraMissingError               an optional extra is not installed (ImportError)
    ├── UnpicklableExperimentError      the process executor cannot pickle the experiment
    ├── CellError                       a failed cell, rebuilt from its JSON record
    ├── CellTimeoutError                a cell ran longer than its time limit
    ├── CodeMismatchError               a worker's code differs from what was submitted
    ├── BundleError                     a code bundle is missing, too big, unsigned or tampered
    ├── SignatureError                  a signed manifest, run state or stamp does not verify
    │   └── TamperedRecordError         a stored cell record does not verify (numbers unused)
    ├── ReplayMismatchError             replayed cells differ from their stored records
    ├── BrokerError                     the broker cannot be reached or refused us
    ├── RunTimeoutError                 a run did not finish within the time waited for it
    ├── NestedRunError                  a distributed run was started from inside a worker
    ├── InfrastructureError             a task failed outside experiment code, for good
    ├── StoreError                      the run store cannot be used
    │   ├── StoreWriteError             the store refused a write: its disk is full or
    │   │                               read-only, or Redis is out of memory
    │   ├── RunNotFoundError            no run with that id
    │   ├── CorruptRecordError          a stored record is not valid JSON of the right shape
    │   └── EvictionPolicyError         Redis may evict run keys and noeviction is required
    └── TaskMessageError                a task message has unknown fields or wrong types

Exception classes that upstream Crystallize raised as ``ValueError`` / ``TypeError`` /
``RuntimeError`` / ``OSError`` / ``FileNotFoundError`` keep those bases too, so
``except ValueError`` in user code still works.
Every message is one line that names the offending value and where it came from.
"""

from __future__ import annotations

import builtins
from typing import Any, TypeVar


class CrystallizeError(Exception):
    """Root of every crystallize-dist exception."""


class MissingMetricError(CrystallizeError, KeyError):
    """Raised when a hypothesis needs a metric that a condition did not record."""

    def __init__(self, metric: str) -> None:
        super().__init__(metric)
        self.metric = metric

    def __str__(self) -> str:
        return f"required metric '{self.metric}' missing"


class PipelineExecutionError(CrystallizeError):
    """Raised when a pipeline step fails; the step's exception is ``original_exception``."""

    def __init__(self, step_name: str, original_exception: BaseException) -> None:
        super().__init__(f"Step '{step_name}' failed: {original_exception}")
        self.step_name = step_name
        self.original_exception = original_exception

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step_name, self.original_exception))


class ContextMutationError(CrystallizeError):
    """Raised when code writes a context key that already exists."""


class ValidationError(CrystallizeError, ValueError):
    """Raised when an experiment is not runnable as configured."""


class ConfigError(ValidationError):
    """Raised when a config.yaml experiment folder is malformed."""


class MissingConfigError(ConfigError, FileNotFoundError):
    """Raised when a config folder, or the folder a datasource reference names, is missing."""


class InvalidOptionError(ValidationError, TypeError):
    """Raised when a run option (replicates, seed, treatment name, URL, ...) is invalid."""


class MetricValueError(CrystallizeError, TypeError):
    """Raised when a recorded metric value has no JSON form (names the metric and type)."""


class ComparisonError(CrystallizeError, ValueError):
    """Raised when a comparison or per-cell export cannot be made as asked (names why)."""


class CacheError(CrystallizeError, OSError):
    """Raised when a cacheable step's output cannot be stored in the step cache."""


class MissingArtifactError(CrystallizeError, FileNotFoundError):
    """Raised when an artifact a datasource reads (or its manifest entry) does not exist."""


class ArtifactError(CrystallizeError, RuntimeError):
    """Raised when an Artifact is written unbound, or read with no producer or ArtifactPlugin."""


class ExperimentLoadError(CrystallizeError, ImportError):
    """Raised when an experiment reference does not import or does not name an Experiment."""


class ExtraMissingError(CrystallizeError, ImportError):
    """Raised when an optional extra is missing (the report's charts: ``[report]``)."""


class UnpicklableExperimentError(CrystallizeError, RuntimeError):
    """Raised when the process executor cannot pickle the experiment for its workers."""


class CellError(CrystallizeError):
    """A failed cell, rebuilt from its JSON record so it can cross any process boundary.

    ``error_type`` is the name of the exception the cell raised, ``traceback_str`` its
    traceback text, ``condition`` / ``replicate`` where it happened.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "Exception",
        traceback_str: str = "",
        condition: str | None = None,
        replicate: int | None = None,
        step: str | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.error_type = error_type
        self.traceback_str = traceback_str
        self.condition = condition
        self.replicate = replicate
        self.step = step

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"CellError({self.error_type}: {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CellError) and (self.error_type, self.message) == (
            other.error_type,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.error_type, self.message))

    def __reduce__(self) -> tuple[Any, ...]:
        static = getattr(type(self), "static_class", type(self))
        return (_rebuild_cell_error, (static, self.error_type, self.message, self.__dict__))


def _rebuild_cell_error(
    cls: type[CellError], error_type: str, message: str, state: dict[str, Any]
) -> CellError:
    kind = cell_error_class(cls, error_type)
    err = kind.__new__(kind)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class StepCellError(CellError, PipelineExecutionError):
    """A failed cell whose step raised: both a CellError and a PipelineExecutionError."""

    def __init__(
        self, message: str, *, original_type: str, original_message: str, **kwargs: Any
    ) -> None:
        CellError.__init__(self, message, **kwargs)
        self.step_name = kwargs.get("step") or ""
        self.original_exception = cell_error_class(CellError, original_type)(
            original_message, error_type=original_type
        )


_KINDS: dict[tuple[type[CellError], str], type[CellError]] = {}
_E = TypeVar("_E", bound=CellError)


def cell_error_class(base: type[_E], error_type: str) -> type[_E]:
    """``base``, or a subclass of it that is also the exception class ``error_type`` names
    when that is a built-in exception or one of this module's: a cell that raised
    FileNotFoundError gives an error that ``except FileNotFoundError`` (or ``OSError``)
    catches, as the original would have been in Crystallize, while it stays a CellError
    made from JSON. Other names give ``base`` itself."""
    key: tuple[type[CellError], str] = (base, error_type)
    kind: Any = _KINDS.get(key)
    if kind is None:
        kind = base
        other = getattr(builtins, error_type, None) or globals().get(error_type)
        if isinstance(other, type) and issubclass(other, Exception) and not issubclass(base, other):
            try:
                made: Any = type(
                    f"{base.__name__}[{error_type}]", (base, other), {"static_class": base}
                )
                made("probe")  # some built-in exceptions cannot be mixed in: keep base
                made.__new__(made)  # (and unpickling makes one this way)
                kind = made
            except TypeError:
                pass
        _KINDS[key] = kind
    found: type[_E] = kind
    return found


class CellTimeoutError(CrystallizeError):
    """Raised inside a cell that runs longer than the cell time limit."""


class CodeMismatchError(CrystallizeError):
    """Raised when a worker's experiment code differs from the submitted fingerprint."""


class BundleError(CrystallizeError):
    """Raised when a code bundle is missing, too large, unsigned or tampered with."""


class SignatureError(CrystallizeError):
    """Raised when something signed with ``CRYSTALLIZE_DIST_SECRET`` (a manifest, a state
    entry, a worker's stamp) is unsigned, malformed, altered, or another secret's or run's."""


class TamperedRecordError(SignatureError):
    """Raised when a stored cell record does not verify: the cell fails, its numbers unused."""


class ReplayMismatchError(CrystallizeError):
    """Raised by ``replay`` when a re-run cell differs from its stored record."""


class BrokerError(CrystallizeError, ConnectionError):
    """Raised when the broker cannot be reached or refuses the connection."""


class RunTimeoutError(CrystallizeError, TimeoutError):
    """Raised when a run does not finish within the time a caller waits for it."""


class NestedRunError(CrystallizeError, RuntimeError):
    """Raised when code running inside a worker tries to submit a distributed run."""


class InfrastructureError(CrystallizeError):
    """Recorded for the cells of a task that failed outside experiment code (the store or the
    broker refused, a limit fired outside a cell) and could not be sent again."""


class StoreError(CrystallizeError):
    """Raised when the run store cannot be used."""


class StoreWriteError(StoreError):
    """Raised when the run store refuses a write because it cannot take one: its disk is
    full or read-only, or its Redis is out of memory (``maxmemory`` with ``noeviction``) or
    read-only. The run is marked failed with this cause (``RunStore.mark_failed``)."""


class RunNotFoundError(StoreError, KeyError):
    """Raised when no run with the given id exists in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


class CorruptRecordError(StoreError):
    """Raised when a stored record is not valid JSON of the expected shape."""


class EvictionPolicyError(StoreError):
    """Raised when the store's Redis may evict keys and REQUIRE_NOEVICTION asks to refuse."""


class TaskMessageError(CrystallizeError, ValueError):
    """Raised when a task message has unknown fields, wrong types or values out of range."""
