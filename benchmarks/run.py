"""`python -m benchmarks.run`: train the same GANs in PyTorch and TensorFlow, time them, store the results.

The command line: parse and validate the flags, plan the cells (task, backend, mode, loss, seed) and check every
number against what it will be used for before anything is written, then take the output folder (a real write
probe and an OS lock: benchmarks/store.py's writer) and run the cells with benchmarks/executor.py (one by one here,
or as Ray tasks on a cluster), this process appending one record per cell to <out>/runs.jsonl
(benchmarks/store.py documents the files).

Exit codes (README "Guarantees"):
    0    every cell ran (a diverged run is a result, not a failure)
    2    bad input: one "error: ..." line, nothing written
    74   a write failed during the run (full disk, folder made read-only...): one line; finished runs are kept
    1    --executor ray: some cells failed after their retries (one line each); the others are recorded and
         --resume runs the failed ones again
    75   another process is writing to the output folder: nothing written
    130  interrupted by SIGINT, 143 by SIGTERM: finished runs are kept; --resume continues

Where the cells run (this process, or Ray tasks on a cluster) is benchmarks/executor.py's.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before the libraries import: a Ctrl-C there is one line and 130
    from benchmarks import exit_on_early_interrupt

    exit_on_early_interrupt()

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path

from benchmarks import executor, store, tensorboard, timing
from benchmarks.cell import Cell, Interrupted, RunOptions, checkpoint_of, interrupts_raising, stop_if_interrupted
from common import metrics
from common import tasks as task_registry
from common.backend import BACKENDS, DEVICES, MODES, DeviceUnavailableError, get_backend
from common.data import DataError
from common.spec import DTYPES, IMPLEMENTATIONS, LOSSES, LR_RANGE
from common.twin import TWINS

EXIT_CELLS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_ERROR = 74  # EX_IOERR of sysexits.h
EXIT_BUSY = 75  # EX_TEMPFAIL of sysexits.h: try again once the other run ended
INT64_MAX = 2**63 - 1  # step counts, seeds and steps are stored as int64 (histories, pandas)
# runs.jsonl is read and rewritten whole at every append (atomic replace): 10^5 runs of ~5 kB is ~0.5 GB per
# append. A plan beyond that belongs in several output folders.
MAX_RUNS = 100_000
# What one step costs in memory besides the model: RunLog keeps 7 Python values per step (~32 B each with the
# list slot) and the history holds them again as arrays (49 B): 250 B a step, rounded up.
HISTORY_BYTES_PER_STEP = 250

# The quick suite (the default): every task with quick_steps (common/tasks.py), both backends, the configurations
# (backend, mode, optimiser implementation) that say something; each runs this fraction of the task's quick steps.
# The full-length cells are the graph modes: the same-seed pairs the report compares across frameworks, and the
# chaos floor's twin (the first cell of the first backend: torch.compile, whose graph the twin reuses). Eager cells
# are there for their speed, which needs few steps: TF eager is 15-40x slower per step than tf.function on these
# small models. The two "native" eager cells are each framework out of the box (eager, its own optimiser, one step
# per call): the report sets them beside each framework's fastest configuration.
# Measured on this 2-core CPU (2026-12-02, idle, back to back): this plan 8 min 2 s; the plan of 2026-11-23 (eager
# torch at full length and the floor's twin in it, phase times in graph modes) 14 min 51 s (each cell's wall time:
# issue 10's note). dcgan-mnist (TF's DCGAN tutorial) runs 20 steps at batch 64 (common/tasks.py: the tutorial's
# 256 costs 121 GFLOP a step): its cost is torch.compile's 13-57 s more than steps.
QUICK_PLAN = {("torch", "compiled", "spec"): 1.0, ("torch", "eager", "spec"): 0.25,
              ("tf", "eager", "spec"): 0.05, ("tf", "compiled", "spec"): 1.0, ("tf", "xla", "spec"): 1.0,
              ("torch", "eager", "native"): 0.25, ("tf", "eager", "native"): 0.05}

EPILOG = """examples:
  python -m benchmarks.run --backend both                 # the quick suite (< 10 min on 2 CPU cores)
  python -m benchmarks.run --backend torch --task parabola --steps 500 --mode eager
  python -m benchmarks.run --backend tf --task mnist --loss wgan-gp --seeds 3 --out results/wgan --resume
  python -m benchmarks.run --backend both --task parabola gmm2 --seeds 4 --executor ray --ray-address HEAD:6379
"""


def integer(low: int, high: int = INT64_MAX, what: str = ""):
    """An argparse type: an integer in low..high (``what`` says where ``high`` comes from)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: an integer in {low}..{high}{what}")
        return value
    return parse


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a finite number > 0")
    return value


def learning_rate(text):
    """A positive float the float32 optimisers can hold as a normal number (common/spec.py LR_RANGE)."""
    value = positive_float(text)
    if not LR_RANGE[0] <= value <= LR_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a number in {LR_RANGE[0]:.3g}.."
                                         f"{LR_RANGE[1]:.3g} (float32's normal range)")
    return value


CPUS = os.cpu_count() or 1


class Parser(argparse.ArgumentParser):
    """argparse with its errors as the suite's: one "error: ..." line, exit code 2 (not usage + error)."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(
        prog="python -m benchmarks.run", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the same GANs in PyTorch and TensorFlow from identical weights and data, time "
                    "every step, score the samples, and append one record per run to OUT/runs.jsonl.")
    parser.add_argument("--backend", default="both", choices=[*BACKENDS, "both"], help="framework(s) to run (default both)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--task", nargs="+", metavar="T", help="task(s) to run, each once (see --list); default: the quick suite")
    what.add_argument("--suite", choices=("quick", "full"),
                      help="quick (the default): short runs of every toy task and MNIST; full: every task at its "
                           "seed's length")
    parser.add_argument("--loss", choices=LOSSES, help="override the task's loss (applies that loss's defaults)")
    parser.add_argument("--steps", type=integer(1), help="training steps per run (default: the task's or the suite's)")
    parser.add_argument("--batch-size", type=integer(1), help="batch size (default: the task's)")
    parser.add_argument("--lr", type=learning_rate, help="learning rate of both networks (default: the task's)")
    parser.add_argument("--seed", type=integer(0), default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=integer(1, MAX_RUNS), default=1, help="number of seeds: seed, seed+1, ... (default 1)")
    parser.add_argument("--mode", choices=[*MODES, "all"],
                        help="eager, compiled (torch.compile / tf.function), xla (TF only) or all; "
                             "default: the quick suite's plan, else all")
    parser.add_argument("--optimizer", nargs="+", choices=IMPLEMENTATIONS, metavar="IMPL",
                        help="one or more of: spec (identical formulas in both backends; the default), native "
                             "(torch.optim / keras.optimizers as users run them), native-foreach, native-fused "
                             "(torch.optim's foreach=True / fused=True; PyTorch only)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="floating-point type of weights, optimiser state and inputs, in both frameworks "
                             "(default float32; float64 is the strong parity check, and slower)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=integer(1, CPUS, " (this machine's logical CPUs)"),
                        help="intra-op threads for both backends (default: framework's)")
    parser.add_argument("--steps-per-call", type=integer(1), nargs="+", default=[1], metavar="K",
                        help="steps per trainer call (train_steps), one or more values; per-step time = call time / K")
    parser.add_argument("--pack", type=integer(1), nargs="+", default=[1], metavar="M",
                        help="PacGAN packing: D judges packs of M examples (default 1, the plain GAN); several values "
                             "run one cell each (common/spec.py GAN.pack)")
    parser.add_argument("--data-dir", help="folder with the task's data (MNIST files, a face folder)")
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--resume", action="store_true", help="skip cells already in OUT/runs.jsonl with the same "
                        "config; continue unfinished ones from their checkpoint")
    parser.add_argument("--checkpoint-every", type=integer(1), metavar="N", help="save a checkpoint every N steps")
    parser.add_argument("--warmup", type=integer(0), help="untimed warm-up steps (default max(5, 2%% of steps))")
    parser.add_argument("--list", action="store_true", help="print the tasks and exit")
    parser.add_argument("--sweep", choices=("batch", "width"), help="instead of training runs: time step cost against "
                        "batch size or layer width (task mnist-small unless --task names one) into OUT/sweep.csv")
    parser.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    parser.add_argument("--no-floor", action="store_true", help="with --backend both, skip the chaos floor: the "
                        "three extra runs per task and seed of the first backend, each with its batches in another order")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write each run's losses, D outputs, step times "
                        "and sample grids as TensorBoard event files under DIR, one folder per run")
    parser.add_argument("--executor", choices=executor.EXECUTORS, default="local",
                        help="local (the default): the cells one after another in this process; ray: as Ray tasks "
                             "on a cluster (needs the cluster extra), this process storing every result")
    parser.add_argument("--ray-address", metavar="ADDR", help="--executor ray: the cluster to join (what `ray start "
                        "--head` printed; default $RAY_ADDRESS, else a local Ray instance started for the run)")
    parser.add_argument("--no-timing", action="store_true",
                        help="metrics only: the runs' step times are labelled as not comparable and left out of the "
                             "report's speed sections; with --executor ray, cells share nodes (packed by --threads)")
    parser.add_argument("--retries", type=integer(0, 100), default=executor.RETRIES,
                        help=f"--executor ray: times a cell is run again when its worker or node died (default "
                             f"{executor.RETRIES})")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- planning and validation


def task_names(args) -> tuple[str, list[str]]:
    """The suite's name and its tasks; ValueError for an unknown or repeated task (a typo is refused before the
    frameworks take seconds to import; a repeat would train the same cells twice)."""
    if not args.task:
        return ("full", list(task_registry.TASKS)) if args.suite == "full" else ("quick", list(task_registry.QUICK_SUITE))
    names = [task_registry.get_task(name).name for name in args.task]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--task names {', '.join(repeated)} more than once; allowed: each task once")
    return "custom", names


def plan(args, backends: dict) -> tuple[list[Cell], dict, list[str], str]:
    """Every cell to run, the data per task, the reasons cells were skipped, and the suite name.
    Raises ValueError/DataError/DeviceUnavailableError on any bad input; writes nothing."""
    suite, names = task_names(args)
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        raise DataError(f"--data-dir {args.data_dir} does not exist; allowed: an existing folder (or mnist.npz)")
    for name, module in backends.items():
        if getattr(args, "executor", "local") != "local":
            break  # the cluster's GPUs count, not this machine's (executor.connect checks them)
        resolved = module.device_name(args.device)
        if args.device == "cuda" and not resolved.startswith("cuda"):
            raise DeviceUnavailableError(f"--device cuda: {name} found no GPU (it resolves to {resolved!r}); "
                                         "allowed here: auto, cpu")
    skipped = []
    configs = config_plan(args, suite, backends, skipped)
    runs = len(names) * len(configs) * args.seeds * len(args.steps_per_call) * len(args.pack)
    if runs > MAX_RUNS:
        raise ValueError(f"this plan has {runs} runs; allowed: at most {MAX_RUNS} per output folder (fewer --seeds)")
    if args.seed + args.seeds - 1 > INT64_MAX:
        raise ValueError(f"--seed {args.seed} with --seeds {args.seeds} goes past the largest seed {INT64_MAX}")
    cells, data = [], {}
    for name in names:
        task = task_registry.get_task(name)
        data[name] = task.load(data_dir=args.data_dir)
        check_data(name, data[name])
        for (backend, mode, implementation), fraction in configs:
            if suite == "quick" and args.mode is None and (backend, mode) in task.quick_skip:
                _skip(skipped, f"skipped {name} {backend}+{mode} in the quick suite (common/tasks.py: too slow here)")
                continue
            steps = args.steps or (max(1, round(task.quick_steps * fraction)) if suite == "quick" else None)
            batch_size = args.batch_size or (task.quick_batch_size if suite == "quick" else None)
            for pack in args.pack:
                spec, steps_of = task_registry.configure(
                    task, data[name].n_train, loss=args.loss, steps=steps, batch_size=batch_size, lr=args.lr,
                    optimizer_impl=implementation, dtype=args.dtype, pack=pack)
                if data[name].n_train is not None and spec.examples_per_batch > data[name].n_train:
                    packed = f" x pack {spec.pack}" if spec.pack > 1 else ""
                    raise DataError(f"batch size {spec.batch_size}{packed} is larger than the {name} data set "
                                    f"({data[name].n_train} examples); allowed: 1..{data[name].n_train}")
                cells += [Cell(task, backend, mode, spec, steps_of, args.seed + k, steps_per_call=k_steps,
                               threads=args.threads) for k_steps in args.steps_per_call for k in range(args.seeds)]
    if args.data_dir is not None and all(task_data.n_train is None for task_data in data.values()):
        readers = [t.name for t in task_registry.TASKS.values() if t.data in task_registry.DATA_SETS]
        raise ValueError(f"--data-dir is read by none of {', '.join(names)} (they sample known distributions); "
                         f"allowed: with a task that trains on a data set ({', '.join(readers)})")
    if len(backends) > 1 and not args.no_floor:
        cells += floor_cells(cells)
    return cells, data, skipped, suite


def floor_cells(cells: list[Cell]) -> list[Cell]:
    """The chaos floor's twins: per task and seed, the first planned cell of the first backend three times more, each
    with every batch in another order (common/stream.py): the same training with other summation orders. The
    report sets the cross-framework same-seed drift against the band of these same-framework drifts
    (benchmarks/report/divergence.py)."""
    first = {}
    for cell in cells:
        if cell.backend == cells[0].backend:
            first.setdefault((cell.task.name, cell.seed), cell)
    return [dataclasses.replace(cell, init=init) for init in TWINS for cell in first.values()]


def check_data(name: str, task_data) -> None:
    """Enough real examples to judge the samples against: found now, not after training (a face folder of one
    image used to train fine and crash in scoring)."""
    n = len(task_data.reference)
    if n < metrics.MIN_SAMPLES:
        raise DataError(f"{name}: {n} real example(s) to judge the samples against ({task_data.info.source}); "
                        f"its metrics need at least {metrics.MIN_SAMPLES}")


def config_plan(args, suite: str, backends: dict, skipped: list[str]) -> list[tuple[tuple[str, str, str], float]]:
    """(backend, mode, optimiser implementation) with its share of the steps; what a backend does not run is
    skipped with a reason where the flags left it open (or named both backends), refused where they asked it."""
    plan_ = []
    if args.mode is None and args.optimizer is None and suite == "quick":
        return [(config, fraction) for config, fraction in QUICK_PLAN.items() if config[0] in backends]
    modes = list(MODES) if args.mode in (None, "all") else [args.mode]
    for name, module in backends.items():
        for mode in modes:
            if mode not in module.MODES:
                if args.mode not in (None, "all"):
                    raise ValueError(f"mode {mode!r} is invalid for backend {name!r}; allowed: {', '.join(module.MODES)}")
                _skip(skipped, f"skipped {name}+{mode}: {name} supports {', '.join(module.MODES)}")
                continue
            for implementation in args.optimizer or ["spec"]:
                if implementation not in module.OPTIMIZER_IMPLEMENTATIONS:
                    allowed = ", ".join(module.OPTIMIZER_IMPLEMENTATIONS)
                    if len(backends) == 1:
                        raise ValueError(f"optimizer {implementation!r} is invalid for backend {name!r}; allowed: {allowed}")
                    _skip(skipped, f"skipped {name} with optimizer {implementation}: {name} runs {allowed}")
                    continue
                fraction = QUICK_PLAN.get((name, mode, implementation), 1.0) if args.mode is None else 1.0
                plan_.append(((name, mode, implementation), fraction))
    return plan_


def _skip(skipped: list[str], reason: str) -> None:
    if reason not in skipped:
        skipped.append(reason)


def physical_memory() -> int:
    """Bytes of RAM in this machine: the bound no batch or history can pass (what is free changes by the second)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def step_bytes(spec, k: int) -> int:
    """A lower bound of the memory one trainer call takes, in float32: its inputs, stacked for K steps (d_steps real
    batches and d_steps + 1 noise batches a step), and one forward pass of G and D on a batch (every layer's output
    is kept for the backward pass)."""
    batch, rows, d = spec.batch_size, spec.examples_per_batch, spec.updates.d_steps  # rows: batch packs of examples
    inputs = k * rows * (d * spec.data_dim + (d + 1) * spec.latent_dim)
    activations = rows * layer_outputs(spec.generator_network) + batch * layer_outputs(spec.discriminator_network)
    return 4 * (inputs + activations)


def layer_outputs(network) -> int:
    """Floats one example flows through: the input and every weighted layer's output (an MLP: sum of its sizes)."""
    from common.spec import Conv2D, ConvTranspose2D, Dense

    return math.prod(network.input_shape) + sum(math.prod(info.out_shape) for info in network.layer_info
                                                if isinstance(info.layer, (Dense, Conv2D, ConvTranspose2D)))


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def check_memory(spec, k: int, where: str) -> None:
    """ValueError unless one trainer call of ``spec`` (K steps) can fit in this machine's memory (step_bytes)."""
    memory, need = physical_memory(), step_bytes(spec, k)
    if need > memory:
        raise ValueError(f"batch size {spec.batch_size}{f' x {k} steps per call' if k > 1 else ''}: one call of "
                         f"{where} needs at least {gigabytes(need)}, more than this machine's {gigabytes(memory)}; "
                         f"allowed: {what_fits(spec, k, memory)}")


def what_fits(spec, k: int, memory: int) -> str:
    """The hint of check_memory: the largest batch that fits (step_bytes grows in proportion to it); where not even
    a batch of 1 does, the largest --pack, else --steps-per-call, with a batch of 1 (it used to say "a batch up to
    0")."""
    one = spec.replace(batch_size=1)
    if step_bytes(one, k) <= memory:
        return f"a batch up to {memory // step_bytes(one, k)}"
    if spec.pack > 1 and step_bytes(one.with_pack(1), k) <= memory:
        return f"--pack up to {largest(lambda p: step_bytes(one.with_pack(p), k) <= memory, spec.pack)} with " \
               f"--batch-size 1 (a batch of 1 at pack {spec.pack} needs {gigabytes(step_bytes(one, k))})"
    unpacked = one.with_pack(1) if spec.pack > 1 else one
    if k > 1 and step_bytes(unpacked, 1) <= memory:
        return f"--steps-per-call up to {largest(lambda n: step_bytes(unpacked, n) <= memory, k)} with --batch-size 1" \
               + (" and --pack 1" if spec.pack > 1 else "")
    return f"none: even a batch of 1 needs {gigabytes(step_bytes(unpacked, 1))} (this GAN does not fit this machine)"


def largest(fits, high: int) -> int:
    """The largest n in 1..high with fits(n), given fits(1) and that fits holds up to some n and not beyond."""
    low = 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def check_numbers(args, cells: list[Cell]) -> None:
    """Every number against what it will be used for, before anything runs: the warm-up and --steps-per-call
    against the steps (at least one timed call), --checkpoint-every against the steps (at least one checkpoint),
    the batch and the step count against this machine's memory. ValueError names the flag and what is allowed."""
    memory = physical_memory()
    for cell in {(c.task.name, c.backend, c.mode, c.steps_per_call): c for c in cells}.values():  # seeds share them
        k = cell.steps_per_call
        if k > cell.steps:
            raise ValueError(f"--steps-per-call {k} is more than the {cell.steps} steps of {cell.id}; "
                             f"allowed: 1..{cell.steps}")
        warmup = args.warmup if args.warmup is not None else timing.default_warmup(cell.steps)
        if -(-warmup // k) * k >= cell.steps:  # the first call that starts after the warm-up
            given = f"--warmup {warmup}" if args.warmup is not None else f"the default warm-up of {warmup} steps"
            calls = f" in calls of {k}" if k > 1 else ""
            raise ValueError(f"{given} leaves no timed step in {cell.id} ({cell.steps} steps{calls}); "
                             f"allowed: --warmup 0..{k * ((cell.steps - 1) // k)}")
        check_memory(cell.spec, k, cell.id)
        if cell.steps * HISTORY_BYTES_PER_STEP > memory:
            raise ValueError(f"{cell.steps} steps: the history of {cell.id} alone needs "
                             f"{gigabytes(cell.steps * HISTORY_BYTES_PER_STEP)}, more than this machine's "
                             f"{gigabytes(memory)}; allowed: --steps up to {memory // HISTORY_BYTES_PER_STEP}")
    longest = max(c.steps for c in cells)
    if args.checkpoint_every is not None and args.checkpoint_every >= longest:
        raise ValueError(f"--checkpoint-every {args.checkpoint_every} would save no checkpoint: no run has more than "
                         f"{longest} steps (a checkpoint is saved before the last step); allowed: 1..{longest - 1}"
                         if longest > 1 else "--checkpoint-every: runs of 1 step are never checkpointed")


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


def check_checkpoints(args, todo: list[Cell]) -> None:
    """Under --resume, every checkpoint a cell would continue from is read and checked now (ValueError naming a
    damaged or unfitting one), so no run starts before all of them are known good."""
    if not args.resume:
        return
    for cell in todo:
        if checkpoint_of(cell, args.out) is None and store.checkpoint_path(args.out, cell.id).exists():
            print(f"resume: {store.checkpoint_path(args.out, cell.id)} is of another config: {cell.id} starts over")


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
    if (Path(out) / store.RUNS_FILE).exists():
        print(f"results: {Path(out) / store.RUNS_FILE} and {Path(out) / store.CSV_FILE}")
    else:
        print(f"nothing recorded in {out}")


def build_report(out: str) -> None:
    import importlib.util

    if importlib.util.find_spec("benchmarks.report") is None:
        return
    if not store.read_records(out):
        print(f"report: not built, {out} holds no runs")
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
    with interrupts_raising():
        try:
            return run_sweep(args) if args.sweep else run_all(args)
        except (Interrupted, KeyboardInterrupt) as e:
            kept = (f"the points measured so far are in {Path(args.out) / store.SWEEP_FILE} (if any)" if args.sweep
                    else f"finished runs are kept in {Path(args.out) / store.RUNS_FILE}; runs in progress were "
                         "not recorded. Continue with the same command plus --resume")
            print(f"\ninterrupted: {kept}.", file=sys.stderr)
            return e.exit_code if isinstance(e, Interrupted) else 130
        except store.Busy as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BUSY
        except OSError as e:  # a write failed mid-run (full disk, a folder made read-only): one line, what is kept
            what = f"{e.filename}: {e.strerror}" if e.filename else str(e)
            kept = (f"the points measured before it are in {Path(args.out) / store.SWEEP_FILE} (if any)" if args.sweep
                    else f"the runs finished before it are kept in {Path(args.out) / store.RUNS_FILE}; fix the "
                         "cause, then run the same command plus --resume")
            print(f"error: writing failed ({what}); {kept}", file=sys.stderr)
            return EXIT_WRITE_ERROR


def run_sweep(args) -> int:
    """--sweep: the scaling sweep of benchmarks/sweep.py, driven by this command's flags."""
    from benchmarks import sweep

    return sweep.from_run_args(args)


def check_executor(args) -> None:
    """ValueError for executor flags that do not fit together (before Ray or a framework is imported)."""
    if args.executor == "local":
        given = [flag for flag, value in (("--ray-address", args.ray_address),
                                          ("--retries", args.retries != executor.RETRIES)) if value]
        if given:
            raise ValueError(f"{given[0]} is for --executor ray; allowed with --executor local: neither")
        return
    if args.checkpoint_every is not None:
        raise ValueError("--checkpoint-every is invalid with --executor ray: a worker writes nothing (the driver is "
                         "the one writer), and a cell run again starts over; allowed: --executor local")
    executor.import_ray()


def run_all(args) -> int:
    cluster = None
    try:  # validation: nothing is written before every input is known good
        store.check_text_arguments(args.command)
        check_executor(args)
        store.check_out_dir(args.out)
        task_names(args)
        names = list(BACKENDS) if args.backend == "both" else [args.backend]
        backends = {name: get_backend(name) for name in names}
        configured = {name: module.configure(threads=args.threads, deterministic=True) for name, module in backends.items()}
        cells, data, skipped, suite = plan(args, backends)
        check_numbers(args, cells)
        if args.tensorboard is not None:
            tensorboard.check_log_dir(args.tensorboard)
        skip = cells_to_skip(args, cells)
        todo = [cell for cell in cells if cell.key not in skip]
        check_checkpoints(args, todo)
        if args.executor == "ray":
            cluster = executor.connect(args.ray_address, args.device)
    except (ValueError, DeviceUnavailableError, OSError) as e:  # DataError is a ValueError; OSError: unreadable input
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        stop_if_interrupted()
        with store.writer(args.out):  # the folder is created, probed with a real file and locked for this run
            return run_cells(args, backends, configured, cells, todo, data, skipped, suite, cluster)
    except store.NotWritable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if cluster is not None:
            cluster.close()


def run_cells(args, backends, configured, cells, todo, data, skipped, suite, cluster=None) -> int:
    """The cells to do, as the folder's one writer: repair and sweep first, then each cell, the summary and the
    report, with a check for an interrupt a callback swallowed after every phase."""
    repaired = store.repair_csv(args.out)
    if repaired:
        print(f"repaired: {repaired}")
    if args.resume:
        for path in store.sweep_leftovers(args.out):
            print(f"resume: removed {path}, left by a killed run")
    for reason in skipped:
        print(reason)
    for name, task_data in data.items():
        print(f"{name}: {task_data.info.source}" + (f"\n  notice: {task_data.info.notice}" if task_data.info.notice else ""))
    mode = executor.timing_mode(args.executor, args.no_timing)
    options = RunOptions(out=args.out, suite=suite, device=cluster.device if cluster else args.device,
                         warmup=args.warmup, checkpoint_every=args.checkpoint_every, resume=args.resume,
                         executor=args.executor, timing_mode=mode)
    if cluster is None:
        machine = timing.machine_peak(backends.values()) if mode == "exclusive" else executor.NO_PEAK
        env = timing.environment(backends.values(), configured, args.device, args.command)
        peak = f"sgemm peak {machine['peak_gflops']:.1f} GFLOP/s" if mode == "exclusive" else "metrics only"
        print(f"{len(todo)} runs to do ({len(cells) - len(todo)} already in {args.out}); {peak}")
        finished, failed = executor.run_local(todo, data, options, machine, env)
    else:  # each worker measures its own node's peak and environment
        print(f"{len(todo)} runs to do ({len(cells) - len(todo)} already in {args.out})")
        finished, failed = executor.run_ray(todo, data, options, cluster, args.command, args.retries)
    if args.tensorboard is not None:
        for line in tensorboard.write_runs(args.tensorboard, args.out, {cell.key for cell in cells}):
            print(line)
    stop_if_interrupted()
    print_summary(finished, args.out)
    for line in failed:
        print(line)
    if failed:
        print(f"{len(failed)} of {len(todo)} cells failed and are not recorded: the same command plus --resume runs "
              "them again", file=sys.stderr)
    if args.tensorboard is not None:
        print(f"tensorboard: tensorboard --logdir {args.tensorboard}")
    if not args.no_report:
        build_report(args.out)
        stop_if_interrupted()  # Ctrl-C in a plotting callback is swallowed there: it still ends the command
    return EXIT_CELLS_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
