"""Train / evaluate: logistic regression by gradient descent on synthetic data (numpy only).

Each cell draws its own data set from ``ctx.rng`` (seeded from the cell seed, so every
condition of replicate r sees the same data), trains, and records test accuracy and log
loss. Two treatments change the training: a larger learning rate and L2 regularisation.
A paired sign-flip test (exact, numpy only) checks each against the baseline.

    crystallize-dist submit examples/train_eval.py --local --wait
    python examples/train_eval.py
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crystallize_dist import (
    Experiment,
    FrozenContext,
    Hypothesis,
    ParallelExecution,
    Pipeline,
    SeedPlugin,
    Treatment,
    data_source,
    default_seed_function,
    pipeline_step,
    verifier,
)

Dataset = dict[str, np.ndarray]


@data_source
def synthetic_classification(
    ctx: FrozenContext, n: int = 240, dims: int = 8, noise: float = 0.5
) -> Dataset:
    """A linearly separable problem plus label noise, split 2:1 into train and test."""
    rng = ctx.rng
    w_true = rng.normal(size=dims)
    x = rng.normal(size=(n, dims))
    logits = x @ w_true + rng.normal(scale=noise * np.sqrt(dims), size=n)
    y = (logits > 0).astype(float)
    cut = 2 * n // 3
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


@pipeline_step()
def train(
    data: Dataset, ctx: FrozenContext, lr: float = 0.05, l2: float = 0.0, epochs: int = 150
) -> tuple[Dataset, dict[str, Any]]:
    """Full-batch gradient descent on the (L2-regularised) logistic loss."""
    x, y = data["x_train"], data["y_train"]
    w = np.asarray(ctx.rng.normal(scale=0.01, size=x.shape[1]))  # small random start
    for _ in range(epochs):
        grad = x.T @ (_sigmoid(x @ w) - y) / len(y) + l2 * w
        w -= lr * grad
    return {**data, "w": w}, {"weight_norm": float(np.linalg.norm(w))}


@pipeline_step()
def evaluate(data: Dataset, ctx: FrozenContext) -> tuple[Dataset, dict[str, Any]]:
    """Test accuracy and mean log loss of the trained weights."""
    p = _sigmoid(data["x_test"] @ data["w"])
    y = data["y_test"]
    eps = 1e-12
    loss = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    accuracy = np.mean((p > 0.5) == (y > 0.5))
    return data, {"test_accuracy": accuracy, "test_loss": loss}  # numpy scalars are fine


@verifier
def paired_sign_flip(
    baseline_samples: Mapping[str, Sequence[float]],
    treatment_samples: Mapping[str, Sequence[float]],
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Exact two-sided sign-flip test of the paired differences (treatment - baseline).

    Replicate r of every condition shares a seed, hence a data set, so the per-replicate
    metric values are paired. With n pairs all 2**n sign patterns are enumerated.
    """
    (metric,) = baseline_samples
    diff = np.asarray(treatment_samples[metric], float) - np.asarray(baseline_samples[metric])
    if diff.size > 16:
        raise ValueError(f"paired_sign_flip enumerates 2**n patterns; n={diff.size} is too big")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=diff.size)))
    observed = abs(diff.mean())
    p = float(np.mean(np.abs(signs @ diff / diff.size) >= observed - 1e-12))
    return {"mean_difference": float(diff.mean()), "p_value": p, "significant": p < alpha}


def loss_reduction(result: Mapping[str, Any]) -> float:
    """Ranker: the treatment whose loss went down the most ranks first (lowest score)."""
    return float(result["mean_difference"])


def build(*plugins: Any) -> Experiment:
    """The experiment; extra plugins (an executor, say) go after the SeedPlugin."""
    return Experiment(
        datasource=synthetic_classification(),
        pipeline=Pipeline([train(), evaluate()]),
        plugins=[SeedPlugin(seed=1234, seed_fn=default_seed_function), *plugins],
        treatments=[
            Treatment("fast_lr", {"lr": 0.5}),
            Treatment("l2_reg", {"l2": 0.5}),
        ],
        hypotheses=[
            Hypothesis(
                paired_sign_flip(), metrics="test_loss", ranker=loss_reduction, name="test_loss"
            )
        ],
        replicates=10,
        name="train_eval",
    )


experiment = build()

if __name__ == "__main__":
    serial = build().run()
    process = build(ParallelExecution(executor_type="process", max_workers=2)).run()
    for cond, tm in [("baseline", serial.metrics.baseline), *serial.metrics.treatments.items()]:
        acc, loss = np.mean(tm.metrics["test_accuracy"]), np.mean(tm.metrics["test_loss"])
        print(f"{cond:>9}: accuracy {acc:.3f}  log loss {loss:.3f}")
    for name, res in serial.metrics.hypotheses[0].results.items():
        print(f"{name}: mean diff {res['mean_difference']:+.3f}  p={res['p_value']:.4f}")
    print("serial  digest:", serial.digest)
    print("process digest:", process.digest)
    assert serial.digest == process.digest
