"""The summary a person reads in ten seconds: one table, a row per task and pair of backends (a "pair" column where
the report holds more than one pair), three questions, each cell a plain verdict linking to its evidence below.
Same model? (step-1 parity and the same-seed drift against the chaos floor: divergence.py), same samples?
(equivalence over seeds: multiseed.py), faster? (best against best: faster.py).
A float64 parity fact, once runs record one, belongs in the "same model?" cell beside the floor."""
from __future__ import annotations

import pandas as pd

from benchmarks.report.divergence import model_verdict
from benchmarks.report.doc import BACKEND_SHORT, Doc, Link, pair_label
from benchmarks.report.faster import speed_verdict
from benchmarks.report.multiseed import sample_tests, samples_verdict
from benchmarks.report.runs import by_host, timed_ok

SUMMARY_TABLE_ID = "summary-table"
QUESTIONS = ("same model?", "same samples?", "faster?")


def machine_phrase(env: dict) -> str:
    threads = []
    for backend, settings in env.get("configure", {}).items():
        n = settings.get("intra_op_threads")
        threads.append(f"{BACKEND_SHORT.get(backend, backend)} {n if n else 'default'} intra-op threads")
    cores = env.get("cpu_count")
    devices = set(env.get("devices", {}).values())
    where = env.get("cpu", "unknown CPU") if devices <= {"cpu"} else ", ".join(sorted(devices))
    return f"On this machine ({where}, {cores} cores; {', '.join(threads)})"


def summary_rows(by_task: dict[str, list[dict]], pairs: dict[str, list[tuple[str, str]]], drifts: dict[str, dict],
                 speeds: dict[str, dict[tuple, dict | None]]) -> pd.DataFrame:
    """A row per task and pair of backends (``pairs``: the task's, runs.pairs_of; ``speeds``: task -> pair ->
    faster.task_speed)."""
    rows = []
    for task, runs in by_task.items():
        for pair in pairs[task]:
            samples_anchor = f"samples-{task}" if sample_tests(runs, pair) is not None else f"task-{task}"
            speed = speeds[task][pair]
            rows.append({"task": task, "pair": pair_label(pair),
                         QUESTIONS[0]: Link(model_verdict(drifts[task], pair), f"drift-{task}"),
                         QUESTIONS[1]: Link(samples_verdict(runs, pair), samples_anchor),
                         QUESTIONS[2]: Link(speed_verdict(speed), f"speed-{task}" if speed else "speed")})
    several = len({pair for task_pairs in pairs.values() for pair in task_pairs}) > 1  # one pair: the title names it
    return pd.DataFrame(rows, columns=["task", *(["pair"] if several else []), *QUESTIONS])


def summary_section(doc: Doc, runs: list[dict], by_task: dict[str, list[dict]], pairs: dict[str, list[tuple[str, str]]],
                    drifts: dict[str, dict], speeds: dict[str, dict[tuple, dict | None]]) -> None:
    doc.heading(2, "Summary")
    doc.table(summary_rows(by_task, pairs, drifts, speeds), table_id=SUMMARY_TABLE_ID)
    env = runs[-1].get("environment", {})
    flagged = [r for r in runs if r["status"] != "finished" or r.get("flags")]
    tail = (f"{len(flagged)} of {len(runs)} runs diverged or carry flags (see below)." if flagged
            else f"All {len(runs)} runs finished without flags.")
    hosts = by_host([r for r in runs if timed_ok(r)])
    where = machine_phrase(env) if len(hosts) <= 1 else f"On {len(hosts)} hosts (speed compared within one host: faster.py)"
    doc.text(f"{where}. {tail} Each verdict links to its evidence. Same model: the frameworks' same-seed "
             "weight drift against the chaos floor (a band of same-framework pairs with other rounding at every step). Same samples: "
             "equivalence tests over seeds of each backend's representative mode. Faster: each framework's fastest "
             "configuration, with a bootstrap interval.")
