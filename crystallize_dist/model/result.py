"""Result and its metric structs, with lossless JSON round trips."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystallize_dist.canonical import json_text, metrics_digest, paused_gc, to_jsonable
from crystallize_dist.errors import CellError, StepCellError, cell_error_class


@dataclass
class TreatmentMetrics:
    """Metric name -> flat list of values, in replicate order."""

    metrics: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class HypothesisResult:
    """One hypothesis: ``results`` per treatment and the ``ranking`` of treatments."""

    name: str
    results: dict[str, Any]
    ranking: dict[str, Any]

    def get_for_treatment(self, treatment: str) -> Any:
        return self.results.get(treatment)


@dataclass
class ExperimentMetrics:
    baseline: TreatmentMetrics
    treatments: dict[str, TreatmentMetrics]
    hypotheses: list[HypothesisResult] = field(default_factory=list)

    def to_df(self) -> Any:
        """One row per (hypothesis, treatment): ``condition`` (the treatment),
        ``hypothesis`` and the verifier's fields (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "pandas is required for to_df(); install it with: pip install pandas"
            ) from exc

        rows = []
        for hyp in self.hypotheses:
            for name, res in hyp.results.items():
                row = {"condition": name, "hypothesis": hyp.name}
                if isinstance(res, Mapping):
                    row.update(res)
                else:
                    row["result"] = res
                rows.append(row)
        return pd.DataFrame(rows)


def error_to_dict(err: BaseException) -> dict[str, Any]:
    """The JSON form of an error stored in a Result."""
    if isinstance(err, CellError):
        out: dict[str, Any] = {
            "type": err.error_type,
            "message": err.message,
            "traceback": err.traceback_str,
            "condition": err.condition,
            "replicate": err.replicate,
            "step": err.step,
        }
        original = getattr(err, "original_exception", None)
        if isinstance(original, CellError):
            out["original"] = {"type": original.error_type, "message": original.message}
        return out
    return {
        "type": type(err).__name__,
        "message": str(err),
        "traceback": getattr(err, "traceback_str", ""),
    }


def error_from_dict(data: Mapping[str, Any]) -> CellError:
    """Rebuild the exception object of a failed cell from its JSON form."""
    common = {
        "error_type": data.get("type", "Exception"),
        "traceback_str": data.get("traceback", "") or "",
        "condition": data.get("condition"),
        "replicate": data.get("replicate"),
        "step": data.get("step"),
    }
    original = data.get("original")
    if original is not None:
        step_error = cell_error_class(StepCellError, str(common["error_type"]))
        return step_error(
            data.get("message", ""),
            original_type=original.get("type", ""),
            original_message=original.get("message", ""),
            **common,
        )
    return cell_error_class(CellError, str(common["error_type"]))(data.get("message", ""), **common)


class Result:
    """What a run returns: metrics, hypotheses, artifacts, errors, provenance and digest."""

    def __init__(
        self,
        metrics: ExperimentMetrics,
        artifacts: dict[str, Any] | None = None,
        errors: dict[str, BaseException] | None = None,
        provenance: dict[str, Any] | None = None,
        *,
        timestamp: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.artifacts = artifacts or {}
        self.errors = errors or {}
        self.provenance = provenance or {}
        self.timestamp = timestamp
        self.artifact_steps: dict[str, str] = {}

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the metrics (see ``crystallize_dist/canonical.py``)."""
        return metrics_digest(
            self.metrics.baseline.metrics,
            {name: tm.metrics for name, tm in self.metrics.treatments.items()},
        )

    @property
    def missing(self) -> list[str]:
        """Cells (``condition:replicate``) without a record; empty for a complete result."""
        return list(self.provenance.get("missing", []))

    def get_artifact(self, name: str) -> Any:
        return self.artifacts.get(name)

    def get_hypothesis(self, name: str) -> HypothesisResult | None:
        return next((h for h in self.metrics.hypotheses if h.name == name), None)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types (see ``to_json``)."""
        out = self._dict()
        out["provenance"] = to_jsonable(self.provenance, strict=False)
        return out

    def _dict(self) -> dict[str, Any]:
        """to_dict without converting the provenance. A partial result (cells without a
        record, ``missing``) says ``"complete": false`` and has no digest: its numbers are
        not the run's."""
        complete = not self.provenance.get("missing")
        return {
            "complete": complete,
            "timestamp": self.timestamp,
            "metrics": {
                "baseline": to_jsonable(self.metrics.baseline.metrics, strict=False),
                "treatments": {
                    name: to_jsonable(tm.metrics, strict=False)
                    for name, tm in self.metrics.treatments.items()
                },
            },
            "hypotheses": [
                {
                    "name": h.name,
                    "results": to_jsonable(h.results, strict=False),
                    "ranking": to_jsonable(h.ranking, strict=False),
                }
                for h in self.metrics.hypotheses
            ],
            "artifacts": sorted(self.artifacts),
            "artifact_paths": {
                name: {cond: str(path) for cond, path in by_cond.items()}
                for name, by_cond in self.artifacts.items()
                if isinstance(by_cond, Mapping)
            },
            "errors": {key: str(err) for key, err in self.errors.items()},
            "error_details": {key: error_to_dict(err) for key, err in self.errors.items()},
            "provenance": self.provenance,
            "digest": self.digest if complete else None,
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 2) -> str | None:
        """The result as JSON text (written to ``path`` when given). The provenance is
        encoded as it is, converting only values that are not JSON types already, so a
        100,000-cell result is not copied once more on its way out."""
        with paused_gc():
            text = json_text(self._dict(), indent=indent, ensure_ascii=False)
        if path is None:
            return text
        Path(path).write_text(text)
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        metrics = data.get("metrics", {})
        hyps = [
            HypothesisResult(h["name"], dict(h.get("results", {})), dict(h.get("ranking", {})))
            for h in data.get("hypotheses", [])
        ]
        details = data.get("error_details", {})
        errors: dict[str, BaseException] = {
            key: error_from_dict(details.get(key, {"message": msg}))
            for key, msg in data.get("errors", {}).items()
        }
        artifacts = {
            name: {cond: Path(p) for cond, p in by_cond.items()}
            for name, by_cond in data.get("artifact_paths", {}).items()
        }
        return cls(
            ExperimentMetrics(
                TreatmentMetrics(dict(metrics.get("baseline", {}))),
                {n: TreatmentMetrics(dict(m)) for n, m in metrics.get("treatments", {}).items()},
                hyps,
            ),
            artifacts=artifacts,
            errors=errors,
            provenance=dict(data.get("provenance", {})),
            timestamp=data.get("timestamp"),
        )

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls.from_dict(json.loads(text))

    def to_parquet(self, path: str | Path) -> None:
        """Rows of (condition, metric, values, mean); needs pandas with a parquet engine."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "pandas is required for to_parquet(); install it with: pip install pandas"
            ) from exc

        rows = []
        conds = {"baseline": self.metrics.baseline, **self.metrics.treatments}
        for cond, tm in conds.items():
            for metric, values in tm.metrics.items():
                numeric = [v for v in values if isinstance(v, (int, float))]
                mean = sum(numeric) / len(numeric) if numeric else None
                rows.append({"condition": cond, "metric": metric, "values": values, "mean": mean})
        pd.DataFrame(rows).to_parquet(path)

    def print_tree(self, fmt: str = "treatment > replicate > step") -> None:
        """Print provenance grouped by the tokens of ``fmt`` (treatment, replicate, step,
        and ``action`` last); uses rich when its console is available."""
        from crystallize_dist.model.tree import render_tree

        render_tree(self, fmt)

    def __repr__(self) -> str:
        return (
            f"Result(conditions={1 + len(self.metrics.treatments)}, "
            f"errors={len(self.errors)}, digest={self.digest[:12]})"
        )
