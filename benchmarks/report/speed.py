"""Speed: step times, compile times and phase times of every timed run, one host at a time."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmarks import timing
from benchmarks.report import plots
from benchmarks.report.doc import BACKEND_NAMES, MODE_NAMES, Doc, fmt, fmt_time, per_pair
from benchmarks.report.faster import best_configuration, busy_note, config_label
from benchmarks.report.runs import by_host, config_name, optimizer_of, out_of_the_box, pairs_of, timed_ok
from common.backend import BOTH

# Record fields ending in "_s" that are not phase timings (benchmarks/cell.py's extra_timings adds "<phase>_s").
NOT_PHASES = {"median_step_s", "p25_step_s", "p75_step_s", "first_call_s", "compile_s", "median_data_s",
              "wall_s", "steps_per_s", "samples_per_s", "gflops_per_s", "sample_s"}


def phase_times(record: dict) -> dict[str, float]:
    return {k[:-2]: v for k, v in record.items()
            if k.endswith("_s") and k not in NOT_PHASES and isinstance(v, (int, float)) and math.isfinite(v)}


def machine_load(record: dict) -> str:
    """The speed table's "machine" cell: "idle", "busy: others 1.3 of 2 cores", or "—" (not recorded)."""
    load = record.get("load")
    if not isinstance(load, dict) or load.get("busy") is None:
        return "—"
    if not load["busy"]:
        return "idle"
    return f"busy: others {load['others_cores']:.1f} of {load.get('cores') or '?'} cores"


def pct_of_floor(record: dict) -> str:
    """The speed table's "% of floor" cell (timing.step_floor): "—" where the record has no floor."""
    floor = record.get("floor")
    return fmt(floor["pct_of_floor"], 2) if isinstance(floor, dict) and "pct_of_floor" in floor else "—"


def colour_key(runs: list[dict]) -> str:
    """The bar charts' colours of the backends present: "orange PyTorch, blue TensorFlow" (plots.COLOUR_NAMES)."""
    present = {r["backend"] for r in runs}
    return ", ".join(f"{plots.COLOUR_NAMES[b]} {BACKEND_NAMES[b]}" for b in BACKEND_NAMES if b in present or b in BOTH)


def break_even_steps(compiled: dict, eager: dict) -> float:
    """Steps after which a compiled configuration has paid back its compile time against eager (inf if it is
    not faster per step)."""
    saved = eager["median_step_s"] - compiled["median_step_s"]
    return compiled.get("compile_s", math.nan) / saved if saved > 0 else math.inf


def fastest_run(runs: list[dict], backend: str) -> dict | None:
    """The fastest run of the backend's best configuration (faster.best_configuration chooses it)."""
    return min(best_configuration(runs, backend), key=lambda r: r["median_step_s"], default=None)


def best_against_out_of_the_box(doc: Doc, timed: list[dict], level: int = 3) -> None:
    """Per task: each framework's fastest measured configuration and its out-of-the-box one, side by side, and per
    pair of backends (runs.pairs_of) which is faster, best against best and out of the box."""
    pairs = pairs_of(timed)
    rows = []
    for task in dict.fromkeys(r["task"] for r in timed):
        runs = [r for r in timed if r["task"] == task]
        best = {b: fastest_run(runs, b) for b in BACKEND_NAMES}
        plain = {b: out_of_the_box(runs, b) for b in BACKEND_NAMES}
        row = {"task": task}
        for backend, name in BACKEND_NAMES.items():
            if backend not in BOTH and not any(r["backend"] == backend for r in timed):
                continue  # a column for JAX only where it ran: PyTorch and TensorFlow always have theirs
            b, p = best[backend], plain[backend]
            row[f"{name} fastest"] = f"{config_label(b)}: {fmt_time(b['median_step_s'])}" if b else "—"
            row[f"{name} out of the box"] = f"{fmt_time(p['median_step_s'])}" if p else "not run"
        for first, second in pairs:
            if best[first] and best[second]:
                fast, slow = sorted((best[first], best[second]), key=lambda r: r["median_step_s"])
                note = busy_note([fast, slow])
                row[per_pair("best vs best", (first, second), pairs)] = (
                    f"{BACKEND_NAMES[fast['backend']]} {slow['median_step_s'] / fast['median_step_s']:.2f}x faster"
                    + (f"; {note}" if note else ""))
        for first, second in pairs:
            if plain[first] and plain[second]:
                fast, slow = sorted((plain[first], plain[second]), key=lambda r: r["median_step_s"])
                row[per_pair("out of the box", (first, second), pairs)] = (
                    f"{BACKEND_NAMES[fast['backend']]} {slow['median_step_s'] / fast['median_step_s']:.2f}x faster")
        rows.append(row)
    doc.heading(level, "Best and out of the box")
    doc.text("Each framework's fastest measured configuration (mode, optimiser implementation, steps per call K, "
             "threads: whatever ran), and each framework out of the box (eager, its own optimiser, one step per "
             "call), per task. A configuration that was not run cannot win: the figures are only as wide as the "
             "runs in this folder.")
    doc.table(pd.DataFrame(rows))
    pairs = []
    for r in timed:
        if r["mode"] == "eager":
            continue
        eager = [e for e in timed if e["task"] == r["task"] and e["backend"] == r["backend"] and e["mode"] == "eager"
                 and optimizer_of(e) == optimizer_of(r) and e.get("steps_per_call", 1) == r.get("steps_per_call", 1)
                 and e["config"].get("threads") == r["config"].get("threads")]
        if eager:
            e = min(eager, key=lambda x: x["median_step_s"])
            n = break_even_steps(r, e)
            pairs.append({"task": r["task"], "compiled run": f"{config_label(r)} seed {r['seed']}",
                          "compile": fmt_time(r.get("compile_s")), "step": fmt_time(r["median_step_s"]),
                          "eager step": fmt_time(e["median_step_s"]),
                          "pays back after": "never (not faster)" if not math.isfinite(n) else f"{math.ceil(n):,} steps"})
    if pairs:
        doc.text("Compile cost: how many steps each compiled configuration needs to pay back its compile time "
                 "against the same framework's eager run with the same optimiser, K and threads.")
        doc.table(pd.DataFrame(pairs))


def speed_section(doc: Doc, runs: list[dict], figures: Path) -> None:
    doc.heading(2, "Speed")
    timed = [r for r in runs if timed_ok(r)]
    shared = [r for r in runs if r.get("timing_mode", "exclusive") != "exclusive"]
    if shared:
        doc.text(f"{len(shared)} run(s) were metrics-only (--no-timing: their cores were shared with other cells, "
                 "or their times were not wanted): their times are left out of every comparison below.")
    if not timed:
        doc.text("No run has timed steps." if not shared else "No run was timed alone on its cores or GPU.")
        return
    hosts = by_host(timed)
    if len(hosts) == 1:
        host_speed(doc, timed, figures, "", 3)
        return
    doc.text(f"The timed runs come from {len(hosts)} hosts: each host's figures stand alone, never compared with "
             "another's.")
    for number, (host, host_runs) in enumerate(hosts.items(), start=1):
        env = host_runs[-1].get("environment", {})
        devices = ", ".join(sorted(set(env.get("devices", {}).values())))
        doc.heading(3, f"On {host} ({env.get('cpu', 'unknown CPU')}, {env.get('cpu_count', '?')} cores; {devices})")
        host_speed(doc, host_runs, figures, f"-host{number}", 4)


def host_speed(doc: Doc, timed: list[dict], figures: Path, suffix: str, level: int) -> None:
    """The speed tables and figures of the timed runs of one host (figure names end in ``suffix``)."""
    doc.text("Median and interquartile range of the per-step wall time over the timed steps (warm-up excluded); "
             "compile time is the first call's excess over a steady call; GFLOP/s from the model's FLOP count; "
             "% of floor: the step's own floor over its step time, the floor being the step's matmuls timed alone "
             "at their shapes in that framework plus its optimiser updates' least memory traffic at the copy "
             "bandwidth measured in the same process (dense GANs on a CPU; — where not measured); % of peak "
             "against the best sgemm this machine showed in the run, which these skinny matmuls can never reach; "
             "machine: what other processes took while the steps were timed.")
    busy = [r for r in timed if isinstance(r.get("load"), dict) and r["load"].get("busy")]
    if busy:
        doc.text(f"**{len(busy)} of {len(timed)} timed runs were measured on a busy machine** (other processes took "
                 f"more than {timing.BUSY_OTHERS_CORES:g} cores on average while their steps were timed): their times "
                 "are slower than this machine's own, PyTorch's intra-op threads far more than TensorFlow's, and "
                 "every verdict built on them says so.")
    doc.table(pd.DataFrame([{
        "task": r["task"], "backend": BACKEND_NAMES.get(r["backend"], r["backend"]),
        "mode": MODE_NAMES.get((r["backend"], r["mode"]), r["mode"]), "ran as": r.get("compiled_as", "?"),
        "seed": r["seed"],
        "median step": fmt_time(r["median_step_s"]),
        "IQR": f"{fmt_time(r['p25_step_s'])} – {fmt_time(r['p75_step_s'])}",
        "timed steps": fmt(r["timed_steps"]), "compile": fmt_time(r.get("compile_s")),
        "steps/s": fmt(r.get("steps_per_s"), 3), "samples/s": fmt(round(r.get("samples_per_s", math.nan)))
        if math.isfinite(r.get("samples_per_s", math.nan)) else "—",
        "GFLOP/s": fmt(r.get("gflops_per_s"), 3), "% of floor": pct_of_floor(r), "% of peak": fmt(r.get("pct_of_peak"), 2),
        "optimizer": r["config"].get("optimizer", "?"), "steps/call": r.get("steps_per_call", 1),
        "machine": machine_load(r), "status": r["status"],
    } for r in timed]))
    best_against_out_of_the_box(doc, timed, level)
    first_seed = {}
    for r in timed:
        first_seed.setdefault((r["task"], r["backend"], config_name(r)), r)
    step_values, compile_values = {}, {}
    for (task, backend, mode), r in first_seed.items():
        step_values.setdefault(task, []).append((backend, mode, r["median_step_s"] * 1e3, r["p25_step_s"] * 1e3,
                                                 r["p75_step_s"] * 1e3))
        compile_values.setdefault(task, []).append((backend, mode, r.get("compile_s", math.nan), math.nan, math.nan))
    doc.image(plots.bars(step_values, figures / f"speed-step-time{suffix}.png", "Median step time (bars: IQR)", "ms per step"),
              f"Median training-step time per backend and mode ({colour_key(timed)}; plain compiled, "
              "dotted eager, hatched XLA), error bars from the 25th to the 75th percentile")
    doc.image(plots.bars(compile_values, figures / f"speed-compile-time{suffix}.png", "Compile / first-call time", "seconds"),
              "Compile time: the first call's excess over a steady call (tracing, torch.compile, XLA)")
    rows = [(t, b, m, phase_times(r)) for (t, b, m), r in first_seed.items()]
    if any(times for *_, times in rows):
        doc.image(plots.phase_bars([row for row in rows if row[3]], figures / f"speed-phases{suffix}.png"),
                  "Median time of each phase of a step, measured on extra calls after training")
        if any(not times and first_seed[(t, b, m)].get("suite") == "quick" for t, b, m, times in rows):
            doc.text("The quick suite times the phases of eager modes only: a graph mode's phases need its step "
                     "compiled once more, split at each phase (as long as the step's own compile). "
                     "A run with --task times them in every mode.")
    else:
        doc.text("D/G phase times: not measured (the trainers offer no time_phases).")
    doc.table(pd.DataFrame([{"task": t, "run": config_label(first_seed[(t, b, m)]), "generate(batch)": fmt_time(first_seed[(t, b, m)].get("sample_s")),
                             **{f"{name}": fmt_time(v) for name, v in times.items()}}
                            for (t, b, m, times) in rows]))
