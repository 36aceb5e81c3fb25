"""How step time grows with batch size and with layer width: `python -m benchmarks.sweep --sweep batch|width`.

Each point builds a fresh trainer of the task's model (batch or hidden sizes changed), runs WARMUP untimed steps
(the first call's time minus a steady step is the compile time, kept apart), then STEPS timed train_step calls
on the task's real data stream; it records median and IQR of the step time, steps/s and GFLOP/s
(common/flops.py). The table is written atomically to OUT/sweep.csv after every point, so an interrupted sweep
keeps what it measured.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import timing  # noqa: E402
from benchmarks.cell import Cell, time_steps  # noqa: E402
from benchmarks.store import SWEEP_FILE  # noqa: E402
from common import tasks  # noqa: E402
from common.checkpoint import atomic_write  # noqa: E402
from common.backend import get_backend  # noqa: E402
from common.flops import train_step_flops  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.stream import Stream  # noqa: E402

KINDS = ("batch", "width")
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
WIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # hidden sizes of G and D times this
STEPS = 30
WARMUP = 3
COLUMNS = ("sweep", "value", "backend", "mode", "median_s", "p25_s", "p75_s", "steps_per_s", "gflops", "compile_s")
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


def time_point(module, task, spec, source, mode: str, steps: int, warmup: int) -> dict:
    trainer = module.build(spec, init_weights(spec, SEED), device="cpu", mode=mode)
    stream = Stream(spec, source, SEED)
    cell = Cell(task, module.NAME, mode, spec, steps=max(1, warmup) + steps, seed=SEED)
    first, times = time_steps(cell, trainer, stream, warmup)
    p25, median, p75 = np.percentile(times, [25, 50, 75])
    return {"median_s": median, "p25_s": p25, "p75_s": p75, "steps_per_s": 1.0 / median,
            "gflops": train_step_flops(spec)["total"] / median / 1e9,
            "compile_s": timing.compile_seconds(first, median)}


def run_sweep(kind: str, backends=("torch", "tf"), modes=None, threads: int | None = None, out_dir="results",
              task: str = "mnist-small", values=None, steps: int = STEPS, warmup: int = WARMUP,
              data_dir=None) -> pd.DataFrame:
    """Time every (value, backend, mode) point of one sweep; write and return the table (columns COLUMNS).

    ``kind``: "batch" (values: batch sizes, default BATCH_SIZES) or "width" (values: factors on the hidden
    sizes, default WIDTH_FACTORS). ``modes`` None: every mode each backend supports; a mode a backend lacks is
    skipped. ``threads`` goes to each backend's configure(); ``data_dir`` to the task's loader (a face folder).
    """
    if kind not in KINDS:
        raise ValueError(f"sweep {kind!r} is invalid; allowed: {', '.join(KINDS)}")
    values = list(values if values is not None else (BATCH_SIZES if kind == "batch" else WIDTH_FACTORS))
    task_entry = tasks.get_task(task)
    data = task_entry.load(data_dir=data_dir)
    base, _ = tasks.configure(task_entry, n_examples=data.n_train or 10**9, steps=1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for backend in backends:
        module = get_backend(backend)
        module.configure(threads=threads, deterministic=True)
        for mode in (module.MODES if modes is None else [m for m in modes if m in module.MODES]):
            for value in values:
                spec = point_spec(base, kind, value, task_entry)
                if data.n_train is not None and spec.batch_size > data.n_train:
                    raise ValueError(f"batch {spec.batch_size} is larger than the {task} data ({data.n_train} examples)")
                row = {"sweep": kind, "value": value, "backend": backend, "mode": mode,
                       **time_point(module, task_entry, spec, data.source, mode, steps, warmup)}
                rows.append(row)
                print(f"{kind} {value}: {backend} {mode} {1e3 * row['median_s']:.2f} ms/step, "
                      f"{row['gflops']:.1f} GFLOP/s, compile {row['compile_s']:.1f} s", flush=True)
                table = pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False).encode()
                atomic_write(out / SWEEP_FILE, lambda f: f.write(table))
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", required=True, choices=KINDS)
    parser.add_argument("--backend", default="both", choices=["torch", "tf", "both"])
    parser.add_argument("--mode", nargs="+", help="modes to sweep (default: all each backend supports)")
    parser.add_argument("--task", default="mnist-small")
    parser.add_argument("--values", nargs="+", type=float, help="batch sizes or width factors (default: the sweep's)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"timed steps per point (default {STEPS})")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--data-dir", help="the task's data folder (dcgan-faces, faces: a folder of face images)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    values = None
    if args.values:
        values = [int(v) for v in args.values] if args.sweep == "batch" else args.values
    backends = ("torch", "tf") if args.backend == "both" else (args.backend,)
    return sweep_and_print(args.sweep, backends, args.mode, args.threads, args.out, args.task, values, args.steps,
                           args.data_dir)


def sweep_and_print(kind, backends, modes, threads, out_dir, task, values=None, steps: int = STEPS,
                    data_dir=None) -> int:
    """run_sweep for a command line (this module's and ``benchmarks.run --sweep``): table, path, exit code."""
    try:
        frame = run_sweep(kind, backends, modes, threads, out_dir, task, values, steps, data_dir=data_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(frame.to_string(index=False))
    print(f"written: {Path(out_dir) / SWEEP_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
