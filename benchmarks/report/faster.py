"""Faster? Per task, each framework's fastest measured configuration against the other's, as a ratio of median step
times with a bootstrap confidence interval over the timed steps of every seed (common.metrics.speed_ratio); "tie"
when the interval includes 1."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks import timing
from benchmarks.report.doc import Doc, fmt, fmt_time, label
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


def task_speed(runs: list[dict], histories: Histories) -> dict | None:
    """Best against best for one task: both configurations and the ratio tf / torch with its interval. Runs of
    several hosts are never compared: the host with the most timed runs is the one judged (named in the verdict).
    Runs of several packs are never compared either."""
    hosts = by_host([r for r in runs if timed_ok(r)])
    host = max(hosts, key=lambda h: len(hosts[h]), default=None)
    runs = hosts.get(host, [])
    # Another pack is another GAN (common/spec.py GAN.pack), not a way to run one faster: one pack is judged, the
    # smallest that was run
    pack = min((pack_of(r) for r in runs), default=1)
    runs = [r for r in runs if pack_of(r) == pack]
    best = {b: best_configuration(runs, b) for b in BOTH}  # the verdict is PyTorch's against TensorFlow's
    if not all(best.values()):
        return None
    times = {b: timed_steps(rs, histories) for b, rs in best.items()}
    if not all(times.values()):
        return None
    ratio = judge.speed_ratio(times["torch"], times["tf"])  # > 1: PyTorch faster
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
    note = busy_note(speed["best"]["torch"] + speed["best"]["tf"])
    if note:
        return speed_verdict({**speed, "best": {b: [{**r, "load": None} for r in rs]
                                                for b, rs in speed["best"].items()}}) + f"; {note}"
    if speed.get("host"):
        return f"on {speed['host']}: " + speed_verdict({**speed, "host": None})
    interval = f"95% CI {speed['low']:.2f}–{speed['high']:.2f}"
    torch, tf = config_label(speed["best"]["torch"][0]), config_label(speed["best"]["tf"][0])
    if speed["verdict"] == "tie":
        return f"tie: {tf} / {torch} step time {speed['ratio']:.2f}x ({interval})"
    if speed["verdict"] == "a faster":
        return f"{torch}, {speed['ratio']:.2f}x faster than {tf} ({interval})"
    inverse = f"{1 / speed['high']:.2f}–{1 / speed['low']:.2f}"
    return f"{tf}, {1 / speed['ratio']:.2f}x faster than {torch} (95% CI {inverse})"


def faster_section(doc: Doc, by_task: dict[str, list[dict]], speeds: dict[str, dict | None]) -> None:
    doc.heading(2, "Faster? Best against best")
    doc.text("Each framework's fastest measured configuration (mode, steps per call, optimiser implementation, threads) per "
             "task, against the other's: the ratio of median step times, TensorFlow's over PyTorch's (> 1: PyTorch "
             f"faster), with a {judge.SPEED_CONFIDENCE:.0%} percentile bootstrap interval over the timed steps of "
             "every seed (warm-up excluded); a tie when the interval includes 1. Steps of one run are resampled as "
             "independent, so with one seed the interval covers step-to-step noise, not run-to-run.")
    rows = []
    for task in by_task:
        speed = speeds[task]
        if speed is None:
            continue
        best = speed["best"]
        rows.append({
            "task": task, "PyTorch best": config_label(best["torch"][0]),
            "its median step": fmt_time(float(np.median([r["median_step_s"] for r in best["torch"]]))),
            "TensorFlow best": config_label(best["tf"][0]),
            "median step": fmt_time(float(np.median([r["median_step_s"] for r in best["tf"]]))),
            "seeds": f"{len(best['torch'])} / {len(best['tf'])}",
            "TF / PyTorch": fmt(speed["ratio"], 3), "95% CI": f"{fmt(speed['low'], 3)} – {fmt(speed['high'], 3)}",
            "verdict": speed_verdict(speed),
        })
    if not rows:
        doc.text("No task has timed runs of both frameworks.")
        return
    for row in rows:
        doc.heading(3, row["task"], anchor=f"speed-{row['task']}")
        doc.table(pd.DataFrame([row]))
