"""The command lines' shared parts, written once: exit codes, the parser, its number types and shared flags, and
the one mapping from what went wrong to an exit code and a line. run.py, sweep.py, report/, perf.py and parity.py
build their parsers from these; nothing here imports a framework or another command.

Exit codes (README "Guarantees"):
    0    done (a diverged run is a result, not a failure)
    1    --executor ray: some cells failed after their retries; the others are recorded
    2    bad input: one "error: ..." line, nothing written
    74   a write failed during the work (full disk, a folder made read-only): one line; finished work is kept
    75   another process is writing to the output folder: nothing written
    130  interrupted by SIGINT, 143 by SIGTERM: finished work is kept
"""
from __future__ import annotations

import argparse
import contextlib
import sys

from benchmarks import store
from benchmarks.cell import Interrupted, interrupts_raising, stop_if_interrupted
from common.backend import BACKENDS, BOTH, DEVICES, DeviceUnavailableError
from common.spec import LR_RANGE, check_positive_float

EXIT_OK = 0
EXIT_CELLS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_ERROR = 74  # EX_IOERR of sysexits.h
EXIT_BUSY = 75  # EX_TEMPFAIL of sysexits.h: try again once the other run ended
INT64_MAX = 2**63 - 1  # step counts and seeds are stored as int64 (histories, pandas)


INPUT_ERRORS = (ValueError, DeviceUnavailableError)  # what bad input raises (DataError is a ValueError)


class BadInput(Exception):
    """An input is wrong (a flag, a file, a device): exit 2 with one line, before anything is written."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors as the suite's: one "error: ..." line, exit code 2 (not usage + error). Flags must
    be spelled out, so that an abbreviation is never read as some other flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------- number types


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
    """An argparse type: a finite number > 0 (common/spec.py check_positive_float)."""
    try:
        value = float(text)
        check_positive_float(repr(text), value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if "invalid" in str(e) else f"{text!r} is not a number")
    return value


def learning_rate(text):
    """A positive float the float32 optimisers can hold as a normal number (common/spec.py LR_RANGE)."""
    value = positive_float(text)
    if not LR_RANGE[0] <= value <= LR_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a number in {LR_RANGE[0]:.3g}.."
                                         f"{LR_RANGE[1]:.3g} (float32's normal range)")
    return value


def threads(text):
    """--threads: an integer >= 1. Whether it fits a machine is checked where the work runs (plan.py: this
    machine's CPUs for the local executor; a cluster's nodes for Ray)."""
    return integer(1)(text)


# ----------------------------------------------------------------------------- shared flags


BACKEND_GROUPS = ("both", "all")  # --backend's words that stand for several backends, and stand alone


class _Backends(argparse.Action):
    """--backend's words, stored as backend names in registry order (backends_of); a wrong mix is argparse's error:
    one line, exit 2."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, backends_of(values))
        except ValueError as e:
            parser.error(f"argument --backend: {e}")


def add_backend(parser: argparse.ArgumentParser, default: str = "both") -> None:
    """--backend: one or more backend names, or both / all alone; ``args.backend`` holds the names (a tuple)."""
    parser.add_argument("--backend", nargs="+", default=backends_of(default), choices=[*BACKENDS, *BACKEND_GROUPS],
                        metavar="NAME", action=_Backends,
                        help=f"framework(s) to run: one or more of {', '.join(BACKENDS)}; or both "
                        f"({' and '.join(BOTH)}) or all (default {default})")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto (CUDA if present; the default), cpu or cuda")


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=threads, help="intra-op threads for the frameworks (default: theirs)")


def backends_of(words: str | list[str]) -> tuple[str, ...]:
    """--backend's words as backend names in registry order (common/backend.py BACKENDS): one or more names, or
    "both" (torch and tf) or "all" (every registered backend) alone. ValueError for a name given twice or a group
    mixed with other words."""
    words = [words] if isinstance(words, str) else list(words)
    groups = [w for w in words if w in BACKEND_GROUPS]
    if groups and len(words) > 1:
        raise ValueError(f"{groups[0]!r} stands alone; allowed: {groups[0]!r}, or backend names ("
                         f"{', '.join(BACKENDS)}) each once")
    if groups:
        return BOTH if groups[0] == "both" else tuple(BACKENDS)
    for word in words:
        if word not in BACKENDS:
            raise ValueError(f"{word!r} is invalid; allowed: {', '.join(BACKENDS)}, both or all")
        if words.count(word) > 1:
            raise ValueError(f"{word!r} is named twice; allowed: each backend once")
    return tuple(name for name in BACKENDS if name in words)


# ----------------------------------------------------------------------------- what went wrong -> exit code


@contextlib.contextmanager
def checking_input(*errors: type[BaseException]):
    """Inside: an error of these types (default: ValueError, which DataError is, and DeviceUnavailableError) is
    bad input, raised again as BadInput."""
    try:
        yield
    except errors or INPUT_ERRORS as e:
        raise BadInput(str(e)) from e


def run_command(body, *, kept: str, kept_after_write_error: str | None = None, writing: str = "") -> int:
    """``body()``'s exit code, or the one line and code of what stopped it. ``kept`` says what an interrupt leaves
    (e.g. "finished runs are kept in OUT/runs.jsonl"), ``kept_after_write_error`` what a failed write leaves (default
    ``kept``), ``writing`` what was being written ("the report"). Signals raise Interrupted inside; an interrupt a callback swallowed still ends with 130/143."""
    with interrupts_raising():
        try:
            code = body()
            stop_if_interrupted()
            return code
        except (Interrupted, KeyboardInterrupt) as stop:
            print(f"\ninterrupted: {kept}", file=sys.stderr)
            return stop.exit_code if isinstance(stop, Interrupted) else 130
        except (BadInput, store.NotWritable) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except store.Busy as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BUSY
        except OSError as e:  # a write failed mid-run (full disk, a folder made read-only): one line, what is kept
            what = f"{e.filename}: {e.strerror}" if e.filename else str(e)
            print(f"error: writing{f' {writing}' if writing else ''} failed ({what}); {kept_after_write_error or kept}",
                  file=sys.stderr)
            return EXIT_WRITE_ERROR
