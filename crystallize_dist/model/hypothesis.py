"""Hypothesis: a verifier applied to baseline vs treatment metrics, plus a ranker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import MissingMetricError
from crystallize_dist.model.result import HypothesisResult

if TYPE_CHECKING:
    from crystallize_dist.model.result import TreatmentMetrics


def rank_by_p_value(result: Mapping[str, Any]) -> float:
    """The default ranker: the verifier's ``p_value`` (1.0 when absent); lower is better."""
    return float(result.get("p_value", 1.0))


class Hypothesis:
    """``Hypothesis(verifier, metrics=None, ranker=None, name=None)``.

    ``metrics`` groups metric names: None (all baseline keys), a name, a list of names, or a
    list of lists (one verifier call per group).
    """

    def __init__(
        self,
        verifier: Callable[..., Any],
        metrics: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        ranker: Callable[[Any], float] | None = None,
        name: str | None = None,
    ) -> None:
        self.verifier = verifier
        self.metrics = metrics
        self.ranker = ranker or rank_by_p_value
        if name is not None:
            self.name = name
        elif ranker is not None:
            self.name = getattr(ranker, "__name__", "hypothesis")
        else:
            self.name = "hypothesis"

    def _groups(self, baseline: Mapping[str, Any]) -> tuple[list[list[str]], bool]:
        spec = self.metrics
        if spec is None:
            return [list(baseline)], True
        if isinstance(spec, str):
            return [[spec]], True
        items = list(spec)
        if items and all(not isinstance(x, str) for x in items):
            return [list(g) for g in items], False
        return [[str(x) for x in items]], True

    def verify(
        self, baseline_metrics: Mapping[str, Any], treatment_metrics: Mapping[str, Any]
    ) -> Any:
        """Run the verifier once per metric group; one output, or a list for many groups."""
        groups, single = self._groups(baseline_metrics)
        outputs = []
        for group in groups:
            for key in group:
                if key not in baseline_metrics or key not in treatment_metrics:
                    raise MissingMetricError(key)
            outputs.append(
                self.verifier(
                    {k: baseline_metrics[k] for k in group},
                    {k: treatment_metrics[k] for k in group},
                )
            )
        return outputs[0] if single else outputs

    def rank_treatments(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """Score each treatment's result with the ranker; lowest score is best."""
        scored = [(name, self.ranker(res)) for name, res in results.items()]
        ranked = sorted(scored, key=lambda item: item[1])
        return {"best": ranked[0][0] if ranked else None, "ranked": ranked}

    def __repr__(self) -> str:
        return f"Hypothesis(name={self.name!r}, metrics={self.metrics!r})"


def verify_hypotheses(
    hypotheses: Sequence[Hypothesis],
    baseline: Mapping[str, Any],
    treatments: Mapping[str, TreatmentMetrics],
) -> list[HypothesisResult]:
    """Verify each hypothesis against every treatment that has metrics, in list order."""
    out = []
    for hyp in hypotheses:
        results = {
            name: hyp.verify(baseline, tm.metrics) for name, tm in treatments.items() if tm.metrics
        }
        out.append(HypothesisResult(hyp.name, results, hyp.rank_treatments(results)))
    return out
