"""`python -m benchmarks.report DIR`: the comparison report, rebuilt from saved results without retraining.

Reads only what benchmarks/store.py wrote (runs.jsonl, histories/*.npz, and sweep.csv if present) and
writes DIR/report.md, a self-contained DIR/report.html and the figures under DIR/figures/. The document
(doc.py) is built once, one module per section, and rendered to both formats, so the two never disagree;
runs.py chooses which runs each figure shows, plots.py and samples.py draw the figures.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from benchmarks import cli, store
from benchmarks.report.data import data_section
from benchmarks.report.divergence import divergence_section, task_drift
from benchmarks.report.doc import Doc, render_html, render_md, title
from benchmarks.report.environment import environment_section
from benchmarks.report.faster import faster_section, task_speed
from benchmarks.report.flags import flags_section
from benchmarks.report.multiseed import multiseed_section
from benchmarks.report.published import published_section
from benchmarks.report.runs import Histories, load_runs, pairs_of
from benchmarks.report.speed import speed_section
from benchmarks.report.summary import summary_section
from benchmarks.report.sweep import sweep_section
from benchmarks.report.tasks import task_section
from common.checkpoint import atomic_write, check_text_path, signals_deferred

REPORT_MD = store.REPORT_MD
REPORT_HTML = store.REPORT_HTML
FIGURES = store.FIGURE_DIR
# Section headings, in order (tests check them; per-task sections are "Task: <name>").
SECTIONS = ("Summary", "Flags and diverged runs", "Environment", "Data", "Same-seed trajectory divergence",
            "Faster? Best against best", "Speed", "Scaling sweep", "Multi-seed comparison", "Published results")


class FigureFolder(type(Path())):
    """OUT/figures, whose ``/`` takes plain file names only. Figure names are built from record fields (a task's
    name); one with a separator or ".." would write outside the output folder. The records are checked against the
    registry when read (store.check_record); this keeps every figure inside all the same."""

    def __truediv__(self, name):
        name = str(name)
        if name in ("", ".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(f"figure name {name!r} is invalid: it would leave {self}")
        return super().__truediv__(name)


def build_report(out_dir) -> Path:
    """Write OUT/report.md, OUT/report.html and OUT/figures/; returns the HTML path. ValueError if the folder holds
    no runs or a record is not valid; OSError if a file cannot be written (every file is written atomically)."""
    if str(out_dir) == "":
        raise ValueError("DIR '' is invalid; allowed: an output folder of python -m benchmarks.run")
    check_text_path(out_dir, "DIR")  # the report names its folder: it must be UTF-8 text
    out_dir = Path(out_dir)
    store.check_targets(out_dir)  # figures/ must not lead outside the folder, report.md must be a file or none
    runs = load_runs(out_dir)
    # The chaos floor's twins (init "seed+order1..3", older "seed+ulp") only serve the divergence section: every other section, the
    # speed tables and the sample tests among them, sees the seed's own runs.
    floors = [r for r in runs if r.get("init", "seed") != "seed"]
    runs = [r for r in runs if r.get("init", "seed") == "seed"]
    if not runs:
        raise ValueError(f"{out_dir} holds only chaos-floor runs: nothing to report")
    figures = FigureFolder(out_dir / FIGURES)
    histories = Histories(out_dir)
    by_task = {}
    for r in runs:
        by_task.setdefault(r["task"], []).append(r)
    pairs = {task: pairs_of(task_runs) for task, task_runs in by_task.items()}  # each comparison, per pair of backends
    doc = Doc()
    doc.heading(1, title(dict.fromkeys(b for pair in pairs_of(runs) for b in pair)))
    doc.text(f"Built {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from {len(runs)} run(s) in "
             f"{out_dir.resolve()} (tasks: {', '.join(by_task)}).")
    drifts = {task: task_drift(task_runs, [f for f in floors if f["task"] == task], histories)
              for task, task_runs in by_task.items()}
    speeds = {task: {pair: task_speed(task_runs, histories, pair) for pair in pairs[task]}
              for task, task_runs in by_task.items()}
    summary_section(doc, runs, by_task, pairs, drifts, speeds)
    body = Doc()
    environment_section(body, runs)
    data_section(body, by_task)
    for task, task_runs in by_task.items():
        task_section(body, task, task_runs, histories, figures)
    divergence_section(body, by_task, drifts, figures)
    faster_section(body, by_task, speeds)
    speed_section(body, runs, figures)
    sweep_section(body, out_dir, figures)
    multiseed_section(body, by_task, pairs)
    published_section(body, by_task)
    flags_section(doc, runs, histories.missing)  # after the body: it lists histories found missing there
    doc.blocks += body.blocks
    # Atomic, so an interrupt or a full disk never leaves a truncated report in place of the last good one, and
    # the two written with signals held, so an interrupt never leaves a new report.md next to an old report.html.
    markdown, html = render_md(doc, out_dir).encode(), render_html(doc).encode()
    with signals_deferred():
        atomic_write(out_dir / REPORT_MD, lambda f: f.write(markdown))
        atomic_write(out_dir / REPORT_HTML, lambda f: f.write(html))
    return out_dir / REPORT_HTML


def make_parser() -> cli.Parser:
    parser = cli.Parser(prog="python -m benchmarks.report",
                        description="Rebuild report.md and report.html from the results in DIR.")
    parser.add_argument("dir", metavar="DIR", help="an output folder of python -m benchmarks.run")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)

    def body() -> int:
        with cli.checking_input(ValueError):
            path = build_report(args.dir)
        print(f"report: {path}")
        return cli.EXIT_OK

    return cli.run_command(body, kept=f"{REPORT_MD} and {REPORT_HTML} are the previous ones or whole new ones, never "
                           f"part of one; rebuild them with python -m benchmarks.report {args.dir}",
                           kept_after_write_error=f"the results in {args.dir} are untouched", writing="the report")
