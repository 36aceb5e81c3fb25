"""Faster? Per task and pair of backends, each framework's fastest measured configuration against the other's, as a
ratio of median step times with a bootstrap confidence interval over the timed steps of every seed
(common.metrics.speed_ratio); "tie" when the interval includes 1."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks import timing
from benchmarks.report.doc import BACKEND_NAMES, BACKEND_SHORT, Doc, fmt, fmt_time, label
from benchmarks.report.runs import Histories, by_host, config_name, pack_of, timed_ok
from common import metrics as judge
from common.backend import BOTH


def configuration(record: dict) -> tuple:
    """What a framework can choose to run faster: mode, steps per trainer call, optimiser implementation, threads,
    dtype."""
    return (record["mode"], record.get("steps_per_call", 1), record["config"].get("optimizer", "spec"),
            record["config"].get("threads"), record["config"].get("dtype", "float32"))


def best_configuration(runs: list[dict], backend: str) -> list[dict]:
    """The backend's fastest configuration (lowest median over its seeds of the median step time) among those
    timed on judge.SPEED_MIN_TIMED_STEPS steps or more (among all when none is), all its finished, timed runs;
    [] if none. The one place "best" is chosen: extend ``configuration`` to widen it."""
    groups = {}
    for r in runs:
        if r["backend"] == backend and r["status"] == "finished" and timed_ok(r):
            groups.setdefault(configuration(r), []).append(r)
    if not groups:
        return []
    enough = [rs for rs in groups.values() if sum(r["timed_steps"] for r in rs) >= judge.SPEED_MIN_TIMED_STEPS]
    return min(enough or groups.values(), key=lambda rs: float(np.median([r["median_step_s"] for r in rs])))


def config_label(record: dict) -> str:
    """E.g. "PyTorch torch.compile", "TF eager native", "PyTorch eager native K=8"."""
    return label(record["backend"], record["mode"]) + config_name(record)[len(record["mode"]):]


def timed_steps(runs: list[dict], histories: Histories) -> list[np.ndarray]:
    out = []
    for r in runs:
        h = histories(r)
        if h is not None:
            out.append(np.asarray(h["step_time"])[np.asarray(h["timed"], dtype=bool)])
    return out


def task_speed(runs: list[dict], histories: Histories, pair: tuple[str, str] = BOTH) -> dict | None:
    """Best against best for one task and pair of backends (first, second): both configurations and the ratio
    second / first with its interval. Runs of several hosts are never compared: the host with the most timed runs
    is the one judged (named in the verdict). Runs of several packs are never compared either."""
    hosts = by_host([r for r in runs if timed_ok(r)])
    host = max(hosts, key=lambda h: len(hosts[h]), default=None)
    runs = hosts.get(host, [])
    # Another pack is another GAN (common/spec.py GAN.pack), not a way to run one faster: one pack is judged, the
    # smallest that was run
    pack = min((pack_of(r) for r in runs), default=1)
    runs = [r for r in runs if pack_of(r) == pack]
    best = {b: best_configuration(runs, b) for b in pair}
    if not all(best.values()):
        return None
    times = {b: timed_steps(rs, histories) for b, rs in best.items()}
    if not all(times.values()):
        return None
    ratio = judge.speed_ratio(*(times[b] for b in pair))  # > 1: the first faster
    return {"best": best, **ratio, "host": host if len(hosts) > 1 else None}


def busy_note(runs: list[dict]) -> str:
    """'' when no run among ``runs`` was timed on a busy machine (or none says: records before issue 26); else
    "measured on a busy machine: ..." with the most other processes took (benchmarks/timing.py load_since)."""
    busy = [r["load"] for r in runs if isinstance(r.get("load"), dict) and r["load"].get("busy")]
    if not busy:
        return ""
    worst = max(busy, key=lambda load: load.get("others_cores", 0.0))
    return (f"measured on a busy machine ({len(busy)} of {len(runs)} runs; worst: "
            f"{timing.load_note(worst).removeprefix('busy machine: ')})")


def speed_verdict(speed: dict | None) -> str:
    """One plain phrase for the summary's "faster?" column; a comparison timed on a busy machine says so."""
    if speed is None:
        return "needs timed runs of both frameworks"
    if not math.isfinite(speed["ratio"]):
        return "not enough timed steps"
    first, second = speed["best"].values()  # the pair's best runs, in the pair's order
    note = busy_note(first + second)
    if note:
        return speed_verdict({**speed, "best": {b: [{**r, "load": None} for r in rs]
                                                for b, rs in speed["best"].items()}}) + f"; {note}"
    if speed.get("host"):
        return f"on {speed['host']}: " + speed_verdict({**speed, "host": None})
    interval = f"95% CI {speed['low']:.2f}–{speed['high']:.2f}"
    a, b = config_label(first[0]), config_label(second[0])
    if speed["verdict"] == "tie":
        return f"tie: {b} / {a} step time {speed['ratio']:.2f}x ({interval})"
    if speed["verdict"] == "a faster":
        return f"{a}, {speed['ratio']:.2f}x faster than {b} ({interval})"
    inverse = f"{1 / speed['high']:.2f}–{1 / speed['low']:.2f}"
    return f"{b}, {1 / speed['ratio']:.2f}x faster than {a} (95% CI {inverse})"


def ratio_phrase(pairs: list[tuple[str, str]]) -> str:
    """How the section's ratio reads: named for the one pair shown, else by each pair's order."""
    if len(pairs) == 1:
        first, second = (BACKEND_NAMES[b] for b in pairs[0])
        return f"{second}'s over {first}'s (> 1: {first} faster)"
    return "the second framework's over the first's, per pair (> 1: the first faster)"


def faster_section(doc: Doc, by_task: dict[str, list[dict]], speeds: dict[str, dict[tuple, dict | None]]) -> None:
    """Per task, a table per pair of backends (``speeds``: task -> pair -> task_speed)."""
    doc.heading(2, "Faster? Best against best")
    pairs = list(dict.fromkeys(pair for task_speeds in speeds.values() for pair in task_speeds))
    doc.text("Each framework's fastest measured configuration (mode, steps per call, optimiser implementation, threads) per "
             f"task, against the other's: the ratio of median step times, {ratio_phrase(pairs)}, "
             f"with a {judge.SPEED_CONFIDENCE:.0%} percentile bootstrap interval over the timed steps of "
             "every seed (warm-up excluded); a tie when the interval includes 1. Steps of one run are resampled as "
             "independent, so with one seed the interval covers step-to-step noise, not run-to-run.")
    tables = {}
    for task in by_task:
        for (first, second), speed in speeds[task].items():
            if speed is None:
                continue
            best = speed["best"]
            tables.setdefault(task, []).append(pd.DataFrame([{
                "task": task, f"{BACKEND_NAMES[first]} best": config_label(best[first][0]),
                "its median step": fmt_time(float(np.median([r["median_step_s"] for r in best[first]]))),
                f"{BACKEND_NAMES[second]} best": config_label(best[second][0]),
                "median step": fmt_time(float(np.median([r["median_step_s"] for r in best[second]]))),
                "seeds": f"{len(best[first])} / {len(best[second])}",
                f"{BACKEND_SHORT[second]} / {BACKEND_SHORT[first]}": fmt(speed["ratio"], 3),
                "95% CI": f"{fmt(speed['low'], 3)} – {fmt(speed['high'], 3)}",
                "verdict": speed_verdict(speed),
            }]))
    if not tables:
        doc.text("No task has timed runs of both frameworks.")
        return
    for task, task_tables in tables.items():
        doc.heading(3, task, anchor=f"speed-{task}")
        for table in task_tables:
            doc.table(table)
