"""Speed: step times, compile times and phase times of every timed run."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmarks.report import plots
from benchmarks.report.doc import BACKEND_NAMES, MODE_NAMES, Doc, fmt, fmt_time, label
from benchmarks.report.runs import timed_ok

# Record fields ending in "_s" that are not phase timings (benchmarks/cell.py's extra_timings adds "<phase>_s").
NOT_PHASES = {"median_step_s", "p25_step_s", "p75_step_s", "first_call_s", "compile_s", "median_data_s",
              "wall_s", "steps_per_s", "samples_per_s", "gflops_per_s", "sample_s"}


def phase_times(record: dict) -> dict[str, float]:
    return {k[:-2]: v for k, v in record.items()
            if k.endswith("_s") and k not in NOT_PHASES and isinstance(v, (int, float)) and math.isfinite(v)}


def speed_section(doc: Doc, runs: list[dict], figures: Path) -> None:
    doc.heading(2, "Speed")
    timed = [r for r in runs if timed_ok(r)]
    if not timed:
        doc.text("No run has timed steps.")
        return
    doc.text("Median and interquartile range of the per-step wall time over the timed steps (warm-up excluded); "
             "compile time is the first call's excess over a steady call; GFLOP/s from the model's FLOP count, "
             "% of peak against the best sgemm this machine showed in the run.")
    doc.table(pd.DataFrame([{
        "task": r["task"], "backend": BACKEND_NAMES.get(r["backend"], r["backend"]),
        "mode": MODE_NAMES.get((r["backend"], r["mode"]), r["mode"]), "seed": r["seed"],
        "median step": fmt_time(r["median_step_s"]),
        "IQR": f"{fmt_time(r['p25_step_s'])} – {fmt_time(r['p75_step_s'])}",
        "timed steps": fmt(r["timed_steps"]), "compile": fmt_time(r.get("compile_s")),
        "steps/s": fmt(r.get("steps_per_s"), 3), "samples/s": fmt(round(r.get("samples_per_s", math.nan)))
        if math.isfinite(r.get("samples_per_s", math.nan)) else "—",
        "GFLOP/s": fmt(r.get("gflops_per_s"), 3), "% of peak": fmt(r.get("pct_of_peak"), 2),
        "optimizer": r["config"].get("optimizer", "?"), "steps/call": r.get("steps_per_call", 1),
        "status": r["status"],
    } for r in timed]))
    first_seed = {}
    for r in timed:
        first_seed.setdefault((r["task"], r["backend"], r["mode"]), r)
    step_values, compile_values = {}, {}
    for (task, backend, mode), r in first_seed.items():
        step_values.setdefault(task, []).append((backend, mode, r["median_step_s"] * 1e3, r["p25_step_s"] * 1e3,
                                                 r["p75_step_s"] * 1e3))
        compile_values.setdefault(task, []).append((backend, mode, r.get("compile_s", math.nan), math.nan, math.nan))
    doc.image(plots.bars(step_values, figures / "speed-step-time.png", "Median step time (bars: IQR)", "ms per step"),
              "Median training-step time per backend and mode (orange PyTorch, blue TensorFlow; plain compiled, "
              "dotted eager, hatched XLA), error bars from the 25th to the 75th percentile")
    doc.image(plots.bars(compile_values, figures / "speed-compile-time.png", "Compile / first-call time", "seconds"),
              "Compile time: the first call's excess over a steady call (tracing, torch.compile, XLA)")
    rows = [(t, b, m, phase_times(r)) for (t, b, m), r in first_seed.items()]
    if any(times for *_, times in rows):
        doc.image(plots.phase_bars([row for row in rows if row[3]], figures / "speed-phases.png"),
                  "Median time of each phase of a step, measured on extra calls after training")
    else:
        doc.text("D/G phase times: not measured (the trainers offer no time_phases).")
    doc.table(pd.DataFrame([{"task": t, "run": label(b, m), "generate(batch)": fmt_time(first_seed[(t, b, m)].get("sample_s")),
                             **{f"{name}": fmt_time(v) for name, v in times.items()}}
                            for (t, b, m, times) in rows]))
