"""Multi-seed comparison: per task, each judged metric's mean over seeds and Welch's t-test between backends."""
from __future__ import annotations

import pandas as pd

from benchmarks.report.doc import Doc, fmt, label
from benchmarks.report.runs import judged_metrics, metric_values, representatives
from common import metrics as judge


def multiseed_section(doc: Doc, by_task: dict[str, list[dict]]) -> None:
    doc.heading(2, "Multi-seed comparison")
    shown = False
    for task, runs in by_task.items():
        reps = representatives(runs)
        if len(reps) < 2 or max(len(rs) for rs in reps.values()) < 2:
            continue
        shown = True
        rows = []
        for name in judged_metrics([r for rs in reps.values() for r in rs]):
            result = judge.compare(metric_values(reps["torch"], name), metric_values(reps["tf"], name))
            rows.append({
                "metric": name, "better": judge.METRIC_INFO[name]["better"],
                label("torch", reps["torch"][0]["mode"]): f"{fmt(result['mean_a'])} ± {fmt(result['std_a'], 2)} (n={result['n_a']})",
                label("tf", reps["tf"][0]["mode"]): f"{fmt(result['mean_b'])} ± {fmt(result['std_b'], 2)} (n={result['n_b']})",
                "p (Welch)": fmt(result["p"], 2), "verdict": result["verdict"],
            })
        doc.heading(3, task)
        doc.table(pd.DataFrame(rows))
    if not shown:
        doc.text("No task ran several seeds in both backends, so no significance test is possible. Run "
                 "--backend both --seeds 5 to compare the backends' sample quality across seeds.")
    else:
        doc.text(f"Mean ± sample std over seeds; Welch's two-sided t-test at α = {judge.ALPHA} (diverged seeds "
                 "are left out of the mean and counted as missing).")
