"""Flags and diverged runs: every run that did not finish cleanly, and every history that could not be read."""
from __future__ import annotations

import pandas as pd

from benchmarks.report.doc import Doc, fmt, label


def flags_section(doc: Doc, runs: list[dict], missing: list[str]) -> None:
    doc.heading(2, "Flags and diverged runs")
    flagged = [r for r in runs if r["status"] != "finished" or r.get("flags")]
    if not flagged:
        doc.text("None: every run finished with finite losses and no flag (d_saturated, mode_collapse).")
    else:
        doc.warn(f"{len(flagged)} run(s) diverged or were flagged; their numbers are shown, not hidden.")
        doc.table(pd.DataFrame([{
            "task": r["task"], "run": label(r["backend"], r["mode"]), "seed": r["seed"], "status": r["status"],
            "diverged at step": fmt(r.get("diverged_at_step")), "flags": ", ".join(r.get("flags", [])) or "—",
        } for r in flagged]))
    for note in missing:
        doc.warn(f"history missing or unreadable, figures skipped: {note}")
