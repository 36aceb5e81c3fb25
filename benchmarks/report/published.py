"""Published results: a paper's table (the Task record's ``published`` rows) beside each framework's seeds.

Per task with published figures, per row (one pack value) and metric: the paper's mean ± its spread, each
framework's mean ± std over its seeds (its representative mode), whether each agrees with the paper (Welch's test
from the paper's summary statistics, common/metrics.py compare_to_published) and whether each pair of frameworks
differs (common/metrics.py compare). Runs shorter than the task's own length are said to be so: they are not the
paper's setup, and their cells are read as such.
"""
from __future__ import annotations

import pandas as pd

from benchmarks.report.doc import BACKEND_SHORT, Doc, fmt, label, pair_label
from benchmarks.report.runs import metric_values, pack_of, pairs_of, representatives
from common import metrics as judge
from common import tasks as task_registry


def _ours(result: dict) -> str:
    return f"{fmt(result['mean'], 3)} ± {fmt(result['std'], 2)} (n={result['n']})"


def published_rows(task, runs: list[dict]) -> tuple[list[dict], set[int]]:
    """The table's rows for one task, and the step counts its runs trained for."""
    rows, steps = [], set()
    for paper in task.published:
        reps = representatives([r for r in runs if pack_of(r) == paper.pack])
        if not reps:
            continue
        steps |= {r["config"]["steps"] for rs in reps.values() for r in rs}
        for key, mean, spread in paper.metrics:
            row = {"row": f"{paper.label} (pack {paper.pack})", "metric": key,
                   f"paper (± {paper.spread}, n={paper.trials})": f"{fmt(mean, 3)} ± {fmt(spread, 2)}"}
            values = {}
            for backend, backend_runs in reps.items():
                values[backend] = metric_values(backend_runs, key)
                result = judge.compare_to_published(values[backend], mean, paper.std(key), paper.trials)
                name = label(backend, backend_runs[0]["mode"])
                row[name] = _ours(result)
                row[f"{BACKEND_SHORT[backend]} vs paper"] = result["verdict"] + \
                    ("" if result["in_interval"] else "; outside the paper's 95% interval")
            for first, second in pairs_of([r for rs in reps.values() for r in rs]):
                if {first, second} <= values.keys():
                    welch = judge.compare(values[first], values[second])["verdict"]
                    row[f"{pair_label((first, second))} (Welch)"] = welch
            rows.append(row)
    return rows, steps


def published_section(doc: Doc, by_task: dict[str, list[dict]]) -> None:
    doc.heading(2, "Published results")
    shown = False
    for name, runs in by_task.items():
        task = task_registry.TASKS.get(name)
        if task is None or not task.published:
            continue
        rows, steps = published_rows(task, runs)
        if not rows:
            continue
        shown = True
        doc.heading(3, f"{name}: {task.published[0].source}")
        doc.table(pd.DataFrame(rows))
        short = sorted(s for s in steps if task.steps is not None and s < task.steps)
        if short:
            doc.warn(f"{name}: runs of {', '.join(fmt(s) for s in short)} steps, the paper's setup is "
                     f"{fmt(task.steps)}: these cells measure a shorter training, not the paper's.")
    if not shown:
        doc.text("No run of a task with published figures (grid25-pacgan, ring8-pacgan: "
                 "python -m benchmarks.run --task grid25-pacgan --pack 1 4 --num-seeds 3 --steps full).")
        return
    doc.text("The paper's ± is what its table says (PacGAN's Table 1: the standard error over 10 trials, its "
             "caption); ours is the sample std over seeds. \"consistent with the paper\": Welch's two-sided t-test "
             f"from the paper's mean and std (its standard error × √trials) finds no difference at α = {judge.ALPHA}; "
             "the 95% interval is the paper's mean ± 1.96 standard errors. Between two backends: Welch's test over "
             "the seeds; \"no significant difference\" with 3 seeds is weak evidence, not a proof of equivalence.")
