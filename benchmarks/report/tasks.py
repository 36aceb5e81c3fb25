"""One section per task: its runs, warnings, loss and D-output curves, final samples, progress GIFs and metrics."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import plots, samples
from benchmarks.report.doc import BACKEND_NAMES, BACKEND_SHORT, Doc, fmt, label, per_pair
from benchmarks.report.runs import Histories, metric_values, pairs_of, representatives
from common import metrics as judge
from common.backend import BOTH
from common.spec import SIGMOID_LOSSES

TASK_SUBSECTIONS = ("Losses", "Discriminator outputs", "Samples", "Training progress", "Metrics")
REAL_POINTS = 1000  # real points drawn from a toy task's sampler for the scatter plots
REAL_POINTS_SEED = 0
SAME_TO = 1e-3  # one seed each: values this close (relative) are reported as equal, not as one "ahead"
OVERLAY_NOTE = "PyTorch is drawn wider beneath TensorFlow: an orange rim around blue means the curves coincide."


def sample_backdrop(task: str, points: bool) -> tuple[np.ndarray | None, bool]:
    """What the sample figures draw behind the generated samples: real 2-D points from the task's own sampler
    (a known distribution; scatter plots only, else None), and whether to draw the parabola's bounds x² and 2x²+1.
    Both come from the task's record (common/tasks.py), never from its name."""
    from common import tasks

    record = tasks.TASKS.get(task)  # None for a task this version does not know: nothing drawn behind
    bounds = record is not None and record.family == "parabola"
    if not points or record is None or record.needs_data_dir:
        return None, bounds
    source = record.load().source
    if not hasattr(source, "next_batch"):
        return None, bounds
    return source.next_batch(np.random.default_rng(REAL_POINTS_SEED), REAL_POINTS).astype(np.float32), bounds


def task_section(doc: Doc, task: str, runs: list[dict], histories: Histories, figures: Path) -> None:
    doc.heading(2, f"Task: {task}", anchor=f"task-{task}")
    reps = representatives(runs)
    first = {b: rs[0] for b, rs in reps.items()}
    spec = runs[0].get("spec", {})
    modes = {b: ", ".join(sorted({r["mode"] for r in runs if r["backend"] == b})) for b in BACKEND_NAMES}
    doc.text(f"{len(runs)} run(s): " + "; ".join(f"{BACKEND_NAMES[b]} modes {m}" for b, m in modes.items() if m)
             + f". Loss {runs[0]['loss']}, batch {runs[0]['config']['batch_size']}, steps "
             + ", ".join(sorted({str(r['steps']) for r in runs})) + ". Figures show "
             + " and ".join(f"{label(b, r['mode'])} seed {r['seed']}" for b, r in first.items()) + ".")
    if len(reps) < 2:
        missing = [BACKEND_NAMES[b] for b in BOTH if b not in reps]  # the pair every comparison here is of
        doc.warn(f"no {', '.join(missing)} run for {task}: nothing to compare against.")
    for r in runs:
        if r["status"] != "finished" or r.get("flags"):
            doc.warn(f"{label(r['backend'], r['mode'])} seed {r['seed']}: {r['status']}"
                     + (f" at step {r['diverged_at_step']}" if r.get("diverged_at_step") else "")
                     + (f"; flags: {', '.join(r['flags'])}" if r.get("flags") else ""))
    hist = {b: histories(r) for b, r in first.items()}
    hist = {b: h for b, h in hist.items() if h is not None}
    labels = {b: f"{label(b, first[b]['mode'])} (seed {first[b]['seed']})" for b in hist}
    if hist:
        task_figures(doc, task, spec, runs[0]["loss"], hist, labels, figures)
    metrics_table(doc, reps)


def task_figures(doc: Doc, task: str, spec: dict, loss: str, hist: dict, labels: dict, figures: Path) -> None:
    doc.heading(3, "Losses")
    path = plots.training_curves(hist, labels, figures / f"{task}-losses.png", f"{task}: training losses",
                                 (("d_loss", "D loss"), ("g_loss", "G loss")))
    doc.image(path, f"{task}: D and G loss per step (faint: raw; bold: moving average). {OVERLAY_NOTE}")
    doc.heading(3, "Discriminator outputs")
    ylabel = "mean D output (probability)" if loss in SIGMOID_LOSSES else "mean critic value"
    path = plots.d_outputs(hist, labels, figures / f"{task}-d-outputs.png", f"{task}: mean D(real) and D(fake)", ylabel)
    doc.image(path, f"{task}: {ylabel} on the real batch (solid) and the fake batch (dashed), before each D "
                    f"update. {OVERLAY_NOTE}")
    shape = tuple(spec.get("data_shape", [hist[next(iter(hist))]["snapshots"].shape[-1]]))
    kind = samples.sample_kind(shape)
    real, bounds = sample_backdrop(task, kind == "points")
    doc.heading(3, "Samples")
    if kind == "points":
        final = {b: h["samples"] for b, h in hist.items()}
        what = f"final samples ({len(next(iter(final.values())))} points from the same noise) against real points"
    else:
        final = {b: h["snapshots"][-1] for b, h in hist.items()}
        what = "final samples from the same 64 noise vectors" + (", against the bounds x² and 2x²+1" if bounds else "")
    path = samples.samples_side_by_side(final, labels, shape, real, bounds, figures / f"{task}-samples.png",
                                        f"{task}: {what}")
    doc.image(path, f"{task}: {what}")
    doc.heading(3, "Training progress")
    gifs = []
    for b, h in hist.items():
        gif = samples.progress_gif(h["snapshots"], h["snapshot_steps"], b, labels[b], shape, real, bounds,
                                   figures / f"{task}-progress-{b}.gif")
        gifs.append((gif, f"{labels[b]}: samples from fixed noise at {len(h['snapshot_steps'])} steps"))
    doc.images(gifs)


def metrics_table(doc: Doc, reps: dict[str, list[dict]]) -> None:
    doc.heading(3, "Metrics")
    runs = [r for rs in reps.values() for r in rs]
    names = [n for n in judge.METRIC_INFO if any(n in r.get("metrics", {}) for r in runs)]
    if not names:
        doc.text("No metrics: every run of the representative modes diverged or recorded none.")
        return
    pairs = pairs_of(runs)  # a verdict per pair of backends
    rows = []
    for name in names:
        info = judge.METRIC_INFO[name]
        row = {"metric": name, "better": info["better"] or "(describes)"}
        values = {}
        for b, rs in reps.items():
            values[b] = metric_values(rs, name)
            finite = [v for v in values[b] if math.isfinite(v)]
            cell = f"{label(b, rs[0]['mode'])}"
            if len(rs) == 1:
                row[cell] = fmt(values[b][0])
            else:
                row[cell] = (f"{fmt(np.mean(finite))} ± {fmt(np.std(finite, ddof=1), 2)} (n={len(finite)})"
                             if len(finite) > 1 else fmt(finite[0] if finite else math.nan))
        for pair in pairs:
            pair_values = {b: values[b] for b in pair if b in values}
            row[per_pair("verdict", pair, pairs)] = metric_verdict(info["better"], pair_values)
        row["what it measures"] = info["description"]
        rows.append(row)
    doc.table(pd.DataFrame(rows))


def metric_verdict(better: str | None, values: dict[str, list[float]]) -> str:
    """The pair's verdict on one metric: ``values`` holds the two backends' seeds, first and second in order."""
    if better is None:
        return "—"
    if len(values) < 2:
        return "one backend only"
    (first, a), (second, b) = values.items()
    if min(len(a), len(b)) < 2:
        if not (math.isfinite(a[0]) and math.isfinite(b[0])):
            return "no value on one side"
        if abs(a[0] - b[0]) <= SAME_TO * max(abs(a[0]), abs(b[0])):
            return "equal (one seed each)" if a[0] == b[0] else f"equal to {SAME_TO:.1%} (one seed each)"
        ahead = BACKEND_SHORT[first] if (a[0] < b[0]) == (better == "lower") else BACKEND_SHORT[second]
        return f"one seed each: cannot test ({ahead} ahead)"
    return judge.compare(a, b)["verdict"]
