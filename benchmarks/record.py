"""The record of one run, typed: what benchmarks/cell.py builds, store.py writes and the report reads.

On disk a record is one flat JSON object per line of runs.jsonl (and one row of results.csv): the nested
parts below are spread into it in field order, so ``to_json()`` is that flat dict and ``from_json()`` reads it
back. Timing rules: benchmarks/timing.py; FLOP model: common/flops.py; metrics: common/metrics.py.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass, field

# How a run's times were taken (the record's ``timing_mode``): only "exclusive" times enter a speed comparison.
TIMING_MODES = {
    "exclusive": "the cell had its CPU cores or its GPU to itself (the local executor, one cell at a time; or a Ray "
                 "task holding a whole node's CPUs or a whole GPU)",
    "packed": "metrics only: Ray packed cells onto shared cores (--executor ray --no-timing)",
    "none": "metrics only (--no-timing with the local executor)",
}


@dataclass
class Outcome:
    status: str  # "finished" or "diverged" (a NaN/inf loss or weight)
    diverged_at_step: int | None
    flags: list[str]  # "d_saturated", "mode_collapse": results to read with care, never hidden
    steps: int  # planned
    steps_done: int
    resumed_from_step: int  # 0 unless --resume continued a checkpoint
    steps_per_call: int  # K: train_steps(K) per trainer call
    warmup_steps: int  # untimed steps of this process


@dataclass
class StepTimes:
    median_step_s: float  # of the timed steps; each step of a K-step call gets call time / K
    p25_step_s: float
    p75_step_s: float
    timed_steps: int
    steps_per_s: float
    samples_per_s: float
    first_call_s: float  # trace/compile included
    compile_s: float  # the first call's excess over a steady call
    median_data_s: float  # drawing a step's inputs, outside the step clock


@dataclass
class Throughput:
    flops_per_step: int
    flops_approximate: bool
    examples_per_step: int
    gflops_per_s: float
    pct_of_peak: float  # of peak_gflops
    sgemm_gflops: dict[str, float]  # this machine's sgemm, per library, measured in the same run
    peak_gflops: float


@dataclass
class RunRecord:
    schema: int
    producer: str
    suite: str  # "quick", "full" or "custom"
    run_id: str
    task: str
    backend: str
    mode: str
    compiled_as: str  # how the mode ran the step, as the trainer says (e.g. "whole step as one graph (...)")
    loss: str
    seed: int
    config: dict  # what must match for --resume to skip the cell
    outcome: Outcome
    timing: StepTimes
    throughput: Throughput
    # Timed after the run (finished runs only): "<phase>_s" of trainer.time_phases and "sample_s" (generate).
    extra_timings: dict[str, float]
    metrics: dict[str, float]
    eval_samples: int
    data: dict  # source, n_examples, notice
    spec: dict  # common.spec.GAN.to_dict()
    environment: dict  # benchmarks/timing.py environment()
    wall_s: float  # build to record, in this process
    history: str | None = field(default=None)  # histories/<run_id>.npz, relative to the output folder
    init: str = "seed"  # or "seed+order1" to "seed+order3": a chaos-floor twin (common/twin.py)
    # Schema 3. A schema-2 record has none of these and reads as the defaults: the local executor was the only one.
    executor: str = "local"  # "local" or "ray" (benchmarks/executor.py)
    timing_mode: str = "exclusive"  # a key of TIMING_MODES
    # the try that produced the record (Ray runs a cell again when its worker or node died); None where Ray does
    # not say (benchmarks/executor.py attempt_number)
    attempt: int | None = 1
    # The machine's load around the timed steps (benchmarks/timing.py load_since): load average, other processes'
    # CPU time, busy or not. None in records written before it was recorded (issue 26): unknown.
    load: dict | None = None
    # The step's floor (benchmarks/timing.py step_floor): floor_s, matmul_s, optimizer_traffic_bytes,
    # memory_bandwidth_gbs, pct_of_floor. None where not measured: a convolutional GAN, a GPU, an untimed run, or a
    # record written before it was (issue 26).
    floor: dict | None = None

    def to_json(self) -> dict:
        """The flat dict of runs.jsonl: nested parts spread in place, in field order."""
        flat = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                flat.update({g.name: getattr(value, g.name) for g in dataclasses.fields(value)})
            elif f.name == "extra_timings":
                flat.update(value)
            else:
                flat[f.name] = value
        return flat

    @classmethod
    def from_json(cls, flat: dict) -> RunRecord:
        """The record of a runs.jsonl line (KeyError names a missing field)."""
        values, known = {}, set()
        for f in dataclasses.fields(cls):
            part = NESTED.get(f.name)
            if part is not None:
                names = [g.name for g in dataclasses.fields(part)]
                values[f.name] = part(**{name: flat[name] for name in names})
                known.update(names)
            elif f.name != "extra_timings":
                values[f.name] = flat[f.name] if f.default is MISSING else flat.get(f.name, f.default)
                known.add(f.name)
        values["extra_timings"] = {key: value for key, value in flat.items() if key not in known}
        return cls(**values)


NESTED = {"outcome": Outcome, "timing": StepTimes, "throughput": Throughput}


# ----------------------------------------------------------------------------- the schema of a runs.jsonl line
#
# A line of runs.jsonl is input (a results folder can be damaged, hand-edited or tampered with), so every field is
# checked against the types above before any code reads it (store.check_record calls check_fields): a field of the
# wrong type, a missing one, a number beyond int64 or a nesting deeper than any record's would otherwise surface as
# a KeyError, TypeError or RecursionError far from the file, in the grouping, the report or the comparison.

MAX_DEPTH = 6  # the deepest a record nests: record > environment > configure > backend > setting is 4
INT64 = (-2**63, 2**63 - 1)  # step counts, seeds and sizes are stored as int64 (histories, pandas)
Scalar = str | int | float | bool | None  # a JSON scalar: what a config value must be (cells are grouped by them)
# The dict-valued fields, key by key: a key may be absent (older records, the report's defaults) unless REQUIRED;
# keys not named here may hold any JSON value within the bounds.
DICT_FIELDS = {
    "config": {"steps": int, "batch_size": int, "d_lr": float, "g_lr": float, "optimizer": str,
               "steps_per_call": int, "threads": int | None, "pack": int, "dtype": str},
    "data": {"source": str, "n_examples": int | None, "notice": str | None},
    "spec": {"data_shape": list[int]},
    "environment": {"host": str, "versions": dict[str, Scalar], "platform": str, "cpu": str, "cpu_count": int | None,
                    "devices": dict[str, str], "configure": dict[str, dict[str, Scalar]],
                    "TF_ENABLE_ONEDNN_OPTS": str, "git": dict[str, Scalar], "argv": list[str], "date": str},
    "load": {"load_avg_1m": float, "others_cpu_s": float, "others_cores": float, "wall_s": float,
             "cores": int | None, "busy": bool | None},
    "floor": {"floor_s": float, "matmul_s": float, "optimizer_traffic_bytes": int, "memory_bandwidth_gbs": float,
              "pct_of_floor": float},
}
REQUIRED = {"config": ("steps", "batch_size", "d_lr", "g_lr")}  # in every config since schema 2
# Integer fields with a range beyond their type (a record of 0 planned steps or a negative count is no run's).
RANGES = {"steps": (1, INT64[1]), "steps_done": (0, INT64[1]), "resumed_from_step": (0, INT64[1]),
          "steps_per_call": (1, INT64[1]), "warmup_steps": (0, INT64[1]), "timed_steps": (0, INT64[1]),
          "eval_samples": (0, INT64[1]), "diverged_at_step": (0, INT64[1]), "attempt": (1, INT64[1]),
          "config.steps": (1, INT64[1]), "config.batch_size": (1, INT64[1]), "config.steps_per_call": (1, INT64[1]),
          "config.threads": (1, INT64[1]), "config.pack": (1, INT64[1])}
SUITES = ("quick", "full", "custom")
CHOICES = {"suite": SUITES, "executor": ("local", "ray"), "timing_mode": tuple(TIMING_MODES)}
NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
         dict: "an object"}


def check_fields(flat: dict) -> None:
    """ValueError naming the first field of a runs.jsonl record (``to_json``'s flat dict) that is not what a
    RunRecord holds: a required field missing, a value of another type (dict-valued fields key by key:
    DICT_FIELDS), a count out of its range, a choice not among its values, an integer beyond int64 or a nesting
    deeper than MAX_DEPTH anywhere."""
    _check_bounds(flat)
    hints = field_hints()
    missing = [name for name, required in hints.items() if required[1] and name not in flat]
    if missing:
        raise ValueError(f"field {missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                             else ""))
    for name, value in flat.items():
        hint = hints[name][0] if name in hints else float  # any other field is an extra timing (seconds)
        _check_value(value, hint, name)
        if name in DICT_FIELDS and isinstance(value, dict):
            for key in REQUIRED.get(name, ()):
                if key not in value:
                    raise ValueError(f"field {name}.{key} is missing")
            for key, key_hint in DICT_FIELDS[name].items():
                if key in value:
                    _check_value(value[key], key_hint, f"{name}.{key}")
            if name == "config":
                for key, item in value.items():
                    _check_value(item, Scalar, f"config.{key}")  # cells are grouped by their config's values
        if name in CHOICES and value not in CHOICES[name]:
            raise ValueError(f"field {name} {_short(value)} is invalid; allowed: {', '.join(CHOICES[name])}")
    for name, (low, high) in RANGES.items():
        outer, _, inner = name.rpartition(".")
        holder = flat.get(outer) if outer else flat
        value = holder.get(inner) if isinstance(holder, dict) else None
        if isinstance(value, int) and not low <= value <= high:
            raise ValueError(f"field {name} {value} is invalid; allowed: an integer in {low}..{high}")


def field_hints() -> dict[str, tuple[object, bool]]:
    """Every field of a flat record: name -> (type, required), from the dataclasses above (extra_timings, spread
    into the record, is not a field of its own)."""
    if not _hints:
        for cls in (RunRecord, *NESTED.values()):
            types = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.name in NESTED or f.name == "extra_timings":
                    continue
                required = f.default is MISSING and f.default_factory is MISSING
                _hints[f.name] = (types[f.name], required)
    return _hints


_hints: dict[str, tuple[object, bool]] = {}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(hint) -> str:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if hint is Scalar:
        return "a string, number, true, false or null"
    if args and origin is not list and origin is not dict:  # a union
        return " or ".join(_describe(arg) for arg in args)
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return f"an object of {_describe(args[1]).removeprefix('a ').removeprefix('an ')} values"
    return NAMES.get(hint, str(hint))


def _matches(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and origin is not list and origin is not dict:  # a union
        return any(_matches(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, (list, tuple)) and all(_matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(item, args[1]) for item in value.values())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _check_value(value, hint, name: str) -> None:
    """ValueError unless ``value`` is of type ``hint``, naming the very item of a list or object that is not."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and isinstance(value, (list, tuple)):  # a record to append may hold tuples (JSON: lists)
        for i, item in enumerate(value):
            _check_value(item, args[0], f"{name}[{i}]")
    elif origin is dict and isinstance(value, dict):
        for key, item in value.items():
            _check_value(item, args[1], f"{name}.{key}")
    elif not _matches(value, hint):
        raise ValueError(f"field {name} {_short(value)} is invalid; allowed: {_describe(hint)}")


def _check_bounds(flat: dict) -> None:
    """Every integer within int64 and no nesting deeper than MAX_DEPTH, anywhere in the record (iteratively: a
    record nested thousands deep must not exhaust the stack here either)."""
    stack = [(flat, "", 1)]
    while stack:
        value, name, depth = stack.pop()
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, (list, tuple)):
            items = ((str(i), item) for i, item in enumerate(value))
        else:
            if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
                raise ValueError(f"field {name} holds the integer {_short(value)}, beyond int64; allowed: "
                                 f"{INT64[0]}..{INT64[1]}")
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"field {name} nests deeper than any record does (more than {MAX_DEPTH} levels)")
        for key, item in items:
            stack.append((item, f"{name}.{key}" if name else key, depth + 1))
