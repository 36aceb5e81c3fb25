"""Measure the spread of real-vs-real scores, the basis of the equivalence margins in common/metrics.py.

For each quick-suite task, draw ``--draws`` independent sets of *real* examples of the size the harness scores
(the task's eval_samples), score each against the task's reference exactly as a run's samples are scored, and
print each metric's mean, std and the 95% range of |score(real set 1) - score(real set 2)|: two sets that are
both real data differ by that much, so a framework difference smaller than it cannot be told from resampling.

    python scripts/equivalence_margins.py [--draws 20] [--task gmm2 mnist]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import metrics, tasks  # noqa: E402


def real_sets(task, task_data, draws: int, rng: np.random.Generator) -> list[np.ndarray]:
    n = task.eval_samples
    source = task_data.source
    if hasattr(source, "next_batch") and task_data.n_train is None:  # a sampler: fresh draws
        return [source.next_batch(rng, n) for _ in range(draws)]
    from common import data

    images = source.x  # an ArrayDataset: real training examples, judged against the held-out reference
    return [data.uint8_to_unit(images[rng.choice(len(images), n, replace=False)]) for _ in range(draws)]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--task", nargs="+", default=tasks.QUICK_SUITE)
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    rows = []
    for name in args.task:
        task = tasks.get_task(name)
        task_data = task.load()
        sets = real_sets(task, task_data, args.draws, np.random.default_rng(1))
        history = {"d_real": [0.5], "d_loss": [metrics.PARABOLA_D_SCORE_TARGET * -1]}
        scores = pd.DataFrame([task.score(x, task_data, history) for x in sets])
        for metric in scores.columns:
            if metrics.METRIC_INFO.get(metric, {}).get("better") is None:
                continue
            values = scores[metric].to_numpy()
            gaps = [abs(a - b) for a, b in itertools.combinations(values, 2)]
            rows.append({"task": name, "metric": metric, "mean": values.mean(), "std": values.std(ddof=1),
                         "95% |real-real|": float(np.percentile(gaps, 95)),
                         "margin (common/metrics.py)": metrics.EQUIVALENCE_MARGINS.get(metric, np.nan)})
    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
