"""`python -m benchmarks.report DIR`: the comparison report, rebuilt from saved results without retraining.

Reads only what benchmarks/store.py wrote (runs.jsonl, histories/*.npz, and sweep.csv if present) and
writes DIR/report.md, a self-contained DIR/report.html (images embedded as data URIs, so the one file can
be mailed) and the figures under DIR/figures/. The document is built once as a list of blocks (headings,
paragraphs, warnings, tables, images) and rendered to both formats, so the two never disagree.

Which runs a figure shows: per task and backend, the *representative* mode is the one with the most
seeds, ties broken by the fastest median step; curves, samples and GIFs show its lowest seed, the sample
verdict compares its seeds. Speed compares the fastest mode of each backend.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import html
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import plots, store
from common import metrics as judge
from common.backend import MODES
from common.spec import SIGMOID_LOSSES

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES = "figures"
SWEEP_FILE = "sweep.csv"
TITLE = "GAN parity suite: PyTorch vs TensorFlow"
# Section headings, in order (tests check them; per-task sections are "Task: <name>").
SECTIONS = ("Summary", "Flags and diverged runs", "Environment", "Data", "Same-seed trajectory divergence",
            "Speed", "Scaling sweep", "Multi-seed comparison")
TASK_SUBSECTIONS = ("Losses", "Discriminator outputs", "Samples", "Training progress", "Metrics")
BACKEND_NAMES = {"torch": "PyTorch", "tf": "TensorFlow"}
BACKEND_SHORT = {"torch": "PyTorch", "tf": "TF"}
MODE_NAMES = {("torch", "eager"): "eager", ("torch", "compiled"): "torch.compile", ("tf", "eager"): "eager",
              ("tf", "compiled"): "tf.function", ("tf", "xla"): "XLA"}
# Same-seed divergence compares like with like: torch mode -> the TensorFlow modes that do the same job.
MATCHING_MODES = {"eager": ("eager",), "compiled": ("compiled", "xla")}
REAL_POINTS = 1000  # real points drawn from a toy task's sampler for the scatter plots
REAL_POINTS_SEED = 0
SUMMARY_METRICS = 3
SAME_TO = 1e-3  # one seed each: values this close (relative) are reported as equal, not as one "ahead"  # judged metrics quoted per task in the summary when there is one seed
# Record fields ending in "_s" that are not phase timings (run.py's extra_timings adds "<phase>_s").
NOT_PHASES = {"median_step_s", "p25_step_s", "p75_step_s", "first_call_s", "compile_s", "median_data_s",
              "wall_s", "steps_per_s", "samples_per_s", "gflops_per_s", "sample_s"}
OVERLAY_NOTE = "PyTorch is drawn wider beneath TensorFlow: an orange rim around blue means the curves coincide."
DIVERGENCE_SENTENCE = (
    "Both backends start from the same weights and see the same data and noise at every step, so any gap "
    "here is floating-point rounding (other kernels, other summation orders) amplified by training: a gap "
    "that stays near float32 precision means the two trajectories are the same computation, a gap that grows "
    "steadily shows how fast the GAN dynamics amplify rounding, not a difference in what is computed.")


# ----------------------------------------------------------------------------- the document


@dataclass
class Doc:
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def warn(self, text: str) -> None:
        self.blocks.append(("warn", text))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    def images(self, items: list[tuple[Path, str]]) -> None:
        """Images shown side by side (GIFs of the two backends)."""
        self.blocks.append(("images", items))


def md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def render_md(doc: Doc, out_dir: Path) -> str:
    parts = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            parts.append("#" * block[1] + " " + block[2])
        elif kind == "text":
            parts.append(block[1])
        elif kind == "warn":
            parts.append("> **Warning:** " + block[1])
        elif kind == "table":
            parts.append(md_table(block[1]))
        elif kind == "image":
            parts.append(f"![{block[1].stem}]({block[1].relative_to(out_dir).as_posix()})\n\n*{block[2]}*")
        elif kind == "images":
            parts.append("  ".join(f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p, _ in block[1])
                         + "\n\n" + "; ".join(f"*{c}*" for _, c in block[1]))
    return "\n\n".join(parts) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1250px; margin: 2em auto;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { border-bottom: 3px solid #1f6fb4; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 2em; }
h3 { margin-top: 1.4em; color: #333; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
tr:nth-child(even) td { background: #fafbfc; }
.warn { background: #fff4e5; border-left: 5px solid #e8710a; padding: .6em 1em; margin: .8em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
.torch { color: #e8710a; font-weight: bold; } .tf { color: #1f6fb4; font-weight: bold; }
"""


def data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{data_uri(path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(doc: Doc) -> str:
    parts = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            anchor = "".join(c if c.isalnum() else "-" for c in block[2].lower())
            parts.append(f'<h{block[1]} id="{anchor}">{html.escape(block[2])}</h{block[1]}>')
        elif kind == "text":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "warn":
            parts.append(f'<div class="warn"><b>Warning:</b> {html.escape(block[1])}</div>')
        elif kind == "table":
            parts.append(block[1].to_html(index=False, border=0, escape=True, na_rep="—"))
        elif kind == "image":
            parts.append(html_figure(block[1], block[2]))
        elif kind == "images":
            parts.append('<div class="row">' + "".join(html_figure(p, c) for p, c in block[1]) + "</div>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(TITLE)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


# ----------------------------------------------------------------------------- formatting


def fmt_time(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds == 0:
        return "0"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}".replace(",", " ")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else str(value)
    return f"{value:.{digits}g}"


def label(backend: str, mode: str) -> str:
    return f"{BACKEND_SHORT.get(backend, backend)} {MODE_NAMES.get((backend, mode), mode)}"


# ----------------------------------------------------------------------------- loading and choosing runs


def load_runs(out_dir: Path) -> list[dict]:
    """The records, the latest per cell; ValueError if the folder has no runs."""
    if not (out_dir / store.RUNS_FILE).exists():
        raise ValueError(f"{out_dir} has no {store.RUNS_FILE}: nothing to report (run python -m benchmarks.run "
                         f"--out {out_dir} first)")
    records = store.read_records(out_dir)
    if not records:
        raise ValueError(f"{out_dir / store.RUNS_FILE} holds no runs: nothing to report")
    latest = {store.cell_of(r): r for r in records}
    return sorted(latest.values(), key=run_order)


def run_order(record: dict) -> tuple:
    """Tasks in registry order, PyTorch before TensorFlow, modes eager, compiled, xla, then seeds."""
    from common.tasks import TASKS

    task_rank = list(TASKS).index(record["task"]) if record["task"] in TASKS else len(TASKS)
    backend_rank = list(BACKEND_NAMES).index(record["backend"]) if record["backend"] in BACKEND_NAMES else 9
    mode_rank = MODES.index(record["mode"]) if record["mode"] in MODES else 9
    return (task_rank, record["task"], backend_rank, mode_rank, record["seed"])


class Histories:
    """Loads each run's arrays once; None (and a note) when the file is missing or unreadable."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.cache, self.missing = out_dir, {}, []

    def __call__(self, record: dict) -> dict | None:
        run_id = record["run_id"]
        if run_id not in self.cache:
            try:
                self.cache[run_id] = store.read_history(self.out_dir, record["history"])
            except (OSError, KeyError, ValueError) as e:
                self.cache[run_id] = None
                self.missing.append(f"{run_id}: {e}")
        return self.cache[run_id]


def timed_ok(record: dict) -> bool:
    return record.get("timed_steps", 0) > 0 and math.isfinite(record.get("median_step_s", math.nan))


def fastest(runs: list[dict], backend: str) -> dict | None:
    """The backend's run with the smallest median step time (finished runs with timed steps)."""
    candidates = [r for r in runs if r["backend"] == backend and r["status"] == "finished" and timed_ok(r)]
    return min(candidates, key=lambda r: r["median_step_s"]) if candidates else None


def representative_mode(runs: list[dict], backend: str) -> str | None:
    """The backend's mode with the most seeds, ties broken by the fastest median step."""
    modes = {}
    for r in runs:
        if r["backend"] == backend:
            modes.setdefault(r["mode"], []).append(r)
    if not modes:
        return None

    def key(mode):
        times = [r["median_step_s"] for r in modes[mode] if timed_ok(r)]
        return (-len(modes[mode]), min(times) if times else math.inf)

    return min(modes, key=key)


def representatives(runs: list[dict]) -> dict[str, list[dict]]:
    """backend -> the runs (all seeds, sorted) of its representative mode."""
    out = {}
    for backend in BACKEND_NAMES:
        mode = representative_mode(runs, backend)
        if mode is not None:
            out[backend] = sorted((r for r in runs if r["backend"] == backend and r["mode"] == mode),
                                  key=lambda r: r["seed"])
    return out


def judged_metrics(runs: list[dict]) -> list[str]:
    """Metric names with a better direction present in these runs, in METRIC_INFO order."""
    present = {name for r in runs for name in r.get("metrics", {})}
    return [name for name, info in judge.METRIC_INFO.items() if name in present and info["better"]]


def metric_values(runs: list[dict], name: str) -> list[float]:
    return [r["metrics"].get(name, math.nan) if r["status"] == "finished" else math.nan for r in runs]


# ----------------------------------------------------------------------------- summary


def machine_phrase(env: dict) -> str:
    threads = []
    for backend, settings in env.get("configure", {}).items():
        n = settings.get("intra_op_threads")
        threads.append(f"{BACKEND_SHORT.get(backend, backend)} {n if n else 'default'} intra-op threads")
    cores = env.get("cpu_count")
    devices = set(env.get("devices", {}).values())
    where = env.get("cpu", "unknown CPU") if devices <= {"cpu"} else ", ".join(sorted(devices))
    return f"On this machine ({where}, {cores} cores; {', '.join(threads)})"


def speed_sentence(task: str, runs: list[dict]) -> str:
    best = {b: fastest(runs, b) for b in BACKEND_NAMES}
    best = {b: r for b, r in best.items() if r is not None}
    if not best:
        return f"no {task} run finished with timed steps"
    if len(best) == 1:
        (backend, r), = best.items()
        return f"only {label(backend, r['mode'])} ran {task} (median step {fmt_time(r['median_step_s'])})"
    fast, slow = sorted(best.values(), key=lambda r: r["median_step_s"])
    ratio = slow["median_step_s"] / fast["median_step_s"]
    return (f"{label(fast['backend'], fast['mode'])} trained {task} {ratio:.1f}x faster than "
            f"{label(slow['backend'], slow['mode'])} (median step {fmt_time(fast['median_step_s'])} vs "
            f"{fmt_time(slow['median_step_s'])})")


def sample_sentence(runs: list[dict]) -> str:
    reps = representatives(runs)
    if len(reps) < 2:
        return "one backend only: no sample comparison"
    diverged = [f"{label(r['backend'], r['mode'])} seed {r['seed']}" for rs in reps.values() for r in rs
                if r["status"] != "finished"]
    names = judged_metrics([r for rs in reps.values() for r in rs])
    if not names:
        return "no sample metrics (" + ("diverged: " + ", ".join(diverged) if diverged else "none recorded") + ")"
    seeds = min(len(rs) for rs in reps.values())
    note = f" ({', '.join(diverged)} diverged)" if diverged else ""
    if seeds < 2:
        values = "; ".join(f"{n} {fmt(metric_values(reps['torch'], n)[0], 3)} vs {fmt(metric_values(reps['tf'], n)[0], 3)}"
                           for n in names[:SUMMARY_METRICS])
        return f"one seed per backend cannot establish a sample difference; PyTorch vs TF: {values}{note}"
    verdicts = {n: judge.compare(metric_values(reps["torch"], n), metric_values(reps["tf"], n)) for n in names}
    different = [f"{n} ({v['verdict']})" for n, v in verdicts.items() if v["verdict"].startswith("different")]
    if not different:
        return (f"samples show no significant difference in any of {len(names)} metrics "
                f"(Welch's t-test, {len(reps['torch'])} vs {len(reps['tf'])} seeds){note}")
    return f"samples differ in {', '.join(different)}; no significant difference in the other {len(names) - len(different)}{note}"


def summary(doc: Doc, runs: list[dict], by_task: dict[str, list[dict]]) -> None:
    doc.heading(2, "Summary")
    env = runs[-1].get("environment", {})
    sentences = [f"{speed_sentence(task, rs)}; {sample_sentence(rs)}." for task, rs in by_task.items()]
    flagged = [r for r in runs if r["status"] != "finished" or r.get("flags")]
    tail = (f" {len(flagged)} of {len(runs)} runs diverged or carry flags (see below)." if flagged
            else f" All {len(runs)} runs finished without flags.")
    doc.text(f"{machine_phrase(env)}: " + " ".join(s[0].upper() + s[1:] for s in sentences) + tail)
    doc.text("Speed compares the fastest mode of each backend per task; samples compare each backend's "
             "representative mode (most seeds, then fastest).")


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


# ----------------------------------------------------------------------------- environment and data


def environment_section(doc: Doc, runs: list[dict]) -> None:
    doc.heading(2, "Environment")
    env, record = runs[-1].get("environment", {}), runs[-1]
    versions = env.get("versions", {})
    configure = env.get("configure", {})
    git = env.get("git", {})
    rows = [
        ("date of the latest run", env.get("date", "unknown")),
        ("CPU", f"{env.get('cpu', 'unknown')} ({env.get('cpu_count', '?')} logical cores)"),
        ("devices", ", ".join(f"{BACKEND_NAMES.get(b, b)}: {d}" for b, d in env.get("devices", {}).items())),
        ("platform", env.get("platform", "unknown")),
        ("versions", ", ".join(f"{k} {versions[k]}" for k in ("python", "numpy", "torch", "tensorflow", "keras")
                               if k in versions)),
        ("threads (intra / inter-op; 0 = framework default)",
         "; ".join(f"{BACKEND_NAMES.get(b, b)} {s.get('intra_op_threads')} / {s.get('inter_op_threads')}"
                   for b, s in configure.items())),
        ("deterministic kernels", "; ".join(f"{BACKEND_NAMES.get(b, b)} {s.get('deterministic')}"
                                            for b, s in configure.items())),
        ("oneDNN", f"TF_ENABLE_ONEDNN_OPTS={env.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, TF oneDNN enabled: "
                   f"{versions.get('onednn_enabled', '?')}; PyTorch mkldnn: {versions.get('mkldnn', '?')}, "
                   f"CPU capability {versions.get('cpu_capability', '?')}"),
        ("matmul peak (sgemm, GFLOP/s)", ", ".join(f"{k} {fmt(v, 3)}" for k, v in record.get("sgemm_gflops", {}).items())),
        ("git commit", f"{git.get('commit', 'unknown')}" + (" (working tree modified)" if git.get("dirty") else "")),
        ("command", "python -m benchmarks.run " + " ".join(env.get("argv", []))),
    ]
    doc.table(pd.DataFrame(rows, columns=["setting", "value"]))
    fingerprints = {(r.get("environment", {}).get("cpu"), str(r.get("environment", {}).get("versions")),
                     r.get("environment", {}).get("git", {}).get("commit")) for r in runs}
    if len(fingerprints) > 1:
        doc.warn(f"the runs in this folder come from {len(fingerprints)} different environments (CPU, versions "
                 "or commit); the table shows the latest. Compare timings only within one environment.")


def data_section(doc: Doc, by_task: dict[str, list[dict]]) -> None:
    doc.heading(2, "Data")
    rows, notices, accuracy = [], [], None
    for task, runs in by_task.items():
        data = runs[-1].get("data", {})
        rows.append({"task": task, "source": data.get("source", "unknown"),
                     "examples": fmt(data.get("n_examples")) if data.get("n_examples") else "sampler (infinite)"})
        if data.get("notice"):
            notices.append(f"{task}: {data['notice']}")
        for r in runs:
            accuracy = r.get("metrics", {}).get("classifier_accuracy", accuracy)
    doc.table(pd.DataFrame(rows))
    for notice in notices:
        doc.warn(notice)
    if accuracy is not None:
        from common import digits
        doc.text(f"Digit judge: an MLP classifier trained on {digits.DATA_SOURCE}; its accuracy on held-out real "
                 f"digits is {accuracy:.1%} ({digits.SPLIT_DESCRIPTION}). Fréchet distance, KID and digits "
                 "covered are measured on its features and predictions.")


# ----------------------------------------------------------------------------- per task


def real_points(task: str) -> np.ndarray | None:
    """Real 2-D points from the task's own sampler (a known distribution), for the scatter plots."""
    from common import tasks

    if task not in tasks.TASKS or tasks.TASKS[task].needs_data_dir:
        return None
    source = tasks.TASKS[task].load().source
    if not hasattr(source, "next_batch"):
        return None
    return source.next_batch(np.random.default_rng(REAL_POINTS_SEED), REAL_POINTS).astype(np.float32)


def task_section(doc: Doc, task: str, runs: list[dict], histories: Histories, figures: Path) -> None:
    doc.heading(2, f"Task: {task}")
    reps = representatives(runs)
    first = {b: rs[0] for b, rs in reps.items()}
    spec = runs[0].get("spec", {})
    modes = {b: ", ".join(sorted({r["mode"] for r in runs if r["backend"] == b})) for b in BACKEND_NAMES}
    doc.text(f"{len(runs)} run(s): " + "; ".join(f"{BACKEND_NAMES[b]} modes {m}" for b, m in modes.items() if m)
             + f". Loss {runs[0]['loss']}, batch {runs[0]['config']['batch_size']}, steps "
             + ", ".join(sorted({str(r['steps']) for r in runs})) + ". Figures show "
             + " and ".join(f"{label(b, r['mode'])} seed {r['seed']}" for b, r in first.items()) + ".")
    if len(reps) < 2:
        missing = [BACKEND_NAMES[b] for b in BACKEND_NAMES if b not in reps]
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
    kind = plots.sample_kind(shape)
    real = real_points(task) if kind == "points" else None
    bounds = task == "parabola"
    doc.heading(3, "Samples")
    if kind == "points":
        final = {b: h["samples"] for b, h in hist.items()}
        what = f"final samples ({len(next(iter(final.values())))} points from the same noise) against real points"
    else:
        final = {b: h["snapshots"][-1] for b, h in hist.items()}
        what = "final samples from the same 64 noise vectors" + (", against the bounds x² and 2x²+1" if bounds else "")
    path = plots.samples_side_by_side(final, labels, shape, real, bounds, figures / f"{task}-samples.png",
                                      f"{task}: {what}")
    doc.image(path, f"{task}: {what}")
    doc.heading(3, "Training progress")
    gifs = []
    for b, h in hist.items():
        gif = plots.progress_gif(h["snapshots"], h["snapshot_steps"], b, labels[b], shape, real, bounds,
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
        row["verdict"] = metric_verdict(info["better"], values)
        row["what it measures"] = info["description"]
        rows.append(row)
    doc.table(pd.DataFrame(rows))


def metric_verdict(better: str | None, values: dict[str, list[float]]) -> str:
    if better is None:
        return "—"
    if len(values) < 2:
        return "one backend only"
    a, b = values["torch"], values["tf"]
    if min(len(a), len(b)) < 2:
        if not (math.isfinite(a[0]) and math.isfinite(b[0])):
            return "no value on one side"
        if abs(a[0] - b[0]) <= SAME_TO * max(abs(a[0]), abs(b[0])):
            return "equal (one seed each)" if a[0] == b[0] else f"equal to {SAME_TO:.1%} (one seed each)"
        ahead = "PyTorch" if (a[0] < b[0]) == (better == "lower") else "TF"
        return f"one seed each: cannot test ({ahead} ahead)"
    return judge.compare(a, b)["verdict"]


# ----------------------------------------------------------------------------- divergence


def divergence_pairs(runs: list[dict], histories: Histories) -> list[dict]:
    """Same-seed (torch run, tf run) pairs with the same config: weight and loss gaps over training."""
    pairs = []
    torch_runs = [r for r in runs if r["backend"] == "torch"]
    tf_runs = [r for r in runs if r["backend"] == "tf"]
    for a in torch_runs:
        for b in tf_runs:
            if a["seed"] != b["seed"] or a["config"] != b["config"] or b["mode"] not in MATCHING_MODES.get(a["mode"], ()):
                continue
            ha, hb = histories(a), histories(b)
            if ha is None or hb is None or not np.array_equal(ha["sketch_index"], hb["sketch_index"]):
                continue
            common_steps, ia, ib = np.intersect1d(ha["sketch_steps"], hb["sketch_steps"], return_indices=True)
            rel = np.array([judge.weight_distance({"w": [ha["sketch"][i]]}, {"w": [hb["sketch"][j]]})["relative_l2"]
                            for i, j in zip(ia, ib)])
            n = min(len(ha["d_loss"]), len(hb["d_loss"]))
            pairs.append({
                "label": f"{label('torch', a['mode'])} vs {label('tf', b['mode'])}, seed {a['seed']}",
                "seed": a["seed"], "sketch_steps": common_steps, "weight_rel_l2": rel,
                "d_loss_diff": np.abs(ha["d_loss"][:n] - hb["d_loss"][:n]),
                "g_loss_diff": np.abs(ha["g_loss"][:n] - hb["g_loss"][:n]),
                "sketch_size": int(ha["sketch_index"].size),
            })
    return pairs


def divergence_section(doc: Doc, by_task: dict[str, list[dict]], histories: Histories, figures: Path) -> None:
    doc.heading(2, "Same-seed trajectory divergence")
    doc.text(DIVERGENCE_SENTENCE)
    any_pair = False
    for task, runs in by_task.items():
        pairs = divergence_pairs(runs, histories)
        if not pairs:
            doc.text(f"{task}: no seed ran in both backends with the same configuration and matching modes "
                     "(eager with eager; torch.compile with tf.function or XLA).")
            continue
        any_pair = True
        path = plots.divergence(pairs, figures / f"{task}-divergence.png",
                                f"{task}: how far the two backends drift apart from the same start")
        doc.image(path, f"{task}: relative L2 distance of the weights (left; on {pairs[0]['sketch_size']} sampled "
                        "coordinates) and absolute loss differences per step (right), log scale; zero (identical) "
                        "values are not drawn; dots: per step, lines: moving average")
        doc.table(pd.DataFrame([{
            "pair": p["label"], "steps": len(p["d_loss_diff"]),
            "weights: final relative L2": fmt(p["weight_rel_l2"][-1] if len(p["weight_rel_l2"]) else math.nan, 3),
            "|ΔD loss| first step": fmt(p["d_loss_diff"][0] if len(p["d_loss_diff"]) else math.nan, 3),
            "|ΔD loss| median": fmt(np.nanmedian(p["d_loss_diff"]) if len(p["d_loss_diff"]) else math.nan, 3),
            "|ΔG loss| median": fmt(np.nanmedian(p["g_loss_diff"]) if len(p["g_loss_diff"]) else math.nan, 3),
        } for p in pairs]))
    if not any_pair:
        doc.text("Run both backends with the same seed and steps (--backend both) to see it.")


# ----------------------------------------------------------------------------- speed


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


def sweep_section(doc: Doc, out_dir: Path, figures: Path) -> None:
    doc.heading(2, "Scaling sweep")
    path = out_dir / SWEEP_FILE
    if not path.exists():
        doc.text(f"No sweep in this run (python -m benchmarks.sweep --sweep batch --out {out_dir}).")
        return
    sweep = pd.read_csv(path)
    needed = {"sweep", "value", "backend", "mode", "median_s"}
    if sweep.empty or not needed <= set(sweep.columns):
        doc.warn(f"{SWEEP_FILE} is empty or lacks columns {', '.join(sorted(needed - set(sweep.columns)))}: not plotted.")
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


# ----------------------------------------------------------------------------- multi-seed


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


# ----------------------------------------------------------------------------- entry points


def build_report(out_dir) -> Path:
    """Write OUT/report.md, OUT/report.html and OUT/figures/; returns the HTML path."""
    out_dir = Path(out_dir)
    runs = load_runs(out_dir)
    figures = out_dir / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    histories = Histories(out_dir)
    by_task = {}
    for r in runs:
        by_task.setdefault(r["task"], []).append(r)
    doc = Doc()
    doc.heading(1, TITLE)
    doc.text(f"Built {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from {len(runs)} run(s) in "
             f"{out_dir.resolve()} (tasks: {', '.join(by_task)}).")
    summary(doc, runs, by_task)
    body = Doc()
    environment_section(body, runs)
    data_section(body, by_task)
    for task, task_runs in by_task.items():
        task_section(body, task, task_runs, histories, figures)
    divergence_section(body, by_task, histories, figures)
    speed_section(body, runs, figures)
    sweep_section(body, out_dir, figures)
    multiseed_section(body, by_task)
    flags_section(doc, runs, histories.missing)  # after the body: it lists histories found missing there
    doc.blocks += body.blocks
    (out_dir / REPORT_MD).write_text(render_md(doc, out_dir), encoding="utf-8")
    html_path = out_dir / REPORT_HTML
    html_path.write_text(render_html(doc), encoding="utf-8")
    return html_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description="Rebuild report.md and report.html from the results in DIR.")
    parser.add_argument("dir", metavar="DIR", help="an output folder of python -m benchmarks.run")
    args = parser.parse_args(argv)
    try:
        path = build_report(args.dir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
