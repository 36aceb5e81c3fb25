"""The main job, written once for the command line (benchmarks/run.py) and the Python entry point
(benchmarks/compare.py): a Request validated into a Plan (nothing written before every input is known good), then
the output folder taken (a real write probe and an OS lock: benchmarks/store.py's writer), the plan previewed with
an estimated time, and the cells run with benchmarks/executor.py (one by one here, or as Ray tasks on a cluster),
this process appending one record per cell to <out>/runs.jsonl; then the summary and the report.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from benchmarks import cli, executor, plan, report, store, sweep, tensorboard, timing
from benchmarks.cell import stop_if_interrupted


def run(request: plan.Request) -> tuple[int, list[dict]]:
    """Plan (every input checked; nothing written), then the cells as the output folder's one writer: the exit code
    and the records of the runs finished now (as runs.jsonl holds them). BadInput, store.Busy, OSError and
    Interrupted as benchmarks/cli.py maps them."""
    cluster = None
    try:
        with cli.checking_input(OSError, *cli.INPUT_ERRORS):  # OSError here: an input that cannot be read
            the_plan = plan.make_plan(request)
            if request.executor == "ray":
                cluster = executor.connect(request.ray_address, request.device)
        with store.writer(request.out):  # the folder is created, probed with a real file and locked for this run
            return run_cells(the_plan, cluster)
    finally:
        if cluster is not None:
            cluster.close()


def run_cells(the_plan: plan.Plan, cluster=None) -> tuple[int, list[dict]]:
    """The plan's cells, as the folder's one writer: repair and sweep first, then the preview, each cell, the
    summary and the report."""
    request, out, todo = the_plan.request, the_plan.request.out, list(the_plan.todo)
    repaired = store.repair_csv(out)
    if repaired:
        print(f"repaired: {repaired}")
    if request.resume:
        for path in store.sweep_leftovers(out):
            print(f"resume: removed {path}, left by a killed run")
    for reason in the_plan.skipped:
        print(reason)
    for name, task_data in the_plan.data.items():
        print(f"{name}: {task_data.info.source}" + (f"\n  notice: {task_data.info.notice}" if task_data.info.notice else ""))
    options = the_plan.options
    done = len(the_plan.cells) - len(todo)
    if cluster is None:
        exclusive = options.timing_mode == "exclusive"
        machine = timing.machine_peak(the_plan.backends.values()) if exclusive else executor.NO_PEAK
        env = timing.environment(the_plan.backends.values(), the_plan.configured, request.device, request.command)
        peak = f"sgemm peak {machine['peak_gflops']:.1f} GFLOP/s" if exclusive else "metrics only"
        print(f"{len(todo)} runs to do ({done} already in {out}); {peak}")
        print_preview(the_plan, machine["peak_gflops"])
        finished, failed = executor.run_local(todo, the_plan.data, options, machine, env)
    else:  # each worker measures its own node's peak and environment
        options = dataclasses.replace(options, device=cluster.device)
        print(f"{len(todo)} runs to do ({done} already in {out})")
        print_preview(the_plan, executor.NO_PEAK["peak_gflops"])
        finished, failed = executor.run_ray(todo, the_plan.data, options, cluster, list(request.command),
                                            request.retries)
    if request.tensorboard is not None:
        for line in tensorboard.write_runs(request.tensorboard, out, {cell.key for cell in the_plan.cells}):
            print(line)
    stop_if_interrupted()
    print_summary(finished, out)
    for line in failed:
        print(line)
    if failed:
        print(f"{len(failed)} of {len(todo)} cells failed and are not recorded: the same command plus --resume runs "
              "them again", file=sys.stderr)
    if request.tensorboard is not None:
        print(f"tensorboard: tensorboard --logdir {request.tensorboard}")
    if request.report:
        build_report(out)
        stop_if_interrupted()  # Ctrl-C in a plotting callback is swallowed there: it still ends the command
    return (cli.EXIT_CELLS_FAILED if failed else cli.EXIT_OK), finished


def print_preview(the_plan: plan.Plan, peak_gflops: float) -> None:
    lines = plan.preview(the_plan, peak_gflops, probe=lambda cell: eager_step_seconds(the_plan, cell))
    for line in lines[:-1]:
        print(line)
    last = lines[-1]
    print(last, file=sys.stderr if last.startswith("WARNING") else sys.stdout, flush=True)


def eager_step_seconds(the_plan: plan.Plan, cell) -> float:
    """One measured step of the cell's model, eager (PyTorch's where the plan has it: no compile to wait for),
    on the task's real data: the preview's price of a step."""
    backend = "torch" if "torch" in the_plan.backends else cell.backend
    point = sweep.time_point(the_plan.backends[backend], cell.task, cell.spec, the_plan.data[cell.task.name].source,
                             "eager", steps=4, warmup=1, device=the_plan.request.device)
    return point["p25_s"]  # on a busy machine a step now and then takes many times its own time


def print_summary(records: list[dict], out: str) -> None:
    import pandas as pd

    rows = [{"task": r["task"], "backend": r["backend"], "mode": r["mode"], "loss": r["loss"], "seed": r["seed"],
             "init": r.get("init", "seed"),
             "status": r["status"], "steps": r["steps_done"], "steps/s": round(r["steps_per_s"], 1),
             "IQR %": round(100 * (r["p75_step_s"] - r["p25_step_s"]) / r["median_step_s"], 1),
             "compile s": round(r["compile_s"], 2), "GFLOP/s": round(r["gflops_per_s"], 2),
             "% floor": round(r["floor"]["pct_of_floor"], 1) if r.get("floor") else "—",
             "% peak": round(r["pct_of_peak"], 1), "flags": ",".join(r["flags"])} for r in records]
    if rows:
        print(pd.DataFrame(rows).to_string(index=False))
    if (Path(out) / store.RUNS_FILE).exists():
        print(f"results: {Path(out) / store.RUNS_FILE} and {Path(out) / store.CSV_FILE}")
    else:
        print(f"nothing recorded in {out}")


def build_report(out: str) -> None:
    if not store.read_records(out):
        print(f"report: not built, {out} holds no runs")
        return
    print(f"report: {report.build_report(out)}")
