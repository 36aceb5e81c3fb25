"""How step time grows with batch size and with layer width: `python -m benchmarks.sweep --sweep batch|width`
(or `python -m benchmarks.run --sweep ...`, which honours that command's flags where a sweep can and refuses
the ones it cannot).

Each point builds a fresh trainer of the task's model (batch or hidden sizes changed), runs WARMUP untimed steps
(the first call's time minus a steady step is the compile time, kept apart), then STEPS timed steps on the cell
loop's own clock (benchmarks/cell.py time_steps) over the task's real data stream; it records median and IQR of
the step time, steps/s and GFLOP/s (common/flops.py). Every point is validated before the first is measured, and
nothing is created before a point has been measured (the write probe leaves nothing behind). Then OUT/sweep.csv
is written atomically after every point, as the folder's one writer (benchmarks/store.py), so an interrupted sweep
keeps what it measured; rows of other sweeps (another kind, task, value, backend or mode) are kept.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import cli, store, timing  # noqa: E402
from benchmarks.cell import Cell, time_steps  # noqa: E402
from benchmarks.plan import Request, check_memory, check_threads_here  # noqa: E402
from benchmarks.store import SWEEP_FILE  # noqa: E402
from common import tasks  # noqa: E402
from common.backend import DeviceUnavailableError, get_backend  # noqa: E402
from common.checkpoint import atomic_write  # noqa: E402
from common.flops import train_step_flops  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.stream import Stream  # noqa: E402

KINDS = ("batch", "width")
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
WIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # hidden sizes of G and D times this
STEPS = 30
WARMUP = 3
COLUMNS = ("sweep", "task", "value", "backend", "mode", "median_s", "p25_s", "p75_s", "steps_per_s", "gflops",
           "compile_s")
POINT_KEY = ["sweep", "task", "value", "backend", "mode"]  # a new row replaces an old one with the same key
SEED = 0


def scaled(mlp, factor: float):
    """The MLP with its hidden sizes times ``factor`` (input and output kept), at least 1 unit each."""
    hidden = [max(1, round(size * factor)) for size in mlp.sizes[1:-1]]
    return dataclasses.replace(mlp, sizes=(mlp.sizes[0], *hidden, mlp.sizes[-1]))


def point_spec(base, kind: str, value, task=None):
    """The base spec at one sweep point. Width: a task's own ``widen`` (the DCGANs: every channel count, i.e.
    ngf and ndf, times the factor), else an MLP's hidden sizes."""
    if kind == "batch":
        return base.replace(batch_size=int(value))
    if task is not None and task.widen is not None:
        wide = task.widen(value)
        return base.replace(generator=wide.generator, discriminator=wide.discriminator)
    return base.replace(generator=scaled(base.generator, value), discriminator=scaled(base.discriminator, value))


def time_point(module, task, spec, source, mode: str, steps: int, warmup: int, device: str = "cpu",
               seed: int = SEED, steps_per_call: int = 1) -> dict:
    trainer = module.build(spec, init_weights(spec, seed), device=device, mode=mode)
    stream = Stream(spec, source, seed)
    cell = Cell(task, module.NAME, mode, spec, steps=max(1, warmup) + steps, seed=seed)
    first, times = time_steps(cell, trainer, stream, warmup, steps_per_call)
    p25, median, p75 = np.percentile(times, [25, 50, 75])
    return {"median_s": median, "p25_s": p25, "p75_s": p75, "steps_per_s": 1.0 / median,
            "gflops": train_step_flops(spec)["total"] / median / 1e9,
            "compile_s": timing.compile_seconds(first, median)}


def check_values(kind: str, values) -> list:
    """The sweep's values, checked: batch sizes are integers >= 1, width factors finite numbers > 0."""
    values = list(values if values is not None else (BATCH_SIZES if kind == "batch" else WIDTH_FACTORS))
    if not values:
        raise ValueError("no values to sweep; allowed: one or more")
    for value in values:
        if kind == "batch" and not (float(value).is_integer() and value >= 1):
            raise ValueError(f"batch size {value!r} is invalid; allowed: an integer >= 1")
        if kind == "width" and not (np.isfinite(value) and value > 0):
            raise ValueError(f"width factor {value!r} is invalid; allowed: a finite number > 0")
    return [int(v) for v in values] if kind == "batch" else [float(v) for v in values]


def read_old(out_dir) -> pd.DataFrame | None:
    """OUT/sweep.csv as it is (None if there is none); ValueError naming it if it cannot be read."""
    path = Path(out_dir) / SWEEP_FILE
    if not path.exists():
        return None
    try:
        old = pd.read_csv(path)
    except Exception as error:  # empty, unparsable, not UTF-8, a folder: any of them means "not a table"
        raise ValueError(f"{path} cannot be read ({type(error).__name__}: {error}); move it away or use another --out")
    missing = set(POINT_KEY) - {"task"} - set(old.columns)  # files of older versions have no task column
    if missing:
        raise ValueError(f"{path} lacks columns {', '.join(sorted(missing))}; move it away or use another --out")
    return old.reindex(columns=COLUMNS)


def merged(old: pd.DataFrame | None, rows: list[dict]) -> pd.DataFrame:
    new = pd.DataFrame(rows, columns=COLUMNS)
    if old is None or old.empty:
        return new
    replaced = old.set_index(POINT_KEY).index.isin(new.set_index(POINT_KEY).index)
    return pd.concat([old[~replaced], new], ignore_index=True)


@dataclass(frozen=True)
class SweepPlan:
    """One sweep, typed: run_sweep's arguments (python -m benchmarks.sweep, or benchmarks.run --sweep)."""
    kind: str
    backends: tuple[str, ...] = ("torch", "tf")
    modes: tuple[str, ...] | None = None
    threads: int | None = None
    out_dir: str = "results"
    task: str = "mnist-small"
    values: tuple | None = None
    steps: int = STEPS
    warmup: int = WARMUP
    strict_modes: bool = False
    data_dir: str | None = None
    device: str = "auto"
    seed: int = SEED
    overrides: tasks.Overrides = tasks.Overrides()
    optimizer_impl: str | None = None
    steps_per_call: int = 1


def run_sweep(kind: str, backends=("torch", "tf"), modes=None, threads: int | None = None, out_dir="results",
              task: str = "mnist-small", values=None, steps: int = STEPS, warmup: int = WARMUP, *,
              strict_modes: bool = False, data_dir=None, device: str = "auto", seed: int = SEED,
              overrides: tasks.Overrides = tasks.Overrides(), optimizer_impl=None,
              steps_per_call: int = 1) -> pd.DataFrame:
    """Time every (value, backend, mode) point of one sweep; write and return the table (columns COLUMNS).

    ``kind``: "batch" (values: batch sizes, default BATCH_SIZES) or "width" (values: factors on the hidden
    sizes, default WIDTH_FACTORS). ``modes`` None: every mode each backend supports; a mode a backend lacks is
    skipped (refused with ``strict_modes``, as the command line does). ``threads`` goes to each backend's
    configure(); ``overrides`` (its batch size for width sweeps only) and ``optimizer_impl`` to
    common.tasks.configure. ValueError before anything is measured or written if any point is invalid.
    """
    if kind not in KINDS:
        raise ValueError(f"sweep {kind!r} is invalid; allowed: {', '.join(KINDS)}")
    if kind == "batch" and overrides.batch_size is not None:
        raise ValueError("--batch-size is what a batch sweep varies; allowed: --batch-size with --sweep width")
    values = check_values(kind, values)
    task_entry = tasks.get_task(task)
    data = task_entry.load(data_dir=data_dir)
    base, _ = tasks.configure(task_entry, n_examples=data.n_train or 10**9, steps=1, optimizer_impl=optimizer_impl,
                              **overrides.as_kwargs())
    modules = {name: get_backend(name) for name in backends}
    points = []
    for backend, module in modules.items():
        if device == "cuda" and not module.device_name(device).startswith("cuda"):
            raise DeviceUnavailableError(f"--device cuda: {backend} found no GPU; allowed here: auto, cpu")
        for mode in (module.MODES if modes is None else modes):
            if mode not in module.MODES:
                if strict_modes:
                    raise ValueError(f"mode {mode!r} is invalid for backend {backend!r}; "
                                     f"allowed: {', '.join(module.MODES)}")
                continue
            for value in values:
                spec = point_spec(base, kind, value, task_entry)
                if data.n_train is not None and spec.batch_size > data.n_train:
                    raise ValueError(f"batch {spec.batch_size} is larger than the {task} data "
                                     f"({data.n_train} examples)")
                total = max(1, warmup) + steps
                if -(-max(1, warmup) // steps_per_call) * steps_per_call >= total:
                    raise ValueError(f"--steps-per-call {steps_per_call} leaves no timed step in {max(1, warmup)} "
                                     f"warm-up + {steps} timed steps; allowed: 1..{steps}")
                check_memory(spec, steps_per_call, f"the {kind} {value} point")
                points.append((backend, mode, value, spec))
    if not points:
        raise ValueError(f"no point to measure: none of the modes {', '.join(modes or [])} is supported by "
                         f"{', '.join(backends)}")
    old = read_old(out_dir)
    store.prepare_out_dir(out_dir, keep=False)  # a write probe now, one that leaves nothing behind
    rows = []
    with contextlib.ExitStack() as holding:
        for backend, module in modules.items():
            module.configure(threads=threads, deterministic=True)
        for backend, mode, value, spec in points:
            row = {"sweep": kind, "task": task, "value": value, "backend": backend, "mode": mode,
                   **time_point(modules[backend], task_entry, spec, data.source, mode, steps, warmup, device, seed,
                                steps_per_call)}
            rows.append(row)
            print(f"{kind} {value}: {backend} {mode} {1e3 * row['median_s']:.2f} ms/step, "
                  f"{row['gflops']:.1f} GFLOP/s, compile {row['compile_s']:.1f} s", flush=True)
            if len(rows) == 1:  # the folder is created (and locked) only now that there is something to write
                holding.enter_context(store.writer(out_dir))
                old = read_old(out_dir)
            table = merged(old, rows).to_csv(index=False).encode()
            atomic_write(Path(out_dir) / SWEEP_FILE, lambda f: f.write(table))
    return pd.DataFrame(rows, columns=COLUMNS)


def plan_from_request(kind: str, request: Request) -> SweepPlan:
    """``benchmarks.run --sweep``: that command's request, honoured where a sweep can; ValueError naming the first
    flag it cannot honour."""
    refused = [(flag, why) for flag, given, why in (
        ("--suite", request.suite is not None, "a sweep times one task (--task)"),
        ("--num-seeds", request.num_seeds is not None, "a sweep times one seed (--seed)"),
        ("--resume", request.resume, "a sweep measures every point again"),
        ("--checkpoint-every", request.checkpoint_every is not None, "a sweep's runs are too short to checkpoint"),
        ("--task with several tasks", bool(request.tasks) and len(request.tasks) > 1, "a sweep times one task"),
        ("--optimizer-impl with several implementations",
         bool(request.optimizer_impls) and len(request.optimizer_impls) > 1, "a sweep times one optimiser"),
        ("--steps-per-call with several values", len(request.steps_per_call) > 1, "a sweep times one K"),
        ("--pack", request.packs != (1,), "a sweep times the plain GAN (sweep.csv has no pack column)"),
        ("--steps full", request.steps == "full", "a sweep times a few steps per point"),
        ("--executor ray", request.executor != "local", "a sweep times its points in this process"),
        ("--ray-address", request.ray_address is not None, "a sweep times its points in this process"),
        ("--no-timing", not request.timing, "a sweep is a timing"),
        ("--tensorboard", request.tensorboard is not None, "a sweep writes sweep.csv only"),
        ("--dtype float64", request.dtype != "float32", "a sweep times float32 (sweep.csv has no dtype column)"),
    ) if given]
    if refused:
        raise ValueError(f"--sweep cannot honour {refused[0][0]}: {refused[0][1]}")
    return SweepPlan(kind, request.backends, None if request.mode in (None, "all") else (request.mode,),
                     request.threads, request.out, request.tasks[0] if request.tasks else "mnist-small", None,
                     request.steps if isinstance(request.steps, int) else STEPS,
                     request.warmup if request.warmup is not None else WARMUP, strict_modes=True,
                     data_dir=request.data_dir, device=request.device, seed=request.seed,
                     overrides=request.overrides, optimizer_impl=request.optimizer_impls[0] if request.optimizer_impls else None,
                     steps_per_call=request.steps_per_call[0])


def run_from_request(kind: str, request: Request) -> int:
    """``benchmarks.run --sweep``: the sweep of that command's flags, with the command line's exit codes."""
    return run_and_print(lambda: plan_from_request(kind, request), request.out)


def make_parser() -> cli.Parser:
    parser = cli.Parser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", required=True, choices=KINDS)
    cli.add_backend(parser)
    parser.add_argument("--mode", nargs="+", help="modes to sweep (default: all each backend supports)")
    parser.add_argument("--task", default="mnist-small")
    parser.add_argument("--values", nargs="+", type=cli.positive_float,
                        help="batch sizes or width factors (default: the sweep's)")
    parser.add_argument("--steps", type=cli.integer(1), default=STEPS, help=f"timed steps per point (default {STEPS})")
    parser.add_argument("--warmup", type=cli.integer(0), default=WARMUP,
                        help=f"untimed steps per point (default {WARMUP})")
    cli.add_threads(parser)
    cli.add_device(parser)
    parser.add_argument("--data-dir", help="the task's data (MNIST files, a face folder)")
    parser.add_argument("--out", default="results")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    return run_and_print(lambda: SweepPlan(
        args.sweep, args.backend, tuple(args.mode) if args.mode else None, args.threads, args.out,
        args.task, tuple(args.values) if args.values else None, args.steps, args.warmup,
        strict_modes=args.mode is not None, data_dir=args.data_dir, device=args.device), args.out)


def run_and_print(make_plan, out_dir) -> int:
    """The sweep ``make_plan()`` returns, for a command line: its table and file, or the line and exit code of what
    stopped it (benchmarks/cli.py). A ValueError before the first point is written is bad input."""
    sweep_file = Path(out_dir) / SWEEP_FILE

    def body() -> int:
        with cli.checking_input():
            the_plan = make_plan()
            check_threads_here(the_plan.threads)
            frame = run_sweep(**{f.name: getattr(the_plan, f.name) for f in dataclasses.fields(the_plan)})
        print(frame.to_string(index=False))
        print(f"written: {len(frame)} points to {sweep_file}")
        return cli.EXIT_OK

    return cli.run_command(body, kept=f"the points measured so far are in {sweep_file} (if any)")


if __name__ == "__main__":
    sys.exit(main())
