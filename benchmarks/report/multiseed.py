"""Multi-seed comparison: per task, each judged metric's mean over seeds, the difference test (Welch's t) and the
equivalence test (TOST within the metric's stated margin, common/metrics.py EQUIVALENCE_MARGINS), one verdict."""
from __future__ import annotations

import pandas as pd

from benchmarks import store
from benchmarks.report.doc import Doc, fmt, label
from benchmarks.report.runs import judged_metrics, metric_values, representatives
from common import metrics as judge
from common.backend import BOTH


def sample_tests(runs: list[dict], pair: tuple[str, str] = BOTH) -> list[dict] | None:
    """Per judged metric: judge.equivalence (or judge.compare where no margin is stated) between the representative
    modes of ``pair``'s two backends; None when the task did not run both with 2+ seeds."""
    reps = representatives(runs)
    if not set(pair) <= reps.keys() or max(len(reps[b]) for b in pair) < 2:
        return None
    reps = {b: reps[b] for b in pair}
    out = []
    for name in judged_metrics([r for rs in reps.values() for r in rs]):
        a, b = (metric_values(reps[backend], name) for backend in pair)
        margin = judge.EQUIVALENCE_MARGINS.get(name)
        result = judge.equivalence(a, b, margin) if margin is not None else {**judge.compare(a, b), "margin": None,
                                                                              "p_tost": None, "seeds_needed": None}
        out.append({"metric": name, "reps": reps, **result})
    return out


def more_seeds_command(task: str, seeds: int, pair: tuple[str, str] = BOTH) -> str:
    """The command that gives a task's comparison of ``pair`` ``seeds`` seeds a side (a spec file's task: its
    --spec)."""
    what = "--spec YOUR_FILE.toml" if store.is_spec_task(task) else f"--task {task}"
    backends = "both" if pair == BOTH else " ".join(pair)
    return f"python -m benchmarks.run --backend {backends} {what} --num-seeds {seeds}"


def samples_verdict(runs: list[dict], pair: tuple[str, str] = BOTH) -> str:
    """One plain phrase for the summary's "same samples?" column of ``pair``; where the runs cannot decide, the
    command that would."""
    tests = sample_tests(runs, pair)
    task = runs[0]["task"]
    if tests is None:
        reps = representatives(runs)
        return ("one backend only" if not set(pair) <= reps.keys() else
                f"one seed each: cannot test (run {more_seeds_command(task, 3, pair)} or more)")
    different = [t for t in tests if t["verdict"].startswith("different")]
    if different:
        return "different: " + ", ".join(f"{t['metric']} ({t['verdict'].removeprefix('different ')})" for t in different)
    judged = [t for t in tests if t["margin"] is not None]  # a metric without a margin can only show a difference
    if not judged:
        return "no metric with an equivalence margin recorded"
    equivalent = [t for t in judged if t["verdict"].startswith("equivalent")]
    if len(equivalent) == len(judged):
        return f"yes: equivalent within the margins on all {len(judged)} metrics"
    needed = [t["seeds_needed"] for t in judged if t["seeds_needed"]]
    more = (f": about {max(needed)} a side would decide ({more_seeds_command(task, max(needed), pair)})" if needed
            else "")
    return f"inconclusive: {len(equivalent)} of {len(judged)} metrics equivalent, none different; run more seeds{more}"


def multiseed_section(doc: Doc, by_task: dict[str, list[dict]], pairs: dict[str, list[tuple[str, str]]]) -> None:
    """Per task, one table per pair of backends (``pairs``: the task's, runs.pairs_of) that ran 2+ seeds."""
    doc.heading(2, "Multi-seed comparison")
    shown = False
    for task, runs in by_task.items():
        tables = []
        for pair in pairs[task]:
            tests = sample_tests(runs, pair)
            if tests is None:
                continue
            rows = []
            for t in tests:
                first, second = (t["reps"][b][0] for b in pair)
                rows.append({
                    "metric": t["metric"], "better": judge.METRIC_INFO[t["metric"]]["better"],
                    label(pair[0], first["mode"]): f"{fmt(t['mean_a'])} ± {fmt(t['std_a'], 2)} (n={t['n_a']})",
                    label(pair[1], second["mode"]): f"{fmt(t['mean_b'])} ± {fmt(t['std_b'], 2)} (n={t['n_b']})",
                    "p (Welch)": fmt(t["p"], 2),
                    "margin ±": fmt(t["margin"], 2) if t["margin"] is not None else "none stated",
                    "p (TOST)": fmt(t["p_tost"], 2), "verdict": t["verdict"],
                })
            tables.append(pd.DataFrame(rows))
        if not tables:
            continue
        shown = True
        doc.heading(3, task, anchor=f"samples-{task}")
        for table in tables:
            doc.table(table)
    if not shown:
        doc.text("No task ran several seeds in both backends, so no significance test is possible. Run "
                 "--backend both --num-seeds 5 to compare the backends' sample quality across seeds.")
    else:
        doc.text(f"Mean ± sample std over seeds; Welch's two-sided t-test for a difference and the two one-sided "
                 f"tests (TOST, Welch's t) for equivalence within ± the margin, both at α = {judge.ALPHA} (diverged "
                 "seeds are left out and counted as missing). No significant difference is not evidence of "
                 "equivalence: a metric is called equivalent only when TOST rejects a difference as large as the "
                 "margin. 'About N' assumes the gap and spread seen here. Each margin is the spread of that metric "
                 "between two sets of real data (scripts/equivalence_margins.py; common/metrics.py says which).")
