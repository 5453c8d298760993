"""Decorators and factories (contract §7, §19.19)."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest
from fixtures import ConstantSource, add_one

from crystallize_dist import (
    Artifact,
    DataSource,
    Experiment,
    FrozenContext,
    Hypothesis,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
    data_source,
    get_datasource,
    hypothesis,
    inject_from_ctx,
    list_datasources,
    pipeline,
    pipeline_step,
    resource_factory,
    treatment,
    verifier,
)
from crystallize_dist.model.registry import unregister_datasource


@pipeline_step()
def scale(data: float, ctx: FrozenContext, factor: float = 2.0, offset: float = 0.0) -> float:
    return data * factor + offset


@verifier
def diff(baseline: dict[str, Any], treatment: dict[str, Any], scale: int = 1) -> dict[str, Any]:
    return {"d": scale * (sum(treatment["x"]) - sum(baseline["x"]))}


_MADE: list[int] = []


def make_resource(ctx: FrozenContext) -> object:
    _MADE.append(threading.get_ident())
    return object()


@pipeline_step()
def needs_value(data: Any, value: int) -> Any:
    return data + value


# --- pipeline_step --------------------------------------------------------------------------------
def test_unknown_and_missing_parameters_raise_type_error() -> None:
    with pytest.raises(TypeError, match="Unknown parameters: nope"):
        scale(nope=1)
    with pytest.raises(TypeError, match="Missing parameters: value"):
        needs_value()
    assert isinstance(needs_value(value=3), PipelineStep)


def test_class_name_is_title_plus_step() -> None:
    assert type(add_one()).__name__ == "Add_OneStep"
    assert type(scale()).__name__ == "ScaleStep"


def test_params_hold_only_explicit_overrides() -> None:
    assert scale().params == {}
    assert scale(factor=3.0).params == {"factor": 3.0}
    assert scale().step_hash != scale(factor=3.0).step_hash
    assert scale().step_hash == scale().step_hash


def test_value_precedence_explicit_then_ctx_then_default() -> None:
    ctx = FrozenContext({"factor": 10.0})
    assert scale()(1.0, FrozenContext({})) == 2.0  # default
    assert scale()(1.0, ctx) == 10.0  # ctx beats default
    assert scale(factor=3.0)(1.0, ctx) == 3.0  # explicit beats ctx


def test_function_need_not_declare_ctx() -> None:
    assert needs_value(value=2)(1, FrozenContext({})) == 3


def test_step_pickles_and_rebuilds() -> None:
    step = scale(factor=4.0)
    clone = pickle.loads(pickle.dumps(step))
    assert type(clone).__name__ == "ScaleStep"
    assert clone.params == {"factor": 4.0}
    assert clone(1.0, FrozenContext({})) == 4.0
    assert clone.step_hash == step.step_hash


def test_callable_values_are_called_with_ctx_when_they_take_it() -> None:
    @pipeline_step()
    def use(data: Any, ctx: FrozenContext, thing: Any = None, other: Any = None) -> Any:
        return thing, other

    ctx = FrozenContext({"thing": lambda ctx: ctx["condition"], "other": lambda: 5})
    ctx.add("condition", "c")
    assert use()(None, ctx) == ("c", 5)


def test_artifact_arguments_are_bound_to_the_context() -> None:
    out = Artifact("out.txt")

    @pipeline_step()
    def write(data: Any, ctx: FrozenContext, dest: Artifact = out) -> Any:
        dest.write("hello")
        return data

    ctx = FrozenContext({})
    write()(None, ctx)
    assert ctx.artifacts.items() == [("out.txt", b"hello")]
    assert out._ctx is None  # the original stays unbound


def test_async_step_returns_an_awaitable_the_pipeline_awaits() -> None:
    @pipeline_step()
    async def later(data: int, delta: int = 1) -> Any:
        return data + delta, {"later": data + delta}

    ctx = FrozenContext({})
    assert Pipeline([later(delta=5)]).run(1, ctx) == 6
    assert ctx.metrics["later"] == (6,)


def test_treatment_mapping_overrides_a_step_parameter_unless_explicit() -> None:
    exp = Experiment(
        datasource=ConstantSource(1),
        pipeline=Pipeline([add_one()]),
        plugins=[SeedPlugin(seed=0)],
        treatments=[Treatment("by_two", {"delta": 2})],
    )
    result = exp.run()
    assert result.metrics.baseline.metrics["val"] == [2]
    assert result.metrics.treatments["by_two"].metrics["val"] == [3]
    exp.pipeline = Pipeline([add_one(delta=5)])
    result = exp.run()
    assert result.metrics.treatments["by_two"].metrics["val"] == [6]


def test_pipeline_step_requires_parentheses() -> None:
    with pytest.raises(TypeError):
        pipeline_step(lambda data: data)  # type: ignore[arg-type]


def test_inject_from_ctx_on_a_plain_function() -> None:
    @inject_from_ctx
    def fn(data: int, ctx: FrozenContext, k: int = 1) -> int:
        return data * k

    assert fn(2, FrozenContext({"k": 3})) == 6
    assert fn(2, FrozenContext({})) == 2
    assert fn(2, FrozenContext({"k": 3}), k=5) == 10


# --- resource_factory ----------------------------------------------------------------------------
def test_resource_factory_creates_once_per_thread() -> None:
    made = _MADE
    factory = resource_factory(make_resource, key="test-resource-once")

    @pipeline_step()
    def use(data: Any, ctx: FrozenContext, res: Any = None) -> Any:
        return res

    step = use()
    ctx = FrozenContext({"res": factory})
    first, second = step(None, ctx), step(None, ctx)
    assert first is second and len(made) == 1
    assert ctx.get("res") is factory  # the context holds the wrapper, not the resource

    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(step(None, ctx)))
    t.start()
    t.join()
    assert other[0] is not first and len(made) == 2
    assert pickle.loads(pickle.dumps(factory)).key == "test-resource-once"


# --- data_source ---------------------------------------------------------------------------------
def test_data_source_forms_and_params() -> None:
    @data_source
    def numbers(ctx: FrozenContext, n: int = 3) -> list[int]:
        return list(range(n))

    @data_source()
    def letters(ctx: FrozenContext, word: str) -> str:
        return word

    ds = numbers(n=2, ignored=1)
    assert isinstance(ds, DataSource) and type(ds).__name__ == "NumbersSource"
    assert ds.fetch(FrozenContext({})) == [0, 1]
    assert ds.params == {"n": 2}
    with pytest.raises(TypeError, match="Missing parameters"):
        letters()
    assert letters(word="hi").fetch(FrozenContext({})) == "hi"


def test_data_source_register() -> None:
    @data_source("compat-registered", register=True)
    def registered(ctx: FrozenContext, n: int = 1) -> int:
        return n

    try:
        assert get_datasource("compat-registered").fetch(FrozenContext({})) == 1
        with pytest.raises(KeyError, match=r"No datasource registered .*Available datasources"):
            get_datasource("compat-never-registered")
        assert "compat-registered" in list_datasources()
        with pytest.raises(ValueError, match="already registered"):

            @data_source("compat-registered", register=True)
            def again(ctx: FrozenContext) -> int:
                return 0

    finally:
        unregister_datasource("compat-registered")


# --- treatment / verifier / hypothesis / pipeline ---------------------------------------------
def test_treatment_factory_forms() -> None:
    direct = treatment("t", {"a": 1})
    assert isinstance(direct, Treatment) and direct.apply_map == {"a": 1}

    @treatment("fn")
    def add_key(ctx: FrozenContext) -> None:
        ctx.add("b", 2)

    made = add_key()
    assert isinstance(made, Treatment) and made.name == "fn" and made.apply_map == {}
    ctx = FrozenContext({})
    made.apply(ctx)
    assert ctx["b"] == 2
    assert repr(made) == "Treatment(name='fn')"
    assert not callable(made)


def test_verifier_factory() -> None:
    with pytest.raises(TypeError, match="Unknown parameters"):
        diff(nope=1)
    v = diff(scale=2)
    assert v({"x": [1]}, {"x": [3]}) == {"d": 4}
    assert pickle.loads(pickle.dumps(v))({"x": [1]}, {"x": [2]}) == {"d": 2}


def test_hypothesis_decorator_returns_an_instance() -> None:
    @hypothesis(verifier=lambda b, t: {"p_value": 0.5}, metrics="x")
    def by_p(result: dict[str, Any]) -> float:
        return float(result["p_value"])

    assert isinstance(by_p, Hypothesis)
    assert by_p.name == "by_p" and by_p.metrics == "x"


def test_pipeline_factory() -> None:
    p = pipeline(scale(), add_one())
    assert isinstance(p, Pipeline)
    assert [type(s).__name__ for s in p.steps] == ["ScaleStep", "Add_OneStep"]
    assert p.signature() == "ScaleStep{}|Add_OneStep{}"
