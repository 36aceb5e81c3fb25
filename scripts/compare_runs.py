"""Do two output folders hold the same results? `python scripts/compare_runs.py A B`

Pairs the records of A/runs.jsonl and B/runs.jsonl by cell (benchmarks/store.py cell_of) and compares, bit for
bit, what a run computed: the record's outcome, config, spec, data, FLOP count and metrics, and the history's
per-step losses and D outputs, snapshots, weight sketches and final samples. What says where, when and how it ran
(times, run ids, host, environment, executor, timing mode, attempt, and how a run continued from a checkpoint was
timed: its resumed_from_step, its own warm-up and so its timed steps) is not compared: a run resumed from a
checkpoint computes what a straight one does. Prints one line per
difference and exits 1 if there is any (2 if a folder cannot be read); e.g. the local executor against Ray:

    python -m benchmarks.run --task parabola --executor local --no-timing --out /tmp/a
    python -m benchmarks.run --task parabola --executor ray --no-timing --out /tmp/b
    python scripts/compare_runs.py /tmp/a /tmp/b
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from benchmarks import store

# Record fields that are results: the same cell computed twice must give them equal.
# (resumed_from_step, warmup_steps and timed_steps say how the run was cut and timed: a resumed run warms up again.)
RESULT_FIELDS = ("task", "backend", "mode", "loss", "seed", "config", "suite", "compiled_as", "status",
                 "diverged_at_step", "flags", "steps", "steps_done", "steps_per_call", "metrics", "eval_samples",
                 "data", "spec", "flops_per_step", "flops_approximate", "examples_per_step")
# History arrays that are results (step_time and data_time are clocks, timed says which steps the clock counted).
RESULT_ARRAYS = ("d_loss", "g_loss", "d_real", "d_fake", "snapshot_steps", "snapshots", "sketch_index",
                 "sketch_steps", "sketch", "samples")


def differences(a_dir, b_dir) -> list[str]:
    """One line per difference between the results of two output folders (ValueError if one cannot be read)."""
    a = {store.cell_of(r): r for r in store.read_records(a_dir)}
    b = {store.cell_of(r): r for r in store.read_records(b_dir)}
    found = [f"{store.cell_id(*key)}: only in {where}" for key, where in
             [(k, a_dir) for k in a if k not in b] + [(k, b_dir) for k in b if k not in a]]
    for key in [k for k in a if k in b]:
        ra, rb, name = a[key], b[key], store.cell_id(*key)
        found += [f"{name}: {f} {ra.get(f)!r} != {rb.get(f)!r}" for f in RESULT_FIELDS
                  if not equal(ra.get(f), rb.get(f))]
        missing = [where for where, r in ((a_dir, ra), (b_dir, rb)) if r.get("history") is None]
        if missing:  # a record may name no history (benchmarks/record.py)
            found += [f"{name}: no history in {where}" for where in missing]
            continue
        ha, hb = store.read_history(a_dir, ra["history"]), store.read_history(b_dir, rb["history"])
        found += [f"{name}: history {k} differs" for k in RESULT_ARRAYS
                  if not np.array_equal(ha[k], hb[k], equal_nan=ha[k].dtype.kind == "f")]
    return found


def equal(x, y) -> bool:
    """==, with NaN equal to NaN (a metric of a collapsed run can be NaN in both)."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (x != x and y != y)
    return x == y


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", metavar="A")
    parser.add_argument("b", metavar="B")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        found = differences(args.a, args.b)
        cells = len(store.read_records(args.a))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    print(f"{cells} records in {args.a}: " + (f"{len(found)} difference(s)" if found else "the same results in both"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
