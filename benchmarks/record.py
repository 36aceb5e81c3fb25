"""The record of one run, typed: what benchmarks/cell.py builds, store.py writes and the report reads.

On disk a record is one flat JSON object per line of runs.jsonl (and one row of results.csv): the nested
parts below are spread into it in field order, so ``to_json()`` is that flat dict and ``from_json()`` reads it
back. Timing rules: benchmarks/timing.py; FLOP model: common/flops.py; metrics: common/metrics.py.
"""
from __future__ import annotations

import dataclasses
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
    attempt: int = 1  # the try that produced the record (Ray runs a cell again when its worker or node died)

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
