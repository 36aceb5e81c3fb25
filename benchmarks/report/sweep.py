"""The scaling sweep: step time against batch size or width, from OUT/sweep.csv if there is one."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report import plots
from benchmarks.report.doc import Doc, fmt, fmt_time
from benchmarks.store import SWEEP_FILE


def sweep_section(doc: Doc, out_dir: Path, figures: Path) -> None:
    doc.heading(2, "Scaling sweep")
    path = out_dir / SWEEP_FILE
    if not path.exists():
        doc.text(f"No sweep in this run (python -m benchmarks.sweep --sweep batch --out {out_dir}).")
        return
    try:
        sweep = pd.read_csv(path)
    except Exception as error:  # empty, unparsable, not UTF-8: the section says so, the report is still built
        doc.warn(f"{SWEEP_FILE} cannot be read ({type(error).__name__}: {error}): not plotted.")
        return
    needed = {"sweep", "value", "backend", "mode", "median_s"}
    if sweep.empty or not needed <= set(sweep.columns):
        doc.warn(f"{SWEEP_FILE} is empty or lacks columns {', '.join(sorted(needed - set(sweep.columns)))}: not plotted.")
        return
    numbers = [c for c in ("value", "median_s", "p25_s", "p75_s") if c in sweep.columns]
    sweep[numbers] = sweep[numbers].apply(pd.to_numeric, errors="coerce")
    bad = ~(sweep[["value", "median_s"]] > 0).all(axis=1)  # NaN (not a number) compares False too
    if bad.any():
        doc.warn(f"{SWEEP_FILE}: {int(bad.sum())} row(s) without a positive value and median step time: not plotted.")
        sweep = sweep[~bad]
        if sweep.empty:
            return
    doc.image(plots.sweep_plot(sweep, figures / "sweep.png"),
              "Median step time against the swept size, log-log (band: interquartile range)")
    shown = [c for c in ("sweep", "task", "value", "backend", "mode", "median_s", "p25_s", "p75_s", "steps_per_s",
                         "gflops", "compile_s") if c in sweep.columns]
    table = sweep[shown].copy()
    for column in ("median_s", "p25_s", "p75_s", "compile_s"):
        if column in table:
            table[column] = table[column].map(fmt_time)
    for column in ("value", "steps_per_s", "gflops"):
        if column in table:
            table[column] = table[column].map(lambda v: fmt(v, 3))
    doc.table(table)
