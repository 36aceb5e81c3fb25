"""The results store: finished runs are never lost, half-finished ones never pass for finished.

Layout of an output folder (every file written by common.checkpoint.atomic_write: temp file in the same folder,
fsync, os.replace; every path kept inside the folder):

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
    writer.lock             empty; the OS lock (fcntl.lockf) of the one process writing to the folder (see writer()).
        It is created with os.open, never replaced: replacing it would hand a second process a lock of its own.

The weight sketch: the neutral weights (common.init layout, generator then discriminator, each array
flattened in C order) are concatenated into one vector of P values and the same M = min(16 384, P)
coordinates, chosen by ``np.random.default_rng(SKETCH_SEED).choice(P, M, replace=False)`` and sorted, are
kept at every snapshot. Both backends use the same layout, so the distance between their sketches
estimates their weight divergence (exactly the full weights when P <= 16 384, e.g. the toy tasks).

A record (a flat-ish dict) always has: ``schema`` (SCHEMA_VERSION), ``producer`` (PRODUCER), ``suite``
("quick", "full" or "custom"), ``run_id``, the cell keys ``task backend mode loss seed`` and ``init`` ("seed", or
"seed+order1" to "seed+order3" for the chaos-floor twins, "seed+ulp" for older ones: common/twin.py), ``config``
(steps, batch_size, d_lr, g_lr, optimizer: what must match for --resume to skip a cell), ``status``, and
the timing, FLOP, metric, data and environment fields typed in benchmarks/record.py. A results folder is input
too: every record read (or appended) is checked first (``check_record``): the fields that name files or pick
code (task, backend, mode, loss, run_id, history) must be values of the registry or of the documented form.

Concurrency and faults: one process writes to a folder at a time (``writer()``: a second one gets ``Busy``); each
write below also holds the folder's lock, so a driver process may store records made elsewhere (a worker's) with
``write_history`` then ``append_record``. The append rewrites runs.jsonl and results.csv with SIGINT/SIGTERM held
across both, so an interrupt never leaves the CSV a row short; ``repair_csv`` rebuilds the CSV from runs.jsonl
when they disagree anyway (a SIGKILL between the two), and ``sweep_leftovers`` removes the temp files and the
histories without a record that a SIGKILL can leave (run.py calls it under --resume).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import record as record_schema
from common import checkpoint
from common.backend import BACKENDS, MODES
from common.checkpoint import FILE_MODE, atomic_write, is_temp_file, load_npz, signals_deferred
from common.init import INITS
from common.spec import DTYPES, IMPLEMENTATIONS, LOSSES
from common.specfile import NAME as SPEC_NAME
from common.specfile import SPEC_PREFIX
from common.tasks import TASKS

SCHEMA_VERSION = 3  # 2: compiled_as; 3: executor, timing_mode, attempt, environment.host, init
READABLE_SCHEMAS = (2, 3)  # a schema-2 record reads as a local run (record.py's defaults)
PENDING_FILE = ".histories-begun"  # one line per history the suite began to write (sweep_leftovers)
INIT_SUFFIXES = {init: "" if init == "seed" else "-" + init.split("+")[1] for init in INITS}  # in run ids: "-order1"
PRODUCER = "gan-parity-suite"
RUNS_FILE = "runs.jsonl"
CSV_FILE = "results.csv"
SWEEP_FILE = "sweep.csv"  # written by benchmarks/sweep.py, read by the report
HISTORY_DIR = "histories"
CHECKPOINT_DIR = "checkpoints"
FIGURE_DIR = "figures"  # the report's figures
LOCK_FILE = "writer.lock"
REPORT_MD, REPORT_HTML = "report.md", "report.html"  # written by benchmarks/report
# The files the suite writes at fixed names in an output folder: each is a regular file or absent (check_targets)
OWN_FILES = (RUNS_FILE, CSV_FILE, SWEEP_FILE, LOCK_FILE, PENDING_FILE, REPORT_MD, REPORT_HTML)
CELL_KEYS = ("task", "backend", "mode", "loss", "seed")
STATUSES = ("finished", "diverged")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # becomes a file name: no separators, no leading dot
SKETCH_SIZE = 16_384
SKETCH_SEED = 0x5EED
STORED_SAMPLES = 512
PROBE_BYTES = 4096  # the write probe writes a page, so a full disk shows before the first run, not after it


class Busy(Exception):
    """Another process is writing to this output folder."""


class NotWritable(ValueError):
    """The output folder cannot be created or written (found by a real write, not by os.access)."""


# ----------------------------------------------------------------------------- the folder and its lock


def check_out_dir(out_dir, flag: str = "--out") -> None:
    """Raise ValueError unless ``out_dir`` is a folder path that exists or could be created, and what the suite
    writes in it can be written (check_targets); creates nothing. (The real test is prepare_out_dir's write probe:
    os.access says yes to root even on a read-only mount.) ``flag``: the option that named the folder."""
    what = "output folder" if flag == "--out" else f"{flag} folder"
    if str(out_dir) == "":
        raise ValueError(f"{what} '' is invalid; allowed: a folder path ({flag} results)")
    checkpoint.check_text_path(out_dir, what)
    path = Path(out_dir).absolute()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{what} {str(out_dir)!r} is a file; give a folder path with {flag}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {str(out_dir)!r} is not writable; choose another with {flag}")
        if flag == "--out":
            check_targets(out_dir)
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(out_dir)!r} cannot be created: {str(parent)!r} is not a writable folder")


def check_targets(out_dir) -> None:
    """ValueError if something in ``out_dir`` stands where the suite writes: a folder it writes into that is a
    link or leads outside (check_subfolders), or one of its own files (OWN_FILES) that exists as a folder, a link
    or anything but a regular file: the write would fail after the work (a results.csv folder: exit 74 once the
    run was done) or follow the link out of the folder (writer.lock and .histories-begun are opened in place)."""
    check_subfolders(out_dir)
    for name in OWN_FILES:
        path = Path(out_dir) / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            kind = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file"
            raise ValueError(f"{str(path)!r} is {kind}, where the suite writes its own {name}; allowed: a regular "
                             "file or none (move it away, or use another --out)")


def check_text_arguments(argv) -> None:
    """ValueError naming the first argument of a command line that is not UTF-8 text (and the flag it belongs to):
    every record keeps its command line (environment.argv), and results.csv and the report are UTF-8, so such an
    argument is refused before anything runs (common.checkpoint.check_text_path says why)."""
    for i, argument in enumerate(argv):
        try:
            os.fsencode(argument).decode("utf-8")
        except UnicodeDecodeError:
            flag = argv[i - 1] if i > 0 and argv[i - 1].startswith("-") and "=" not in argv[i - 1] else "argument"
            if argument.startswith("--") and "=" in argument:  # --out=PATH
                flag, _, argument = argument.partition("=")
            raise ValueError(f"{flag} '{checkpoint.shown_path(argument)}' is not UTF-8 text; allowed: arguments and "
                             "paths whose names are UTF-8 (the command line is stored in every record)") from None


def resolves_inside(out_dir, path) -> bool:
    """Whether ``path``, its symlinks resolved, lies in ``out_dir`` (resolved too): the path text alone misses a
    link."""
    real = os.path.realpath(out_dir)
    return os.path.commonpath([real, os.path.realpath(path)]) == real


def check_subfolders(out_dir) -> None:
    """ValueError if a folder the suite writes into (histories/, checkpoints/, figures/) is a symlink or lies
    outside ``out_dir`` once resolved: every write stays inside --out, whatever its folders point to."""
    for name in (HISTORY_DIR, CHECKPOINT_DIR, FIGURE_DIR):
        folder = Path(out_dir) / name
        target = os.path.realpath(folder)
        if folder.is_symlink() or (folder.exists() and not resolves_inside(out_dir, folder)):
            raise ValueError(f"{str(folder)!r} is a link to {target!r}: the suite writes only inside the output "
                             f"folder; allowed: a real folder {name}/ inside {str(out_dir)!r}, or none")


def prepare_out_dir(out_dir, keep: bool = True, flag: str = "--out") -> None:
    """Create ``out_dir`` if needed and prove it writable: a real file is created, written (PROBE_BYTES), synced
    and removed. NotWritable if that fails, after removing the folders this call created; with ``keep=False`` they
    are removed in any case (a probe that leaves nothing behind). ``flag``: the option that named the folder."""
    check_out_dir(out_dir, flag)
    path = Path(out_dir)
    missing = [folder for folder in (path, *path.absolute().parents) if not folder.exists()]
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        with signals_deferred():  # an interrupt cannot leave the probe file behind
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=checkpoint.TEMP_SUFFIX, dir=path)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
    except OSError as error:
        keep = False
        what = "output folder" if flag == "--out" else f"{flag} folder"
        raise NotWritable(f"{what} {str(out_dir)!r} is not writable ({error.strerror or error}); "
                          f"choose another with {flag}") from None
    finally:
        if not keep:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()


# (st_dev, st_ino) of a folder -> [lock fd, holds in this process]. One fd per folder and process: a POSIX lock is
# released when its process closes any fd of the file, so the file is opened once and closed when the last hold ends.
_holds: dict[tuple[int, int], list[int]] = {}
_thread_lock = threading.RLock()  # one store write at a time within this process


def _acquire(folder: Path, wait: bool) -> tuple[int, int]:
    """Hold the folder's OS lock (re-entrant within this process); call with _thread_lock held."""
    status = os.stat(folder)
    key = (status.st_dev, status.st_ino)
    if key in _holds:
        _holds[key][1] += 1
        return key
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        # A POSIX record lock, not flock: it belongs to this process alone (a child forked by a library does not
        # inherit it, so it is gone the moment this process dies) and it also holds across NFS.
        fcntl.lockf(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EACCES, errno.EAGAIN):
            raise Busy(f"output folder {str(folder)!r} is in use by another run (it holds {folder / LOCK_FILE}); "
                       "wait for it to end, or use another --out") from None
        raise
    except BaseException:
        os.close(fd)
        raise
    _holds[key] = [fd, 1]
    return key


def _release(key: tuple[int, int]) -> None:
    hold = _holds[key]
    hold[1] -= 1
    if hold[1] == 0:
        del _holds[key]
        os.close(hold[0])  # releases the lock


@contextlib.contextmanager
def writer(out_dir):
    """This process as the one writer of ``out_dir`` for the block: the folder is created and probed
    (prepare_out_dir), then locked with fcntl.lockf on OUT/writer.lock, which the OS releases when the process
    ends, however it ends (SIGKILL included). Busy, at once, if another process holds the lock."""
    prepare_out_dir(out_dir)
    with _thread_lock:
        key = _acquire(Path(out_dir), wait=False)
    try:
        yield
    finally:
        with _thread_lock:
            _release(key)


@contextlib.contextmanager
def locked(out_dir):
    """The folder's lock for one store write: this process's writer() hold if it has one, else the OS lock,
    waited for (so several processes appending records, none of them the session writer, queue up)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with _thread_lock:
        key = _acquire(Path(out_dir), wait=True)
        try:
            yield
        finally:
            _release(key)


def inside(out_dir, relative) -> Path:
    """``out_dir / relative``, or ValueError if ``relative`` would leave the folder (absolute, or through "..")."""
    normal = os.path.normpath(str(relative))
    if os.path.isabs(normal) or normal == "." or normal == ".." or normal.startswith(".." + os.sep):
        raise ValueError(f"{str(relative)!r} is invalid: it leaves the output folder {str(out_dir)!r}")
    path = Path(out_dir) / normal
    if not resolves_inside(out_dir, path.parent):
        raise ValueError(f"{str(relative)!r} is invalid: {str(path.parent)!r} leads to "
                         f"{os.path.realpath(path.parent)!r}, outside the output folder {str(out_dir)!r}")
    return path


# ----------------------------------------------------------------------------- runs.jsonl and results.csv


def is_spec_task(task: str) -> bool:
    """A spec file's task name (common/specfile.py): "spec." and a plain name, never a built-in one."""
    return task.startswith(SPEC_PREFIX) and bool(SPEC_NAME.fullmatch(task[len(SPEC_PREFIX):]))


def check_record(record, where: str) -> None:
    """ValueError naming ``where`` unless ``record`` is one of ours whose fields that name files or pick code are
    known values: task, backend, mode and loss from the registry, seed an integer >= 0, run_id a plain file name,
    history histories/<run_id>.npz, status finished or diverged, config a dict."""
    if not isinstance(record, dict) or record.get("producer") != PRODUCER:
        raise ValueError(f"{where} is not a {PRODUCER} record; use another --out")
    if record.get("schema") not in READABLE_SCHEMAS:
        raise ValueError(f"{where} has schema {record.get('schema')!r}, this version reads "
                         f"{', '.join(map(str, READABLE_SCHEMAS))}; use another --out")
    missing = [key for key in CELL_KEYS + ("config", "run_id", "status") if key not in record]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; use another --out")
    task = record["task"]
    if not (isinstance(task, str) and (task in TASKS or is_spec_task(task))):
        raise ValueError(f"{where}: task {task!r} is invalid; allowed: {', '.join(TASKS)}, or "
                         f"{SPEC_PREFIX}NAME (a spec file's)")
    for key, allowed in (("backend", BACKENDS), ("mode", MODES), ("loss", LOSSES), ("status", STATUSES)):
        if not isinstance(record[key], str) or record[key] not in allowed:
            raise ValueError(f"{where}: {key} {record[key]!r} is invalid; allowed: {', '.join(allowed)}")
    seed = record["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{where}: seed {seed!r} is invalid; allowed: an integer >= 0")
    run_id = record["run_id"]
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise ValueError(f"{where}: run_id {run_id!r} is invalid; allowed: letters, digits, '.', '_', '-' "
                         "(a file name)")
    if record.get("history") not in (None, f"{HISTORY_DIR}/{run_id}.npz"):
        raise ValueError(f"{where}: history {record['history']!r} is invalid; allowed: {HISTORY_DIR}/{run_id}.npz")
    if not isinstance(record["config"], dict):
        raise ValueError(f"{where}: config {record['config']!r} is invalid; allowed: an object")
    try:  # every other field against the record's schema (benchmarks/record.py)
        record_schema.check_fields(record)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    for key, allowed in (("init", INITS), ("optimizer", IMPLEMENTATIONS), ("dtype", DTYPES)):
        holder = record["config"] if key in ("optimizer", "dtype") else record
        if key in holder and holder[key] not in allowed:
            raise ValueError(f"{where}: {'config.' if holder is not record else ''}{key} {holder[key]!r} is "
                             f"invalid; allowed: {', '.join(allowed)}")


def read_records(out_dir) -> list[dict]:
    """The records of ``runs.jsonl`` ([] if there is none), each checked; ValueError naming the file and line if
    it cannot be read, is malformed, not ours, or names what the registry does not know."""
    path = Path(out_dir) / RUNS_FILE
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read ({error}); move it away or use another --out") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {number} is not JSON ({e.msg}); move the file away or use another --out")
        except ValueError as e:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
            raise ValueError(f"{path} line {number} holds an integer far beyond int64 ({str(e).split(':')[0]}); "
                             "move the file away or use another --out") from None
        except RecursionError:
            raise ValueError(f"{path} line {number} nests deeper than the JSON reader goes (a record nests at most "
                             f"{record_schema.MAX_DEPTH} levels); move the file away or use another --out") from None
        check_record(record, f"{path} line {number}")
        records.append(record)
    return records


def cell_of(record: dict) -> tuple:
    """The cell a record belongs to: benchmarks/cell.py Cell.key (``init`` absent means "seed": common.init.INITS;
    ``dtype`` absent means "float32", the only one before common.spec.DTYPES)."""
    config = record["config"]
    return tuple(record[key] for key in CELL_KEYS) + (
        config.get("optimizer", "spec"), config.get("steps_per_call", 1), config.get("threads"),
        config.get("dtype", "float32"), record.get("init", "seed"), config.get("pack", 1))


def cell_id(task: str, backend: str, mode: str, loss: str, seed: int, optimizer: str = "spec",
            steps_per_call: int = 1, threads: int | None = None, dtype: str = "float32", init: str = "seed",
            pack: int = 1) -> str:
    """A file-name-safe id; the defaults (spec optimiser, K = 1, default threads, init "seed", float32, pack 1) add
    nothing to it."""
    extra = (f"-{optimizer}" if optimizer != "spec" else "") + (f"-k{steps_per_call}" if steps_per_call != 1 else "") \
        + (f"-t{threads}" if threads is not None else "") + INIT_SUFFIXES[init] \
        + ("" if dtype == "float32" else f"-{dtype}") + (f"-p{pack}" if pack != 1 else "")
    return f"{task}-{backend}-{mode}-{loss}-s{seed}{extra}"


def flatten(records: list[dict]) -> pd.DataFrame:
    rows = pd.json_normalize(records, sep=".")
    for column in rows.columns:
        if rows[column].map(lambda v: isinstance(v, (list, tuple))).any():
            rows[column] = rows[column].map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return rows


def _csv_bytes(records: list[dict]) -> bytes:
    return flatten(records).to_csv(index=False).encode("utf-8")


def _write_csv(out_dir: Path, records: list[dict], table: bytes | None = None) -> None:
    table = _csv_bytes(records) if table is None else table
    atomic_write(out_dir / CSV_FILE, lambda f: f.write(table))


def append_record(out_dir, record: dict) -> None:
    """Append one finished run to runs.jsonl (the whole file rewritten atomically) and rebuild results.csv from it,
    as one step: under the folder's lock and with SIGINT/SIGTERM held until both files are in place. The record is
    checked like one read back, and its history (if it names one) must already be written (write_history)."""
    append_records(out_dir, [record])


def append_records(out_dir, new: list[dict]) -> None:
    """append_record for several records in one rewrite: a driver storing the results of many workers appends
    whatever arrived while it was busy at once (each rewrite costs time in proportion to the folder's records)."""
    out_dir = Path(out_dir)
    for record in new:
        check_record(record, "the record to append")
        if record.get("history") is not None and not (out_dir / record["history"]).is_file():
            raise ValueError(f"the record to append names {record['history']}, which is not in {out_dir}: "
                             "write_history first")
    with locked(out_dir), signals_deferred():
        records = read_records(out_dir) + list(new)
        # both files' bytes first: whatever fails to encode fails before either file is touched
        lines = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records).encode("utf-8")
        table = _csv_bytes(records)
        atomic_write(out_dir / RUNS_FILE, lambda f: f.write(lines))
        _write_csv(out_dir, records, table)


def repair_csv(out_dir) -> str | None:
    """Rebuild results.csv from runs.jsonl if the two disagree (run ids, in order); returns a sentence saying so,
    or None if they agree (or there are no records to rebuild it from)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    if not records:
        return None
    try:
        found = pd.read_csv(out_dir / CSV_FILE, usecols=["run_id"], dtype=str, keep_default_na=False)["run_id"]
        rows = f"{len(found)} rows"
    except Exception as error:  # missing, empty, unparsable, no run_id column: all mean "rebuild it"
        found, rows = None, f"unreadable: {type(error).__name__}"
    if found is not None and found.tolist() == [r["run_id"] for r in records]:
        return None
    with locked(out_dir), signals_deferred():
        _write_csv(out_dir, records)
    return f"{out_dir / CSV_FILE} did not match {RUNS_FILE} ({rows} for {len(records)} runs): rebuilt from {RUNS_FILE}"


def pending_histories(out_dir) -> set[str]:
    """The histories this suite began to write in ``out_dir`` (PENDING_FILE), relative paths."""
    path = Path(out_dir) / PENDING_FILE
    try:
        return {line for line in path.read_text(encoding="utf-8").splitlines() if line}
    except (FileNotFoundError, UnicodeDecodeError):
        return set()


def sweep_leftovers(out_dir) -> list[str]:
    """Remove what only a SIGKILL (or a power cut) leaves behind, and nothing the suite did not write: atomic_write's
    temp files (named with the suite's own suffix) in the folder and its histories/, checkpoints/ and figures/, and
    the histories the suite began to write (PENDING_FILE) that no record names (killed between its history and its
    record). Returns the removed paths. Call it as the folder's writer(): another writer's files would look alike."""
    out_dir = Path(out_dir)
    with locked(out_dir):
        named = {r["history"] for r in read_records(out_dir) if r.get("history")}
        begun = pending_histories(out_dir)
        removed = []
        for folder in (out_dir, out_dir / HISTORY_DIR, out_dir / CHECKPOINT_DIR, out_dir / FIGURE_DIR):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                relative = f"{HISTORY_DIR}/{path.name}"
                orphan = folder == out_dir / HISTORY_DIR and relative in begun and relative not in named
                if path.is_file() and not path.is_symlink() and (is_temp_file(path) or orphan):
                    path.unlink()
                    removed.append(str(path))
        if begun:  # every history begun is now recorded or removed
            atomic_write(out_dir / PENDING_FILE, lambda f: f.write(b""))
    return removed


# ----------------------------------------------------------------------------- histories and checkpoints


def write_history(out_dir, run_id: str, arrays: dict[str, np.ndarray]) -> str:
    """Save a run's arrays; returns the path relative to ``out_dir``."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise ValueError(f"run_id {run_id!r} is invalid; allowed: letters, digits, '.', '_', '-' (a file name)")
    relative = f"{HISTORY_DIR}/{run_id}.npz"
    with locked(out_dir):
        # first the note that this file is the suite's: only what it notes can a --resume remove as half-done
        with open(Path(out_dir) / PENDING_FILE, "a", encoding="utf-8") as f:
            f.write(relative + "\n")
            f.flush()
            os.fsync(f.fileno())
        atomic_write(inside(out_dir, relative), lambda f: np.savez_compressed(f, **arrays))
    return relative


STEP_ARRAYS = ("d_loss", "g_loss", "d_real", "d_fake", "step_time", "data_time", "timed")


def read_history(out_dir, relative: str) -> dict[str, np.ndarray]:
    """A run's arrays, with the layout above; ValueError naming the file if it is missing, damaged or of another
    layout (an array missing, lengths that disagree), or if ``relative`` leaves out_dir."""
    path = inside(out_dir, relative)
    arrays = load_npz(path)
    missing = [key for key in (*STEP_ARRAYS, "snapshot_steps", "snapshots", "sketch_index", "sketch", "sketch_steps",
                               "samples") if key not in arrays]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: not a history of this suite")
    steps = {arrays[key].shape for key in STEP_ARRAYS}
    if len(steps) != 1 or len(next(iter(steps))) != 1:
        raise ValueError(f"{path}: its per-step arrays have shapes {sorted(steps)}, expected one length")
    for what, steps_key, values_key, ndim in (("snapshots", "snapshot_steps", "snapshots", 3),
                                              ("sketches", "sketch_steps", "sketch", 2)):
        if arrays[values_key].ndim != ndim or arrays[steps_key].shape != arrays[values_key].shape[:1]:
            raise ValueError(f"{path}: {what} of shape {arrays[values_key].shape} for {arrays[steps_key].shape} steps")
    if arrays["samples"].ndim != 2:
        raise ValueError(f"{path}: samples of shape {arrays['samples'].shape}, expected (n, data_dim)")
    return arrays


def checkpoint_path(out_dir, cell: str) -> Path:
    return inside(out_dir, f"{CHECKPOINT_DIR}/{cell}.npz")


def save_checkpoint(out_dir, cell: str, trainer, history: dict[str, np.ndarray], meta: dict, state=None) -> None:
    """One file holding the trainer's state (common/checkpoint.py's layout, with its spec; ``state`` if the caller
    took it already), the history so far and ``meta`` (steps_done, config)."""
    state = trainer.state() if state is None else state
    bundle = {f"trainer/{key}": value for key, value in checkpoint.state_arrays(trainer.spec, state).items()}
    bundle.update({f"history/{key}": value for key, value in history.items()})
    bundle["meta"] = np.array(json.dumps(meta))
    with locked(out_dir):
        atomic_write(checkpoint_path(out_dir, cell), lambda f: np.savez(f, **bundle))


def read_checkpoint(out_dir, cell: str) -> tuple[dict, dict, dict] | None:
    """(meta, trainer state with its spec, history so far) of the cell's checkpoint, None if it has none;
    ValueError naming the file if it is damaged or its meta is not {"steps_done": int, "config": {...}}. What
    the parts must be to fit a run is benchmarks/cell.py's to check (checkpoint_of)."""
    path = checkpoint_path(out_dir, cell)
    if not path.exists():
        return None
    bundle = load_npz(path)
    try:
        meta = json.loads(str(bundle["meta"]))
        steps_done, config = meta["steps_done"], meta["config"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path} has no readable meta ({type(error).__name__}: {error}); delete it") from None
    if isinstance(steps_done, bool) or not isinstance(steps_done, int) or not isinstance(config, dict):
        raise ValueError(f"checkpoint {path}: meta {meta!r} is invalid; expected an integer steps_done and a config: "
                         "delete it")
    state = {k.removeprefix("trainer/"): v for k, v in bundle.items() if k.startswith("trainer/")}
    history = {k.removeprefix("history/"): v for k, v in bundle.items() if k.startswith("history/")}
    return meta, state, history


def remove_checkpoint(out_dir, cell: str) -> None:
    with locked(out_dir), contextlib.suppress(FileNotFoundError):
        checkpoint_path(out_dir, cell).unlink()
