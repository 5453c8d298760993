"""FrozenContext, metrics, artifacts and reserved keys (contract §3, §19.11)."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures import ConstantSource

from crystallize_dist import (
    ContextMutationError,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
    standalone_context,
)
from crystallize_dist.utils.context import FrozenContext as AliasContext
from crystallize_dist.utils.context import LoggingContext


class WriteKeyStep(PipelineStep):
    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx[self.key] = "overwritten"
        ctx.metrics.add("ok", 1)
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {"key": self.key}


def _run(step: PipelineStep, **kwargs: Any) -> Any:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([step]),
        plugins=[SeedPlugin(seed=1)],
        **kwargs,
    )
    return exp.run(replicates=2)


# --- the context object ------------------------------------------------------------------------
def test_existing_key_cannot_be_overwritten_even_with_an_equal_value() -> None:
    ctx = FrozenContext({"a": 1})
    with pytest.raises(ContextMutationError, match="Cannot mutate existing key: 'a'"):
        ctx["a"] = 1
    with pytest.raises(ContextMutationError):
        ctx.add("a", 2)
    ctx.add("b", 2)
    assert ctx["b"] == 2


def test_reads_return_deep_copies() -> None:
    ctx = FrozenContext({"nested": {"xs": [1, 2]}})
    ctx["nested"]["xs"].append(3)
    ctx.get("nested")["xs"].append(4)
    assert ctx["nested"] == {"xs": [1, 2]}
    default = [1]
    got = ctx.get("missing", default)
    assert got == [1] and got is not default
    with pytest.raises(KeyError):
        ctx["missing"]


def test_constructor_deep_copies_initial() -> None:
    initial = {"xs": [1]}
    ctx = FrozenContext(initial)
    initial["xs"].append(2)
    assert ctx["xs"] == [1]


def test_as_dict_is_read_only_and_does_not_leak() -> None:
    ctx = FrozenContext({"nested": {"xs": [1]}})
    view = ctx.as_dict()
    with pytest.raises(TypeError):
        view["new"] = 1  # type: ignore[index]
    view["nested"]["xs"].append(2)
    assert ctx["nested"] == {"xs": [1]}
    assert "nested" in ctx.as_dict()


def test_metrics_are_append_only_tuples_with_tags() -> None:
    ctx = standalone_context({"a": 1})
    assert isinstance(ctx, AliasContext)
    ctx.metrics.add("loss", 0.5, tags={"epoch": 1})
    ctx.record("loss", 0.25)
    assert ctx.metrics["loss"] == (0.5, 0.25)
    assert ctx.metrics.get_tags("loss") == ({"epoch": 1}, {})
    assert ctx.metrics["never"] == ()
    assert dict(ctx.metrics.as_dict()) == {"loss": (0.5, 0.25), "never": ()}
    with pytest.raises(TypeError):
        ctx.metrics.as_dict()["x"] = (1,)  # type: ignore[index]


def test_artifact_log_rejects_duplicate_names() -> None:
    ctx = FrozenContext({})
    ctx.artifacts.add("a.bin", b"1")
    with pytest.raises(ContextMutationError):
        ctx.artifacts.add("a.bin", b"2")
    assert [(a.name, a.data) for a in ctx.artifacts] == [("a.bin", b"1")]
    assert len(ctx.artifacts) == 1
    ctx.artifacts.clear()
    assert len(ctx.artifacts) == 0


def test_logging_context_records_reads_and_passes_writes() -> None:
    ctx = FrozenContext.for_cell({"a": 1}, replicate=0, condition="baseline", seed=7)
    view = LoggingContext(ctx)
    assert isinstance(view, FrozenContext)  # steps that check the type accept it
    assert view["a"] == 1 and view.get("b", 5) == 5
    assert view.reads == {"a": 1}  # a key the context lacks is not a read
    view["c"] = 3
    assert ctx["c"] == 3 and view.get("c") == 3
    with pytest.raises(ContextMutationError):
        view["a"] = 2
    with pytest.raises(KeyError):
        view["missing"]
    # metrics, artifacts and the per-cell generators are the wrapped context's own
    assert view.metrics is ctx.metrics and view.artifacts is ctx.artifacts
    assert view.cell_seed == 7 and view.rng is ctx.rng and view.random is ctx.random


def test_per_cell_generators_follow_the_seed() -> None:
    a, b, c = FrozenContext({}), FrozenContext({}), FrozenContext({})
    a._set_seed(7)
    b._set_seed(7)
    c._set_seed(8)
    assert a.rng.random() == b.rng.random()
    assert a.random.random() == b.random.random()
    assert a.rng.random() != c.rng.random()


# --- reserved keys inside a run ------------------------------------------------------------------
@pytest.mark.parametrize("key", ["condition", "replicate", "seed_used"])
def test_step_overwriting_a_reserved_key_fails_the_condition(key: str) -> None:
    result = _run(WriteKeyStep(key))
    assert set(result.errors) == {"baseline_rep_0", "baseline_rep_1"}
    err = result.errors["baseline_rep_0"]
    assert err.original_exception.error_type == "ContextMutationError"  # type: ignore[attr-defined]
    assert result.metrics.baseline.metrics == {}


def test_step_writing_a_new_key_is_fine() -> None:
    result = _run(WriteKeyStep("fresh"))
    assert result.errors == {}
    assert result.metrics.baseline.metrics == {"ok": [1, 1]}


def test_treatment_colliding_with_initial_ctx_fails_that_treatment() -> None:
    result = _run(
        WriteKeyStep("fresh"),
        initial_ctx={"lr": 0.1},
        treatments=[Treatment("clash", {"lr": 0.2}), Treatment("fine", {"other": 1})],
    )
    assert set(result.errors) == {"clash_rep_0", "clash_rep_1"}
    assert result.errors["clash_rep_0"].error_type == "ContextMutationError"  # type: ignore[attr-defined]
    assert result.metrics.treatments["fine"].metrics == {"ok": [1, 1]}
    assert result.metrics.treatments["clash"].metrics == {}


def test_treatment_setting_seed_used_fails_with_context_mutation() -> None:
    result = _run(WriteKeyStep("fresh"), treatments=[Treatment("sneaky", {"seed_used": 1})])
    assert set(result.errors) == {"sneaky_rep_0", "sneaky_rep_1"}
    assert "seed_used" in str(result.errors["sneaky_rep_0"])


def test_initial_ctx_reaches_every_condition_as_a_copy() -> None:
    seen: list[Any] = []

    class Mutate(PipelineStep):
        def __call__(self, data: Any, ctx: FrozenContext) -> Any:
            items = ctx["items"]
            items.append(ctx["condition"])
            seen.append(ctx["items"])
            return data

        @property
        def params(self) -> dict[str, Any]:
            return {}

    _run(Mutate(), initial_ctx={"items": [0]}, treatments=[Treatment("t", {})])
    assert seen == [[0], [0], [0], [0]]
