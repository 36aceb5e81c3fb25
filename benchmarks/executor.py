"""Where the cells of a plan run: one after another in this process (``local``, the default), or as Ray tasks on a
cluster (``ray``: an existing one at --ray-address, else a local one started for the command).

Either way this process is the output folder's one writer. A Ray worker trains one cell (cell.train_cell) and
returns its record and history as plain data; the driver stores each result as it arrives (cell.store_results:
history, then the record, atomically, under the folder's lock), so whatever happens to a worker or to the driver,
the store holds whole records only, and --resume runs what is missing. Ray is the scheduler, the queue and the
transport: nothing here schedules, queues or sends anything of its own.

Ray (the optional extra ``.[cluster]``) is imported in this module only, inside the functions that need it, so the
suite installs and runs without it.

Placement on Ray (benchmarks/record.py TIMING_MODES: what a record says about its times):
* timed (the default): a CPU cell asks for as many CPUs as the cluster's largest node has, so it runs alone on a
  node of that size (smaller nodes take no timed cell); a CUDA cell asks for one whole GPU (and one CPU).
* --no-timing: CPU cells are packed, each asking for its --threads (1 when --threads is not given: it then runs
  with the framework's default threads, as the local executor would, so that its numbers are the same: TensorFlow's
  results depend on its thread count). Step times are kept, labelled "packed", and left out of the report's speed
  sections. A CUDA cell still takes a whole GPU: TensorFlow reserves a GPU's memory when it starts.

A CPU worker process runs one cell after another, like the local executor's one process: all cells of a command
ask for the same threads, so the thread pools each framework fixes when it starts fit them all. A CUDA cell runs
in a fresh process (max_calls=1), so that the GPU Ray assigns it is the one it uses. A worker that dies
(killed, out of memory) or a node that disappears: Ray runs the cell again, up to --retries times (max_retries),
and the record says which attempt produced it. A Python exception in a cell is not retried (a cell is
deterministic: it would fail again). A cell that still fails is printed in one line and not recorded; the command
ends with EXIT_CELLS_FAILED and --resume runs it again.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from benchmarks import store, timing
from benchmarks.cell import run_cell, stop_if_interrupted, store_results, train_cell
from common.backend import ModeUnsupportedError, get_backend

EXECUTORS = ("local", "ray")
RETRIES = 2  # default --retries: Ray runs a cell whose worker or node died at most this many more times
# The peak of a run that is not timed: no sgemm is measured (it would be measured on shared cores), so "% of peak"
# is NaN.
NO_PEAK = {"sgemm_gflops": {}, "peak_gflops": math.nan}
# Test hook: "CELL_ID:STEP:ATTEMPTS[,...]" makes the worker of that cell exit (os._exit, as a killed process) after
# STEP steps in each of its first ATTEMPTS attempts. Read on the driver, passed to the workers with the cells.
KILL_ENV = "GAN_SUITE_TEST_KILL_WORKER"
PACKAGES = ("common", "backend_torch", "backend_tf", "backend_jax", "benchmarks")  # shipped to the workers (runtime_env py_modules)
# Each network wait before ray.init: the TCP connection to --ray-address, then the cluster's first answer. ray.init
# itself waits for a port that is open but not Ray's for 20 attempts of ~40 s each (15 minutes, retrying quietly).
CONNECT_TIMEOUT_S = 10.0
# The call that proves a Ray cluster answers: its GCS's cluster id (ray/core/generated/gcs_service.proto), an empty
# request that any Ray version answers and that changes nothing.
GCS_PROBE = "/ray.rpc.NodeInfoGcsService/GetClusterId"


class ClusterError(ValueError):
    """Ray is missing, the cluster cannot be reached, or it cannot run the plan (bad input: exit 2)."""


def timing_mode(executor: str, no_timing: bool) -> str:
    """The record's timing_mode for this command."""
    if not no_timing:
        return "exclusive"
    return "packed" if executor == "ray" else "none"


# ----------------------------------------------------------------------------- local


def run_local(todo, data, options, machine: dict, env: dict) -> tuple[list[dict], list[str]]:
    """The cells one after another in this process: (the records stored, the cells that failed: none here, an
    exception ends the command)."""
    finished = []
    for cell in todo:
        stop_if_interrupted()
        try:
            finished.append(run_cell(cell, data[cell.task.name], options, machine, env).to_json())
        except ModeUnsupportedError as e:
            print(f"skipped {cell.id}: {e}")
    return finished, []


# ----------------------------------------------------------------------------- Ray


@dataclass
class Cluster:
    """This process's connection to a Ray cluster, and what the plan needs to know of it."""
    address: str  # the cluster's GCS address
    node_cpus: list[int]  # CPUs of each alive node
    gpus: int  # GPUs of the whole cluster
    device: str  # "cpu" or "cuda": what --device resolves to on this cluster
    initialized_before: bool = False  # ray.init was called before this command (a test's cluster): leave it up

    def close(self) -> None:
        import ray

        if not self.initialized_before and ray.is_initialized():
            ray.shutdown()  # disconnects; stops the local instance if this command started it


def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("--executor ray needs Ray: pip install -e \".[cluster]\" (ray==2.60.0)") from None
    return ray


def connect(address: str | None, device: str) -> Cluster:
    """Join the cluster at ``address`` (or RAY_ADDRESS), or start a local one when neither is given; ClusterError
    if that fails or the cluster cannot run cells on ``device``. The signal handlers in force before are restored
    afterwards (ray.init installs a SIGTERM handler of its own, which would end the driver without its summary)."""
    ray = import_ray()
    before = ray.is_initialized()
    if not before:
        target = address or os.environ.get("RAY_ADDRESS")
        if target is not None:
            check_reachable(target)
        local = {"include_dashboard": False} if target is None else {}  # a local instance: no dashboard to start
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            # Worker output stays in the cluster's logs (/tmp/ray/session_*/logs): the driver shows one bar.
            ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING, runtime_env=code(), **local)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterError(f"--ray-address {target}: cannot join the Ray cluster ({str(error).splitlines()[0]}); "
                               "allowed: the address `ray start --head` printed, or no --ray-address for a local "
                               "cluster") from None
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in nodes]
    gpus = int(sum(n["Resources"].get("GPU", 0) for n in nodes))
    where = ray.get_runtime_context().gcs_address
    cluster = Cluster(where, node_cpus=node_cpus, gpus=gpus, device="cpu", initialized_before=before)
    if device == "cuda" and gpus == 0:
        cluster.close()
        raise ClusterError(f"--device cuda: the Ray cluster at {where} has no GPU; allowed here: auto, cpu")
    cluster.device = "cuda" if device in ("cuda", "auto") and gpus else "cpu"
    if not node_cpus or max(node_cpus) == 0:
        cluster.close()
        raise ClusterError(f"the Ray cluster at {where} has no node with CPUs to run cells on")
    return cluster


def check_reachable(address: str) -> None:
    """ClusterError, within CONNECT_TIMEOUT_S for each wait, unless a Ray cluster answers at HOST:PORT: ray.init
    waits for a cluster that is not there, or for a port that is open but is not Ray's, for minutes, retrying,
    instead of failing. The TCP connection, then a Ray call (check_speaks_ray). "auto" is resolved as Ray resolves
    it (the cluster this machine last started) and checked alike; ray:// addresses (Ray Client, which gives up by
    itself after 30 s) are left to Ray."""
    if "://" in address:
        return
    if address == "auto":
        address = resolve_auto()
        if address is None:
            return  # none recorded: ray.init says so at once
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r} is invalid; allowed: HOST:PORT (what `ray start --head` "
                           "printed), auto, or a ray:// address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ClusterError(f"--ray-address {address}: no Ray cluster answers there ({error.strerror or error}); "
                           "start one with `ray start --head`, or leave --ray-address out for a local one") from None
    check_speaks_ray(address)


def resolve_auto() -> str | None:
    """The HOST:PORT that ray.init(address="auto") would join (Ray's own lookup), or None if it finds none."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # a private call: if this Ray lacks it or finds nothing, ray.init decides
        return None


def check_speaks_ray(address: str, timeout: float | None = None) -> None:
    """ClusterError unless the Ray cluster's GCS at ``address`` answers a call (GCS_PROBE) within ``timeout``
    seconds (CONNECT_TIMEOUT_S): a port that accepts connections but never speaks, or speaks another protocol,
    is found in seconds, naming the address. gRPC is Ray's own transport (a dependency of Ray)."""
    import grpc

    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    channel = grpc.insecure_channel(address)
    try:
        probe = channel.unary_unary(GCS_PROBE, request_serializer=lambda message: message,
                                    response_deserializer=lambda data: data)
        probe(b"", timeout=timeout)
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return  # a Ray cluster that wants a token: ray.init takes it from the environment, or says so
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            why = f"nothing answered within {timeout:g} s: the port is open, but does not speak Ray's protocol"
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            why = "a gRPC server answered, but it is not a Ray cluster's GCS"
        else:
            why = f"{code.name}: {(error.details() or '').splitlines()[0] if error.details() else 'no details'}"
        raise ClusterError(f"--ray-address {address}: no Ray cluster answers there ({why}); allowed: the address "
                           "`ray start --head` printed, or no --ray-address for a local cluster") from None
    finally:
        channel.close()


def code() -> dict:
    """The runtime_env that ships this suite's own packages to every worker: a node needs the pinned dependencies
    only, and runs the driver's code, never an older checkout of its own. (Ray takes local folders at ray.init
    only: a cluster joined before this command, a test's, runs the code its workers find on their path.)"""
    root = Path(__file__).resolve().parent.parent
    return {"py_modules": [str(root / name) for name in PACKAGES], "excludes": ["__pycache__", "*.pyc"]}


def resources(cell, cluster: Cluster, mode: str) -> dict:
    """What one cell asks Ray for (the module docstring says why)."""
    if cluster.device == "cuda":
        return {"num_gpus": 1, "num_cpus": 1}
    if mode == "exclusive":
        return {"num_cpus": max(cluster.node_cpus)}
    return {"num_cpus": cell.threads or 1}


def slots(cluster: Cluster, need: dict) -> int:
    """How many cells of this size the cluster runs at once (the progress bar's "running" is at most this)."""
    if need.get("num_gpus"):
        return cluster.gpus
    return sum(cpus // need["num_cpus"] for cpus in cluster.node_cpus)


def attempt_number() -> int | None:
    """This Ray task's try, 1 for the first. Ray's public API has no call for it; None if this Ray lacks the
    private one."""
    try:
        import ray

        return int(ray._private.worker.global_worker.core_worker.get_current_task_attempt_number()) + 1
    except (AttributeError, ImportError):
        return None


_peaks: dict[str, dict] = {}  # backend -> this worker process's machine peak, measured once like the local executor


def _work(cell, task_data, options, context: dict) -> dict:
    """On a Ray worker: one cell, start to result. {"result": CellResult} or {"skipped": why}."""
    # Ray sets OMP_NUM_THREADS to the task's CPUs when it is unset; the driver's setting (or its absence) holds
    # instead, so a cell's "framework default" threads are what the local executor would use on this node. (Read
    # when torch starts its thread pool: the first cell of the process decides, and every cell of a command has
    # the same setting.)
    if context["omp_num_threads"] is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = context["omp_num_threads"]
    attempt = attempt_number()
    module = get_backend(cell.backend)
    configured = {cell.backend: module.configure(threads=cell.threads, deterministic=True)}
    if options.timing_mode != "exclusive":
        machine = NO_PEAK
    else:
        machine = _peaks.setdefault(cell.backend, timing.machine_peak([module]))
    env = timing.environment([module], configured, options.device, context["argv"])
    env["git"] = context["git"]  # the code is the driver's (shipped to the workers), so is its commit
    steps, attempts = context["kill"].get(cell.id, (0, 0))
    if (attempt or 1) <= attempts:
        _exit_after(cell.id, steps)
    try:
        result = train_cell(cell, task_data, options, machine, env, out=io.StringIO())
    except ModeUnsupportedError as error:
        return {"skipped": str(error)}
    result.record.attempt = attempt
    return {"result": result}


def _exit_after(cell_id: str, steps: int) -> None:
    """The test hook: this worker process dies, as if killed, once cell ``cell_id`` has run ``steps`` steps."""
    from benchmarks import cell as cell_module

    advance = cell_module.CellLoop.advance

    def advance_then_die(loop):
        going = advance(loop)
        if loop.cell.id == cell_id and loop.done >= steps:
            os._exit(9)
        return going

    cell_module.CellLoop.advance = advance_then_die


def kill_hook() -> dict[str, tuple[int, int]]:
    """KILL_ENV as {cell id: (steps, attempts)}."""
    hook = {}
    for item in filter(None, os.environ.get(KILL_ENV, "").split(",")):
        cell_id, steps, attempts = item.rsplit(":", 2)
        hook[cell_id] = (int(steps), int(attempts))
    return hook


def run_ray(todo, data, options, cluster: Cluster, argv: list[str], retries: int) -> tuple[list[dict], list[str]]:
    """The cells as Ray tasks; each result is stored here as it arrives. Returns (the records stored, one line per
    cell that failed after its retries). On an interrupt the tasks still out are cancelled (their workers killed)
    and Interrupted propagates, every stored record kept."""
    ray = import_ray()
    # A CPU worker process runs cell after cell, as the local executor's one process does (the same threads: every
    # cell of a command asks the same). A GPU cell gets a fresh process: Ray hands each task its GPU through
    # CUDA_VISIBLE_DEVICES, which a process that started CUDA for an earlier cell would no longer honour.
    work = ray.remote(max_calls=1 if cluster.device == "cuda" else 0)(_work)
    context = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "git": timing.git_state(), "argv": list(argv),
               "kill": kill_hook()}
    shared = {name: ray.put(task_data) for name, task_data in data.items()}  # each task's data once, not per cell
    need = resources(todo[0], cluster, options.timing_mode) if todo else {"num_cpus": 1}
    width = max(1, slots(cluster, need))
    if cluster.device == "cpu" and options.timing_mode == "exclusive" and len(set(cluster.node_cpus)) > 1:
        print(f"timed cells ask for {max(cluster.node_cpus)} CPUs each (a whole node of the largest size): the "
              f"smaller nodes ({', '.join(map(str, sorted(set(cluster.node_cpus))[:-1]))} CPUs) take none")
    print(f"ray: {len(todo)} cells on {len(cluster.node_cpus)} node(s) at {cluster.address}, each asking "
          f"{', '.join(f'{k}={v}' for k, v in need.items())}; at most {width} at once ({options.timing_mode} timing)")
    for cell in todo:
        if store.checkpoint_path(options.out, cell.id).exists():
            print(f"resume: {cell.id} starts over on the cluster (a worker reads nothing of the output folder); its "
                  "checkpoint is removed once it is recorded")
    worker_options = dataclasses.replace(options, resume=False)
    pending = {work.options(max_retries=retries, retry_exceptions=False,
                            **resources(cell, cluster, options.timing_mode)).remote(
        cell, shared[cell.task.name], worker_options, context): cell for cell in todo}
    finished, failed = [], []
    bar = tqdm(total=len(todo), desc="cells", unit="cell", dynamic_ncols=True, mininterval=0.5)
    try:
        while pending:
            stop_if_interrupted()
            # Every result ready within half a second, stored in one append: results that arrive while the driver
            # appends wait for the next one, so the store keeps up however many workers deliver.
            ready, _ = interruptible(ray.wait, list(pending), num_returns=len(pending), timeout=0.5)
            done = []
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    outcome = interruptible(ray.get, ref)
                except ray.exceptions.RayError as error:  # the cell's exception, or its worker/node lost
                    failed.append(f"failed {cell.id}: {failure(error)}")
                    tqdm.write(failed[-1])
                else:
                    if "skipped" in outcome:
                        tqdm.write(f"skipped {cell.id}: {outcome['skipped']}")
                    else:
                        done.append((cell.id, outcome["result"]))
            for (cell_id, _), record in zip(done, store_results(options.out, done) if done else []):
                finished.append(record.to_json())
                tqdm.write(f"{cell_id}: {record.outcome.status} on {record.environment.get('host', '?')} in "
                           f"{record.wall_s:.1f} s" + (f" (attempt {record.attempt})" if record.attempt != 1 else ""))
            bar.update(len(ready))
            running = min(len(pending), width)
            bar.set_postfix(done=len(finished), running=running, queued=len(pending) - running, failed=len(failed),
                            refresh=False)
    finally:
        for ref in pending:  # interrupted: the cells still out are not waited for
            ray.cancel(ref, force=True)
        bar.close()
    return finished, failed


def interruptible(call, *args, **kwargs):
    """``call`` (a Ray call that waits in C code): a SIGINT/SIGTERM arriving there runs our handler inside Ray's
    signal check, and its Interrupted comes out as a SystemError; this turns it back into the Interrupted."""
    try:
        return call(*args, **kwargs)
    except SystemError:
        stop_if_interrupted()
        raise


def failure(error) -> str:
    """One line for a failed cell: the cell's own exception, or what happened to its worker or node."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(error)):
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}"
