"""Run the folder experiment: ``python examples/folder_experiment/main.py``.

The experiment itself is the folder (config.yaml + datasources.py, steps.py, verifiers.py);
this script only loads it, runs it serially and on two processes, and prints the digest.
"""

from __future__ import annotations

from pathlib import Path

from crystallize_dist import Experiment, ParallelExecution

HERE = Path(__file__).resolve().parent
SEED = 2024  # config folders carry no seed: pass one to run() to make runs replayable


def main() -> None:
    serial = Experiment.from_yaml(HERE).run(seed=SEED)
    exp = Experiment.from_yaml(HERE)
    exp.plugins.append(ParallelExecution(executor_type="process", max_workers=2))
    process = exp.run(seed=SEED)
    for name, res in serial.metrics.hypotheses[0].results.items():
        print(f"{name}: t={res['t_statistic']:.2f} p={res['p_value']:.3g}")
    print("serial  digest:", serial.digest)
    print("process digest:", process.digest)
    assert serial.digest == process.digest


if __name__ == "__main__":
    main()
