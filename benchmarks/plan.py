"""The flags of ``python -m benchmarks.run`` turned, once, into a validated, typed Plan: which cells run (task,
backend, mode, optimiser implementation, seed...) with which data and settings, and what the run writes. Every
number is checked against what it will be used for and every input file is read before anything is written;
a bad input is a ValueError (DataError, DeviceUnavailableError) naming the flag and what is allowed, which the
command turns into exit code 2 (benchmarks/cli.py). run.py executes a Plan; nothing below looks at argparse.

The quick plan (the default length, ``--steps quick``): per task, the configurations (backend, mode, optimiser
implementation) that say something, each at a share of the task's quick steps (QUICK_PLAN), and the task's
``quick_seeds`` seeds of each framework's representative configuration (REPRESENTATIVE), so that the report can
judge "same samples?" over seeds (common/tasks.py sets quick_seeds > 1 where a run costs seconds).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from benchmarks import executor, store, tensorboard, timing
from benchmarks.cell import Cell, RunOptions, checkpoint_of
from benchmarks.executor import RETRIES
from common import metrics, specfile
from common import tasks as task_registry
from common.backend import MODES, DeviceUnavailableError, get_backend
from common.data import DataError
from common.flops import train_step_flops
from common.spec import Conv2D, ConvTranspose2D, Dense
from common.twin import TWINS

INT64_MAX = 2**63 - 1  # step counts, seeds and steps are stored as int64 (histories, pandas)
# runs.jsonl is read and rewritten whole at every append (atomic replace): 10^5 runs of ~5 kB is ~0.5 GB per
# append. A plan beyond that belongs in several output folders.
MAX_RUNS = 100_000
# What one step costs in memory besides the model: RunLog keeps 7 Python values per step (~32 B each with the
# list slot) and the history holds them again as arrays (49 B): 250 B a step, rounded up.
HISTORY_BYTES_PER_STEP = 250
STEP_CHOICES = ("quick", "full")  # --steps also takes these: the task's quick length, or its own full length

# The quick plan: (backend, mode, optimiser implementation) -> its share of a task's quick steps. The full-length
# cells are the graph modes: the same-seed pairs the report compares across frameworks, and the chaos floor's twin
# (the longest cell of the first backend: torch.compile, whose graph the twin reuses). Eager cells are there for
# their speed, which needs few steps: TF eager is 15-40x slower per step than tf.function on these small models.
# The two "native" eager cells are each framework out of the box (eager, its own optimiser, one step per call):
# the report sets them beside each framework's fastest configuration.
QUICK_PLAN = {("torch", "compiled", "spec"): 1.0, ("torch", "eager", "spec"): 0.25,
              ("tf", "eager", "spec"): 0.05, ("tf", "compiled", "spec"): 1.0, ("tf", "xla", "spec"): 1.0,
              ("torch", "eager", "native"): 0.25, ("tf", "eager", "native"): 0.05,
              # JAX (--backend jax / all): jax.jit's whole step full length; eager (op by op, ~25x slower) for its speed
              ("jax", "compiled", "spec"): 1.0, ("jax", "eager", "spec"): 0.05, ("jax", "eager", "native"): 0.05}
# Each framework's fastest path, measured for its speed where a task asks for it (Task.quick_steps_per_call = K):
# its graph mode with K steps per call (PyTorch's K-step region, TF's XLA loop, JAX's lax.scan), at this share of
# the quick steps (a multiple of K), one seed. The report's best-against-best verdict then meets each framework at
# its fastest measured configuration.
QUICK_K_PLAN = {("torch", "compiled", "spec"): 0.25, ("tf", "xla", "spec"): 0.25, ("jax", "compiled", "spec"): 0.25}
# Each framework's configuration that runs a task's quick_seeds seeds: the report's representative mode is the one
# with the most seeds (report/runs.py), so these are the runs "same samples?" compares.
REPRESENTATIVE = {("torch", "compiled", "spec"), ("tf", "xla", "spec"), ("jax", "compiled", "spec")}
# The plan preview's warning: a plan whose estimated time reaches this is announced loudly before it starts.
LONG_PLAN_S = 3600.0


@dataclass(frozen=True)
class Request:
    """The flags, typed (run.py's parser): what the user asked for, before it is checked against anything."""
    backends: tuple[str, ...] = ("torch", "tf")
    tasks: tuple[str, ...] | None = None  # None: the suite's
    spec_file: str | None = None  # a TOML spec file: the user's own GAN as the one task (common/specfile.py)
    task_object: task_registry.Task | None = None  # the one task, built in Python (benchmarks/compare.py)
    data_path: str | None = None  # --data: the spec file's array file or image folder instead of its own
    suite: str | None = None  # "quick" or "full"; None: quick unless tasks are named
    steps: int | str = "quick"  # an integer, or one of STEP_CHOICES
    overrides: task_registry.Overrides = task_registry.Overrides()  # loss, batch, learning rates, d_steps, algorithm
    optimizer_impls: tuple[str, ...] | None = None  # spec, native...; None: the plan's
    dtype: str = "float32"
    seed: int = 0
    num_seeds: int | None = None  # None: 1, or a task's quick_seeds in its representative configurations
    mode: str | None = None  # a mode, "all", or None (the plan's)
    device: str = "auto"
    threads: int | None = None
    steps_per_call: tuple[int, ...] = (1,)
    packs: tuple[int, ...] = (1,)
    data_dir: str | None = None
    out: str = "results"
    resume: bool = False
    checkpoint_every: int | None = None
    warmup: int | None = None
    report: bool = True
    floor: bool = True
    tensorboard: str | None = None
    executor: str = "local"
    ray_address: str | None = None
    timing: bool = True
    retries: int = RETRIES
    command: tuple[str, ...] = ()  # the command line as typed, for the records' environment


@dataclass(frozen=True)
class Plan:
    """Everything a run does, validated: run.py takes this and nothing else."""
    request: Request
    suite: str  # "quick", "full" or "custom" (recorded in every run)
    cells: tuple[Cell, ...]
    todo: tuple[Cell, ...]  # the cells not already recorded (--resume)
    data: dict  # task name -> common.tasks.TaskData
    skipped: tuple[str, ...]  # why configurations were left out, one line each
    backends: dict[str, ModuleType]
    configured: dict[str, dict]  # what each backend's configure() set (threads, determinism)
    options: RunOptions  # what every cell is told


# ----------------------------------------------------------------------------- the plan


def make_plan(request: Request) -> Plan:
    """The validated Plan of a request; ValueError/DataError/DeviceUnavailableError (or OSError for an unreadable
    input) on anything wrong. Reads the data and the output folder's records and checkpoints; writes nothing."""
    store.check_text_arguments(request.command)
    check_executor(request)
    store.check_out_dir(request.out)
    if request.tensorboard is not None:
        tensorboard.check_log_dir(request.tensorboard)
    suite, tasks = resolve_tasks(request)
    backends = {name: get_backend(name) for name in request.backends}
    configured = {name: module.configure(threads=request.threads, deterministic=True)
                  for name, module in backends.items()}
    cells, data, skipped = plan_cells(request, suite, tasks, backends)
    check_numbers(request, cells)
    skip = cells_to_skip(request, cells)
    todo = tuple(cell for cell in cells if cell.key not in skip)
    check_checkpoints(request, todo)
    options = RunOptions(out=request.out, suite=suite, device=request.device, warmup=request.warmup,
                         checkpoint_every=request.checkpoint_every, resume=request.resume,
                         executor=request.executor, timing_mode=executor.timing_mode(request.executor,
                                                                                     not request.timing))
    return Plan(request, suite, tuple(cells), todo, data, tuple(skipped), backends, configured, options)


def check_executor(request: Request) -> None:
    """ValueError for executor flags that do not fit together (before Ray or a framework is imported)."""
    if request.executor == "local":
        given = [flag for flag, value in (("--ray-address", request.ray_address),
                                          ("--retries", request.retries != executor.RETRIES)) if value]
        if given:
            raise ValueError(f"{given[0]} is for --executor ray; allowed with --executor local: neither")
        check_threads_here(request.threads, " (a Ray cluster's nodes may have more: --executor ray)")
        return
    if request.checkpoint_every is not None:
        raise ValueError("--checkpoint-every is invalid with --executor ray: a worker writes nothing (the driver is "
                         "the one writer), and a cell run again starts over; allowed: --executor local")
    executor.import_ray()


def check_threads_here(threads: int | None, more: str = "") -> None:
    """ValueError unless --threads fits this machine's logical CPUs (where the cells run in this process)."""
    cpus = os.cpu_count() or 1
    if threads is not None and threads > cpus:
        raise ValueError(f"--threads {threads} is more than this machine's {cpus} logical CPUs; allowed: 1..{cpus}"
                         f"{more}")


def resolve_tasks(request: Request) -> tuple[str, dict[str, task_registry.Task]]:
    """The suite's name and its tasks by name; ValueError for an unknown or repeated task (a typo is refused before
    the frameworks take seconds to import; a repeat would train the same cells twice) or a bad spec file."""
    if request.task_object is not None:
        return "custom", {request.task_object.name: request.task_object}
    if request.spec_file is not None:
        if request.data_dir is not None:
            raise ValueError("--data-dir is for the built-in tasks; allowed with --spec: --data (the spec file's "
                             "array file, image folder or data set folder)")
        task = specfile.read_task(request.spec_file, request.data_path)
        return "custom", {task.name: task}
    if request.data_path is not None:
        raise ValueError("--data is the data of a spec file; allowed: with --spec (a built-in task reads --data-dir)")
    if not request.tasks:
        full = request.suite == "full"
        names = list(task_registry.TASKS) if full else list(task_registry.QUICK_SUITE)
        return ("full" if full else "quick"), {name: task_registry.get_task(name) for name in names}
    names = [task_registry.get_task(name).name for name in request.tasks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--task names {', '.join(repeated)} more than once; allowed: each task once")
    return "custom", {name: task_registry.get_task(name) for name in names}


def steps_choice(request: Request, suite: str) -> int | str:
    """--steps as given, where ``--suite full`` means the tasks' own lengths."""
    return "full" if suite == "full" and request.steps == "quick" else request.steps


def plan_cells(request: Request, suite: str, tasks: dict, backends: dict) -> tuple[list[Cell], dict, list[str]]:
    """Every cell to run, the data per task, and the reasons configurations were skipped."""
    names = list(tasks)
    if request.data_dir is not None and not Path(request.data_dir).expanduser().exists():
        raise DataError(f"--data-dir {request.data_dir} does not exist; allowed: an existing folder (or mnist.npz)")
    if request.executor == "local":  # on a cluster its GPUs count, not this machine's (executor.connect checks them)
        for name, module in backends.items():
            resolved = module.device_name(request.device)
            if request.device == "cuda" and not resolved.startswith("cuda"):
                raise DeviceUnavailableError(f"--device cuda: {name} found no GPU (it resolves to {resolved!r}); "
                                             "allowed here: auto, cpu")
    skipped = []
    steps_asked = steps_choice(request, suite)
    configs = config_plan(request, backends, skipped, quick=steps_asked == "quick")
    seeds = {name: seeds_of(request, tasks[name], steps_asked) for name in names}
    runs = sum(len(seeds[name][config in REPRESENTATIVE]) for name in names for config, _ in configs) \
        * len(request.steps_per_call) * len(request.packs)
    if runs > MAX_RUNS:
        raise ValueError(f"this plan has {runs} runs; allowed: at most {MAX_RUNS} per output folder (fewer "
                         "--num-seeds)")
    last_seed = max(s for pair in seeds.values() for group in pair for s in group)
    if last_seed > INT64_MAX:
        raise ValueError(f"--seed {request.seed} with --num-seeds {request.num_seeds} goes past the largest seed "
                         f"{INT64_MAX}")
    cells, data = [], {}
    quick_plan = (steps_asked == "quick" and request.mode is None and request.optimizer_impls is None
                  and request.steps_per_call == (1,) and request.packs == (1,))
    for name, task in tasks.items():
        data[name] = task.load(data_dir=request.data_dir)
        check_data(name, data[name])
        for (backend, mode, implementation), fraction in configs:
            if steps_asked == "quick" and request.mode is None and (backend, mode) in task.quick_skip:
                _skip(skipped, f"skipped {name} {backend}+{mode} at the quick length (common/tasks.py: too slow "
                               "here)")
                continue
            steps = (max(1, round(task.quick_steps * fraction)) if steps_asked == "quick" else
                     None if steps_asked == "full" else steps_asked)
            overrides = quick_overrides(request, task) if steps_asked == "quick" else request.overrides
            for pack in request.packs:
                spec, steps_of = task_registry.configure(task, data[name].n_train, steps=steps,
                                                         optimizer_impl=implementation, dtype=request.dtype,
                                                         pack=pack, **overrides.as_kwargs())
                if data[name].n_train is not None and spec.examples_per_batch > data[name].n_train:
                    packed = f" x pack {spec.pack}" if spec.pack > 1 else ""
                    raise DataError(f"batch size {spec.batch_size}{packed} is larger than the {name} data set "
                                    f"({data[name].n_train} examples); allowed: 1..{data[name].n_train}")
                cells += [Cell(task, backend, mode, spec, steps_of, seed, steps_per_call=k_steps,
                               threads=request.threads) for k_steps in request.steps_per_call
                          for seed in seeds[name][(backend, mode, implementation) in REPRESENTATIVE]]
        if quick_plan and task.quick_steps_per_call > 1:
            cells += quick_k_cells(request, task, data[name].n_train, backends)
    if request.data_dir is not None and all(task_data.n_train is None for task_data in data.values()):
        readers = [t.name for t in task_registry.TASKS.values() if t.data in task_registry.DATA_SETS]
        raise ValueError(f"--data-dir is read by none of {', '.join(names)} (they sample known distributions); "
                         f"allowed: with a task that trains on a data set ({', '.join(readers)})")
    if len(backends) > 1 and request.floor:
        cells += floor_cells(cells, {name: seeds[name][0] for name in names})
    return cells, data, skipped


def quick_overrides(request: Request, task) -> task_registry.Overrides:
    """The flags' overrides at the quick length: the task's quick batch size unless --batch-size was given."""
    if request.overrides.batch_size is not None:
        return request.overrides
    return dataclasses.replace(request.overrides, batch_size=task.quick_batch_size)


def quick_k_cells(request: Request, task, n_train: int | None, backends: dict) -> list[Cell]:
    """The quick plan's K-step speed cells of a task (QUICK_K_PLAN, K = task.quick_steps_per_call): the first seed,
    a whole number of K-step calls."""
    k = task.quick_steps_per_call
    cells = []
    for (backend, mode, implementation), fraction in QUICK_K_PLAN.items():
        if backend not in backends or (backend, mode) in task.quick_skip:
            continue
        steps = max(1, round(task.quick_steps * fraction) // k) * k
        spec, steps_of = task_registry.configure(task, n_train, steps=steps, optimizer_impl=implementation,
                                                 dtype=request.dtype, **quick_overrides(request, task).as_kwargs())
        cells.append(Cell(task, backend, mode, spec, steps_of, request.seed, steps_per_call=k, threads=request.threads))
    return cells


def seeds_of(request: Request, task, steps_asked) -> tuple[range, range]:
    """(the seeds of a configuration, those of a representative one): --num-seeds for both when given; else one
    seed, and at the quick length the task's quick_seeds for each framework's representative configuration."""
    if request.num_seeds is not None:
        both = range(request.seed, request.seed + request.num_seeds)
        return both, both
    many = task.quick_seeds if steps_asked == "quick" else 1
    return range(request.seed, request.seed + 1), range(request.seed, request.seed + many)


def floor_cells(cells: list[Cell], seeds: dict[str, range]) -> list[Cell]:
    """The chaos floor's twins: per task and seed of ``seeds`` (those every configuration runs), the first
    backend's longest planned cell (the first of them) three times more, each with its hidden units and batches in
    another order (common/twin.py): the same training with other summation orders. The report sets every pair of
    backends' same-seed drift against the band of these same-framework drifts (benchmarks/report/divergence.py);
    the longest cell, so that the band spans the pairs' whole length (TF's first quick cell is a short eager one)."""
    first = {}
    for cell in cells:
        key = (cell.task.name, cell.seed)
        if cell.backend == cells[0].backend and cell.seed in seeds[cell.task.name] and \
                (key not in first or cell.steps > first[key].steps):
            first[key] = cell
    return [dataclasses.replace(cell, init=init) for init in TWINS for cell in first.values()]


def check_data(name: str, task_data) -> None:
    """Enough real examples to judge the samples against, found now rather than after training."""
    n = len(task_data.reference)
    if n < metrics.MIN_SAMPLES:
        raise DataError(f"{name}: {n} real example(s) to judge the samples against ({task_data.info.source}); "
                        f"its metrics need at least {metrics.MIN_SAMPLES}")


def config_plan(request: Request, backends: dict, skipped: list[str],
                quick: bool = True) -> list[tuple[tuple[str, str, str], float]]:
    """(backend, mode, optimiser implementation) with its share of the steps: at the quick length without --mode or
    --optimizer-impl, the quick plan; else the modes (all without --mode) and implementations asked for, at full
    share. What a backend does not run is skipped with a reason where the flags left it open (or named both
    backends), refused where they asked it."""
    if quick and request.mode is None and request.optimizer_impls is None:
        return [(config, fraction) for config, fraction in QUICK_PLAN.items() if config[0] in backends]
    plan_ = []
    modes = list(MODES) if request.mode in (None, "all") else [request.mode]
    for name, module in backends.items():
        for mode in modes:
            if mode not in module.MODES:
                if request.mode not in (None, "all"):
                    raise ValueError(f"mode {mode!r} is invalid for backend {name!r}; allowed: {', '.join(module.MODES)}")
                _skip(skipped, f"skipped {name}+{mode}: {name} supports {', '.join(module.MODES)}")
                continue
            for implementation in request.optimizer_impls or ["spec"]:
                if implementation not in module.OPTIMIZER_IMPLEMENTATIONS:
                    allowed = ", ".join(module.OPTIMIZER_IMPLEMENTATIONS)
                    if len(backends) == 1:
                        raise ValueError(f"--optimizer-impl {implementation!r} is invalid for backend {name!r}; "
                                         f"allowed: {allowed}")
                    _skip(skipped, f"skipped {name} with optimizer implementation {implementation}: {name} runs "
                                   f"{allowed}")
                    continue
                share = QUICK_PLAN.get((name, mode, implementation), 1.0) if quick and request.mode is None else 1.0
                plan_.append(((name, mode, implementation), share))
    return plan_


def _skip(skipped: list[str], reason: str) -> None:
    if reason not in skipped:
        skipped.append(reason)


# ----------------------------------------------------------------------------- numbers against their use


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
    a batch of 1 does, the largest --pack, else --steps-per-call, with a batch of 1."""
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


def check_numbers(request: Request, cells: list[Cell]) -> None:
    """Every number against what it will be used for, before anything runs: the warm-up and --steps-per-call
    against the steps (at least one timed call), --checkpoint-every against the steps (at least one checkpoint),
    the batch and the step count against this machine's memory. ValueError names the flag and what is allowed."""
    memory = physical_memory()
    for cell in {(c.task.name, c.backend, c.mode, c.steps_per_call): c for c in cells}.values():  # seeds share them
        k = cell.steps_per_call
        if k > cell.steps:
            raise ValueError(f"--steps-per-call {k} is more than the {cell.steps} steps of {cell.id}; "
                             f"allowed: 1..{cell.steps}")
        warmup = request.warmup if request.warmup is not None else timing.default_warmup(cell.steps)
        if -(-warmup // k) * k >= cell.steps:  # the first call that starts after the warm-up
            given = f"--warmup {warmup}" if request.warmup is not None else f"the default warm-up of {warmup} steps"
            calls = f" in calls of {k}" if k > 1 else ""
            raise ValueError(f"{given} leaves no timed step in {cell.id} ({cell.steps} steps{calls}); "
                             f"allowed: --warmup 0..{k * ((cell.steps - 1) // k)}")
        check_memory(cell.spec, k, cell.id)
        if cell.steps * HISTORY_BYTES_PER_STEP > memory:
            raise ValueError(f"{cell.steps} steps: the history of {cell.id} alone needs "
                             f"{gigabytes(cell.steps * HISTORY_BYTES_PER_STEP)}, more than this machine's "
                             f"{gigabytes(memory)}; allowed: --steps up to {memory // HISTORY_BYTES_PER_STEP}")
    longest = max(c.steps for c in cells)
    if request.checkpoint_every is not None and request.checkpoint_every >= longest:
        raise ValueError(f"--checkpoint-every {request.checkpoint_every} would save no checkpoint: no run has more "
                         f"than {longest} steps (a checkpoint is saved before the last step); allowed: "
                         f"1..{longest - 1}" if longest > 1 else "--checkpoint-every: runs of 1 step are never "
                                                                  "checkpointed")


def cells_to_skip(request: Request, cells: list[Cell]) -> set[tuple]:
    """Cells already recorded in OUT/runs.jsonl with the same config (only under --resume)."""
    records = store.read_records(request.out)  # read always: a foreign file is refused before anything runs
    if not request.resume:
        return set()
    done = {store.cell_of(r): r["config"] for r in records}
    skip = set()
    for cell in cells:
        if cell.key in done and done[cell.key] == cell.config:
            skip.add(cell.key)
        elif cell.key in done:
            print(f"resume: {cell.id} was recorded with {done[cell.key]}, now {cell.config}: running it again")
    return skip


def check_checkpoints(request: Request, todo) -> None:
    """Under --resume, every checkpoint a cell would continue from is read and checked now (ValueError naming a
    damaged or unfitting one), so no run starts before all of them are known good."""
    if not request.resume:
        return
    for cell in todo:
        if checkpoint_of(cell, request.out) is None and store.checkpoint_path(request.out, cell.id).exists():
            print(f"resume: {store.checkpoint_path(request.out, cell.id)} is of another config: {cell.id} starts over")


# ----------------------------------------------------------------------------- the preview


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str
    lower_bound: bool  # "at least" rather than "about"


def estimate(cells, peak_gflops: float, records: list[dict], probe=None) -> Estimate:
    """The cells' training time. A cell recorded in OUT before (same task, backend, mode, implementation, batch,
    dtype, pack, K) costs its fixed time plus its median step per step. Any other costs at least its FLOPs per step
    at this machine's measured sgemm peak, which no step beats; where that bound alone reaches PROBE_FROM_S and
    ``probe(cell)`` is given (seconds of one measured eager step of the cell's spec), the steps are priced at that
    instead: an estimate, not a bound, and the one that sees per-step overheads the FLOP model cannot."""
    recorded = {}
    for r in records:
        if r.get("status") == "finished" and r.get("timing_mode") == "exclusive":
            recorded[_estimate_key(store.cell_of(r), r["config"].get("batch_size"))] = r
    known, unknown = 0.0, []
    for cell in cells:
        r = recorded.get(_estimate_key(cell.key, cell.spec.batch_size))
        if r is None:
            unknown.append(cell)
        else:
            known += max(0.0, r["wall_s"] - r["median_step_s"] * r["steps_done"]) + r["median_step_s"] * cell.steps
    from_records = f"recorded step times for {len(cells) - len(unknown)} runs" if len(unknown) < len(cells) else ""
    if not unknown:
        return Estimate(known, "from this folder's recorded step times", lower_bound=False)
    if not (math.isfinite(peak_gflops) and peak_gflops > 0):
        return Estimate(math.nan, "the cells run on a cluster whose speed this machine did not measure", True)
    bound = sum(cell.steps * train_step_flops(cell.spec)["total"] / (peak_gflops * 1e9) for cell in unknown)
    if bound < PROBE_FROM_S or probe is None:
        basis = ", ".join(filter(None, ["the FLOP model at the measured sgemm peak", from_records]))
        return Estimate(known + bound, basis, lower_bound=True)
    per_step = {}
    for cell in unknown:
        per_step.setdefault((cell.task.name, cell.spec), probe(cell))
    probed = sum(cell.steps * per_step[(cell.task.name, cell.spec)] for cell in unknown)
    basis = ", ".join(filter(None, [f"a measured eager step of each of the plan's {len(per_step)} models", from_records]))
    return Estimate(known + max(probed, bound), basis, lower_bound=False)


# Above this FLOP bound a plan could take hours (the bound sees no per-step overhead): its steps are measured for the
# preview (a few eager steps per model) before it starts. Below it (the quick suite's bound is a minute or two) the
# bound is printed as it is, and nothing is measured.
PROBE_FROM_S = 600.0


def _estimate_key(key: tuple, batch_size) -> tuple:
    task, backend, mode, _loss, _seed, implementation, k, _threads, dtype, _init, pack = key
    return task, backend, mode, implementation, k, dtype, pack, batch_size


def preview(plan: Plan, peak_gflops: float, probe=None) -> list[str]:
    """The plan in a few lines before anything trains: per task its runs, steps, seeds and configurations, then the
    estimated training time (``estimate``); a last line warns when that reaches LONG_PLAN_S."""
    lines = []
    by_task = {}
    for cell in plan.todo:
        by_task.setdefault(cell.task.name, []).append(cell)
    for name, cells in by_task.items():
        steps = "/".join(map(str, sorted({c.steps for c in cells}, reverse=True)))
        seeds = sorted({c.seed for c in cells})
        seeds = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}..{seeds[-1]}"
        configs = sorted({f"{c.backend} {c.mode}" + ("" if c.spec.d_optimizer.implementation == "spec" else
                                                      f" {c.spec.d_optimizer.implementation}") for c in cells})
        lines.append(f"  {name}: {len(cells)} runs of {steps} steps, {seeds} ({', '.join(configs)})")
    guess = estimate(plan.todo, peak_gflops, store.read_records(plan.request.out), probe)
    if not math.isfinite(guess.seconds):
        lines.append(f"estimated training time: unknown ({guess.basis})")
        return lines
    lines.append(f"estimated training time: {'at least' if guess.lower_bound else 'about'} {duration(guess.seconds)} "
                 f"({guess.basis}; compiles, scoring and evaluation come on top)")
    if guess.seconds >= LONG_PLAN_S:
        lines.append(f"WARNING: this plan trains for {'at least ' if guess.lower_bound else 'about '}"
                     f"{duration(guess.seconds)}. For a run of minutes, use --steps quick (the default) or a smaller "
                     "--steps; Ctrl-C stops it and --resume continues it.")
    return lines


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
