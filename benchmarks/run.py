"""`python -m benchmarks.run`: train the same GANs in PyTorch and TensorFlow, time them, store the results.

The command line: parse and validate the flags, plan the cells (task, backend, mode, loss, seed) before
anything is written, then run them one by one with benchmarks/cell.py, each appending one record to
<out>/runs.jsonl (benchmarks/store.py documents the files). Exit codes: 0 every cell ran (a diverged run is a
result, not a failure), 2 bad input, 130/143 interrupted by SIGINT/SIGTERM (finished runs are kept; --resume
continues).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
from pathlib import Path

from benchmarks import store, tensorboard, timing
from benchmarks.cell import Cell, Interrupted, RunOptions, interrupts_raise, run_cell, stop_if_interrupted
from common import tasks as task_registry
from common.backend import BACKENDS, DEVICES, MODES, DeviceUnavailableError, ModeUnsupportedError, get_backend
from common.data import DataError
from common.spec import LOSSES

# The quick suite (the default): every task with quick_steps (common/tasks.py), both backends, the modes that
# say something; each (backend, mode) runs this fraction of the task's quick steps. TF eager gets a short run
# only: on these small models it is 15-40x slower per step than tf.function (measured below) and its timing
# needs few steps. Measured on this 2-core CPU (2026-11-23, other jobs sharing it) with `--backend both --steps
# 100`: 152 s for all 25 cells, of which ~100 s are fixed costs (imports, torch.compile 4-14 s per new graph,
# tf.function 1-3 s, XLA 2-3.5 s, scoring) and per step: parabola 7.9 ms for the four fast modes together +
# 58 ms TF eager; gmm2 13.3 + 88; ring8 14.6 + 66; grid25 11.7 + 57; mnist 79 + 135 ms. Extrapolated to this
# plan: ~100 s fixed + ~210 s of steps = ~5 min (a loaded machine doubles it; still under 10).
QUICK_MODES = {("torch", "eager"): 1.0, ("torch", "compiled"): 1.0,
               ("tf", "eager"): 0.05, ("tf", "compiled"): 1.0, ("tf", "xla"): 1.0}

EPILOG = """examples:
  python -m benchmarks.run --backend both                 # the quick suite (< 10 min on 2 CPU cores)
  python -m benchmarks.run --backend torch --task parabola --steps 500 --mode eager
  python -m benchmarks.run --backend tf --task mnist --loss wgan-gp --seeds 3 --out results/wgan --resume
"""


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a number > 0")
        return value
    return parse


def non_negative_int(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: an integer >= 0")
    return int(text)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the same MLP GANs in PyTorch and TensorFlow from identical weights and data, time "
                    "every step, score the samples, and append one record per run to OUT/runs.jsonl.")
    parser.add_argument("--backend", default="both", choices=[*BACKENDS, "both"], help="framework(s) to run (default both)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--task", nargs="+", metavar="T", help="task(s) to run (see --list); default: the quick suite")
    what.add_argument("--suite", choices=("quick", "full"), default="quick",
                      help="quick: short runs of every toy task and MNIST; full: every task at its seed's length")
    parser.add_argument("--loss", choices=LOSSES, help="override the task's loss (applies that loss's defaults)")
    parser.add_argument("--steps", type=positive(int), help="training steps per run (default: the task's or the suite's)")
    parser.add_argument("--batch-size", type=positive(int), help="batch size (default: the task's)")
    parser.add_argument("--lr", type=positive(float), help="learning rate of both networks (default: the task's)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=positive(int), default=1, help="number of seeds: seed, seed+1, ... (default 1)")
    parser.add_argument("--mode", choices=[*MODES, "all"],
                        help="eager, compiled (torch.compile / tf.function), xla (TF only) or all; "
                             "default: the quick suite's plan, else all")
    parser.add_argument("--optimizer", choices=("spec", "native"), help="spec: identical formulas in both "
                        "backends (default); native: torch.optim / keras.optimizers as users run them")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=positive(int), help="intra-op threads for both backends (default: framework's)")
    parser.add_argument("--steps-per-call", type=positive(int), default=1, metavar="K",
                        help="steps per trainer call (train_steps); per-step time = call time / K")
    parser.add_argument("--data-dir", help="folder with the task's data (MNIST files, a face folder)")
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--resume", action="store_true", help="skip cells already in OUT/runs.jsonl with the same "
                        "config; continue unfinished ones from their checkpoint")
    parser.add_argument("--checkpoint-every", type=positive(int), metavar="N", help="save a checkpoint every N steps")
    parser.add_argument("--warmup", type=non_negative_int, help="untimed warm-up steps (default max(5, 2%% of steps))")
    parser.add_argument("--list", action="store_true", help="print the tasks and exit")
    parser.add_argument("--sweep", choices=("batch", "width"), help="instead of training runs: time step cost against "
                        "batch size or layer width (task mnist-small unless --task names one) into OUT/sweep.csv")
    parser.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    parser.add_argument("--no-floor", action="store_true", help="with --backend both, skip the chaos floor: the "
                        "extra run per task and seed of the first backend from initial weights one ulp away")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write each run's losses, D outputs, step times "
                        "and sample grids as TensorBoard event files under DIR, one folder per run")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- planning and validation


def plan(args, backends: dict) -> tuple[list[Cell], dict, list[str], str]:
    """Every cell to run, the data per task, the reasons cells were skipped, and the suite name.
    Raises ValueError/DataError/DeviceUnavailableError on any bad input; writes nothing."""
    if args.task:
        suite, names = "custom", [task_registry.get_task(name).name for name in args.task]
    elif args.suite == "full":
        suite, names = "full", list(task_registry.TASKS)
    else:
        suite, names = "quick", list(task_registry.QUICK_SUITE)
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        raise DataError(f"--data-dir {args.data_dir} does not exist; allowed: an existing folder (or mnist.npz)")
    for name, module in backends.items():
        resolved = module.device_name(args.device)
        if args.device == "cuda" and not resolved.startswith("cuda"):
            raise DeviceUnavailableError(f"--device cuda: {name} found no GPU (it resolves to {resolved!r}); "
                                         "allowed here: auto, cpu")
    cells, data, skipped = [], {}, []
    for name in names:
        task = task_registry.get_task(name)
        data[name] = task.load(data_dir=args.data_dir)
        for (backend, mode), fraction in mode_plan(args, suite, backends, skipped):
            steps = args.steps or (max(1, round(task.quick_steps * fraction)) if suite == "quick" else None)
            spec, steps = task_registry.configure(
                task, data[name].n_train, loss=args.loss, steps=steps, batch_size=args.batch_size, lr=args.lr,
                optimizer_impl=args.optimizer)
            if data[name].n_train is not None and spec.batch_size > data[name].n_train:
                raise DataError(f"batch size {spec.batch_size} is larger than the {name} data set "
                                f"({data[name].n_train} examples); allowed: 1..{data[name].n_train}")
            cells += [Cell(task, backend, mode, spec, steps, args.seed + k) for k in range(args.seeds)]
    if len(backends) > 1 and not args.no_floor:
        cells += floor_cells(cells)
    return cells, data, skipped, suite


def floor_cells(cells: list[Cell]) -> list[Cell]:
    """The chaos floor: per task and seed, the first planned cell of the first backend once more, from initial
    weights one ulp away (common.init.nudge_ulp), same data and noise. The report sets the cross-framework
    same-seed drift against the drift of this same-framework pair (benchmarks/report/divergence.py)."""
    first = {}
    for cell in cells:
        if cell.backend == cells[0].backend:
            first.setdefault((cell.task.name, cell.seed), cell)
    return [dataclasses.replace(cell, init="seed+ulp") for cell in first.values()]


def mode_plan(args, suite: str, backends: dict, skipped: list[str]) -> list[tuple[tuple[str, str], float]]:
    """(backend, mode) pairs with their share of the steps; unsupported pairs skipped or refused."""
    pairs = []
    for name, module in backends.items():
        if args.mode is None and suite == "quick":
            modes = [m for (b, m) in QUICK_MODES if b == name]
        else:
            modes = list(MODES) if args.mode in (None, "all") else [args.mode]
        for mode in modes:
            if mode in module.MODES:
                pairs.append(((name, mode), QUICK_MODES.get((name, mode), 1.0) if args.mode is None else 1.0))
            elif args.mode in (None, "all"):
                reason = f"skipped {name}+{mode}: {name} supports {', '.join(module.MODES)}"
                if reason not in skipped:
                    skipped.append(reason)
            else:
                raise ValueError(f"mode {mode!r} is invalid for backend {name!r}; allowed: {', '.join(module.MODES)}")
    return pairs


def cells_to_skip(args, cells: list[Cell]) -> set[tuple]:
    """Cells already recorded in OUT/runs.jsonl with the same config (only under --resume)."""
    records = store.read_records(args.out)  # read always: a foreign file is refused before anything runs
    if not args.resume:
        return set()
    done = {store.cell_of(r): r["config"] for r in records}
    skip = set()
    for cell in cells:
        if cell.key in done and done[cell.key] == cell.config:
            skip.add(cell.key)
        elif cell.key in done:
            print(f"resume: {cell.id} was recorded with {done[cell.key]}, now {cell.config}: running it again")
    return skip


# ----------------------------------------------------------------------------- the command


def print_summary(records: list[dict], out: str) -> None:
    import pandas as pd

    rows = [{"task": r["task"], "backend": r["backend"], "mode": r["mode"], "loss": r["loss"], "seed": r["seed"],
             "init": r.get("init", "seed"),
             "status": r["status"], "steps": r["steps_done"], "steps/s": round(r["steps_per_s"], 1),
             "IQR %": round(100 * (r["p75_step_s"] - r["p25_step_s"]) / r["median_step_s"], 1),
             "compile s": round(r["compile_s"], 2), "GFLOP/s": round(r["gflops_per_s"], 2),
             "% peak": round(r["pct_of_peak"], 1), "flags": ",".join(r["flags"])} for r in records]
    if rows:
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"results: {Path(out) / store.RUNS_FILE} and {Path(out) / store.CSV_FILE}")


def build_report(out: str) -> None:
    import importlib.util

    if importlib.util.find_spec("benchmarks.report") is None:
        return
    from benchmarks import report

    print(f"report: {report.build_report(out)}")


def main(argv=None) -> int:
    args = parse_args(argv)
    args.command = sys.argv[1:] if argv is None else list(argv)
    if args.list:
        import pandas as pd

        print(pd.DataFrame(task_registry.describe_tasks()).to_string(index=False))
        return 0
    if args.sweep:
        return run_sweep(args)
    old_handlers = interrupts_raise()
    try:
        return run_all(args)
    except (Interrupted, KeyboardInterrupt) as e:
        print(f"\ninterrupted: finished runs are kept in {Path(args.out) / store.RUNS_FILE}; the run in progress was "
              "not recorded. Continue with the same command plus --resume.", file=sys.stderr)
        return e.exit_code if isinstance(e, Interrupted) else 130
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def run_sweep(args) -> int:
    """--sweep: the scaling sweep of benchmarks/sweep.py, driven by this command's flags."""
    from benchmarks import sweep

    backends = ("torch", "tf") if args.backend == "both" else (args.backend,)
    modes = None if args.mode in (None, "all") else [args.mode]
    return sweep.sweep_and_print(args.sweep, backends, modes, args.threads, args.out,
                                 task=args.task[0] if args.task else "mnist-small")


def run_all(args) -> int:
    try:  # validation: nothing is written before every input is known good
        for name in args.task or []:  # a typo is refused before the frameworks take seconds to import
            task_registry.get_task(name)
        names = list(BACKENDS) if args.backend == "both" else [args.backend]
        backends = {name: get_backend(name) for name in names}
        configured = {name: module.configure(threads=args.threads, deterministic=True) for name, module in backends.items()}
        cells, data, skipped, suite = plan(args, backends)
        store.check_out_dir(args.out)
        if args.tensorboard is not None:
            if not tensorboard.available():
                raise ValueError(f"--tensorboard needs the tensorboard package: {tensorboard.INSTALL_HINT}")
            store.check_out_dir(args.tensorboard)
        skip = cells_to_skip(args, cells)
    except (ValueError, DeviceUnavailableError) as e:  # DataError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    for reason in skipped:
        print(reason)
    for name, task_data in data.items():
        print(f"{name}: {task_data.info.source}" + (f"\n  notice: {task_data.info.notice}" if task_data.info.notice else ""))
    machine = timing.machine_peak(backends.values())
    env = timing.environment(backends.values(), configured, args.device, args.command)
    todo = [cell for cell in cells if cell.key not in skip]
    options = RunOptions(out=args.out, suite=suite, device=args.device, steps_per_call=args.steps_per_call,
                         warmup=args.warmup, checkpoint_every=args.checkpoint_every, resume=args.resume)
    print(f"{len(todo)} runs to do ({len(cells) - len(todo)} already in {args.out}); "
          f"sgemm peak {machine['peak_gflops']:.1f} GFLOP/s")
    finished = []
    for cell in todo:
        stop_if_interrupted()
        try:
            record = run_cell(cell, data[cell.task.name], options, machine, env).to_json()
        except ModeUnsupportedError as e:
            print(f"skipped {cell.id}: {e}")
            continue
        finished.append(record)
        if args.tensorboard is not None:
            tensorboard.write_run(args.tensorboard, record, store.read_history(args.out, record["history"]))
    print_summary(finished, args.out)
    if args.tensorboard is not None:
        print(f"tensorboard: tensorboard --logdir {args.tensorboard}")
    if not args.no_report:
        build_report(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
