"""The results store: finished runs are never lost, half-finished ones never pass for finished.

Layout of an output folder (everything written atomically: temp file in the same folder, fsync, os.replace):

    runs.jsonl              one JSON record per finished run (status "finished" or "diverged"), in order
    results.csv             the same records flattened by pandas (nested keys joined with "."; lists as "a;b")
    histories/<run_id>.npz  the run's arrays, written BEFORE its record is appended:
        d_loss, g_loss, d_real, d_fake  (steps_done,) float64   per-step values returned by the trainer
        step_time, data_time            (steps_done,) float64   seconds per step (call time / steps_per_call)
        timed                           (steps_done,) bool      False for warm-up steps (excluded from stats)
        snapshot_steps                  (S,) int64              steps after which snapshots were taken (0 = init)
        snapshots                       (S, 64, data_dim) float16   generate(Stream.fixed_noise(64))
        sketch_index                    (M,) int64              the weight-sketch coordinates (see below)
        sketch                          (S', M) float32         weights at those coordinates, at sketch_steps
        sketch_steps                    (S',) int64             snapshot steps plus the final step
        samples                         (<= STORED_SAMPLES, data_dim) float16   final samples (first rows)
    checkpoints/<cell_id>.npz  (only with --checkpoint-every) the trainer's state and spec (common/checkpoint.py's
        layout) under "trainer/<key>",
        the history so far under "history/<key>" and a JSON "meta" (step count, config); deleted once the
        run is recorded.

The weight sketch: the neutral weights (common.init layout, generator then discriminator, each array
flattened in C order) are concatenated into one vector of P values and the same M = min(16 384, P)
coordinates, chosen by ``np.random.default_rng(SKETCH_SEED).choice(P, M, replace=False)`` and sorted, are
kept at every snapshot. Both backends use the same layout, so the distance between their sketches
estimates their weight divergence (exactly the full weights when P <= 16 384, e.g. the toy tasks).

A record (a flat-ish dict) always has: ``schema`` (SCHEMA_VERSION), ``producer`` (PRODUCER), ``suite``
("quick", "full" or "custom"), ``run_id``, the cell keys ``task backend mode loss seed`` and ``init`` ("seed", or
"seed+ulp" for a chaos-floor twin: initial weights one ulp away, common/init.py), ``config``
(steps, batch_size, d_lr, g_lr, optimizer: what must match for --resume to skip a cell), ``status``, and
the timing, FLOP, metric, data and environment fields typed in benchmarks/record.py.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from common import checkpoint
from common.checkpoint import atomic_write

SCHEMA_VERSION = 1
PRODUCER = "gan-parity-suite"
RUNS_FILE = "runs.jsonl"
CSV_FILE = "results.csv"
SWEEP_FILE = "sweep.csv"  # written by benchmarks/sweep.py, read by the report
HISTORY_DIR = "histories"
CHECKPOINT_DIR = "checkpoints"
CELL_KEYS = ("task", "backend", "mode", "loss", "seed")
SKETCH_SIZE = 16_384
SKETCH_SEED = 0x5EED
STORED_SAMPLES = 512
def check_out_dir(out_dir) -> None:
    """Raise ValueError unless ``out_dir`` is a writable folder or could be created; creates nothing."""
    path = Path(out_dir).absolute()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"output folder {str(out_dir)!r} is a file; give a folder path with --out")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"output folder {str(out_dir)!r} is not writable; choose another with --out")
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(out_dir)!r} cannot be created: {str(parent)!r} is not a writable folder")


def read_records(out_dir) -> list[dict]:
    """The records of ``runs.jsonl`` ([] if there is none); ValueError if it is malformed or not ours."""
    path = Path(out_dir) / RUNS_FILE
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {number} is not JSON ({e.msg}); move the file away or use another --out")
        if not isinstance(record, dict) or record.get("producer") != PRODUCER:
            raise ValueError(f"{path} line {number} is not a {PRODUCER} record; use another --out")
        if record.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"{path} line {number} has schema {record.get('schema')!r}, this version reads "
                             f"{SCHEMA_VERSION}; use another --out")
        missing = [key for key in CELL_KEYS + ("config", "run_id", "status") if key not in record]
        if missing:
            raise ValueError(f"{path} line {number} lacks {', '.join(missing)}; use another --out")
        records.append(record)
    return records


def cell_of(record: dict) -> tuple:
    """The cell a record belongs to: CELL_KEYS plus its ``init`` (common.init.INITS; absent means "seed")."""
    return tuple(record[key] for key in CELL_KEYS) + (record.get("init", "seed"),)


def cell_id(task: str, backend: str, mode: str, loss: str, seed: int, init: str = "seed") -> str:
    return f"{task}-{backend}-{mode}-{loss}-s{seed}" + ("" if init == "seed" else "-ulp")


def flatten(records: list[dict]) -> pd.DataFrame:
    rows = pd.json_normalize(records, sep=".")
    for column in rows.columns:
        if rows[column].map(lambda v: isinstance(v, (list, tuple))).any():
            rows[column] = rows[column].map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return rows


def append_record(out_dir, record: dict) -> None:
    """Append one finished run to runs.jsonl (whole file rewritten atomically), then rewrite results.csv."""
    out_dir = Path(out_dir)
    records = read_records(out_dir) + [record]
    lines = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records)
    atomic_write(out_dir / RUNS_FILE, lambda f: f.write(lines.encode("utf-8")))
    table = flatten(records).to_csv(index=False)
    atomic_write(out_dir / CSV_FILE, lambda f: f.write(table.encode("utf-8")))


def write_history(out_dir, run_id: str, arrays: dict[str, np.ndarray]) -> str:
    """Save a run's arrays; returns the path relative to ``out_dir``."""
    relative = f"{HISTORY_DIR}/{run_id}.npz"
    atomic_write(Path(out_dir) / relative, lambda f: np.savez_compressed(f, **arrays))
    return relative


def read_history(out_dir, relative: str) -> dict[str, np.ndarray]:
    with np.load(Path(out_dir) / relative, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def checkpoint_path(out_dir, cell: str) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"{cell}.npz"


def save_checkpoint(out_dir, cell: str, trainer, history: dict[str, np.ndarray], meta: dict) -> None:
    """One file holding the trainer's state (common/checkpoint.py's layout, with its spec), the history so far
    and ``meta`` (steps_done, config)."""
    bundle = {f"trainer/{key}": value for key, value in checkpoint.state_arrays(trainer.spec, trainer.state()).items()}
    bundle.update({f"history/{key}": value for key, value in history.items()})
    bundle["meta"] = np.array(json.dumps(meta))
    atomic_write(checkpoint_path(out_dir, cell), lambda f: np.savez(f, **bundle))


def load_checkpoint(out_dir, cell: str, trainer) -> tuple[dict, dict] | None:
    """Restore ``trainer`` from the cell's checkpoint; returns (meta, history) or None if there is none."""
    path = checkpoint_path(out_dir, cell)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as bundle:
        meta = json.loads(str(bundle["meta"]))
        state = {k.removeprefix("trainer/"): bundle[k] for k in bundle.files if k.startswith("trainer/")}
        history = {k.removeprefix("history/"): bundle[k] for k in bundle.files if k.startswith("history/")}
    trainer.load_state(checkpoint.check_fits(trainer.spec, state, path))
    return meta, history


def peek_checkpoint_meta(out_dir, cell: str) -> dict | None:
    path = checkpoint_path(out_dir, cell)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as bundle:
        return json.loads(str(bundle["meta"]))


def remove_checkpoint(out_dir, cell: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        checkpoint_path(out_dir, cell).unlink()
