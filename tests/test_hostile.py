"""The suite as a hostile tester uses it: every class of fault of issue 14, end to end through the command lines
(``python -m benchmarks.run``, ``benchmarks.report``, ``benchmarks.sweep``) in subprocesses, on real files.

Cases that need a process of their own (signals, SIGKILL, two writers, a full disk) run ``python -m ...`` each
(through runpy, so that the sgemm peak can be measured on small matrices).
The others run in one subprocess through ``cli_batch``: one interpreter that calls each command's ``main(argv)``
in turn, as ``python -m`` would, and reports its exit code, its output and any traceback; it imports torch once
instead of once per case, and measures the sgemm peak on 128x128 matrices (the 2048 figure is for real runs).
Every case asserts what the user sees: the exit code and the one ``error:`` line, and what is (not) on disk.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import store
from common import checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
TINY = ["--backend", "torch", "--mode", "eager", "--no-report"]  # with --task parabola/gmm2 and a few steps
PARABOLA = ["--task", "parabola", *TINY]
CELL = "parabola-torch-eager-minimax-s0"

BATCH_DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from benchmarks import timing
    timing.SGEMM_SIZE = 128
    from benchmarks import report, run, sweep
    results = []
    for argv in json.loads(sys.stdin.read()):
        main = {"report": report.main, "sweep": sweep.main}.get(argv[0])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv[1:]) if main else run.main(argv)
            except SystemExit as stop:
                code = stop.code
            except BaseException:
                code = "traceback"
                traceback.print_exc()
        results.append({"argv": argv, "rc": code, "out": out.getvalue(), "err": err.getvalue()})
    sys.stdout.write(json.dumps(results))
""")


def cli_batch(cases: list[list[str]], cache: Path) -> list[dict]:
    """Run each argv through its command's main() in one subprocess: benchmarks.run's, or benchmarks.report's
    (``["report", DIR]``) or benchmarks.sweep's (``["sweep", ...]``). Face images are cached in ``cache``."""
    done = subprocess.run([sys.executable, "-c", BATCH_DRIVER], input=json.dumps(cases), cwd=ROOT,
                          env=dict(ENV, GAN_SUITE_CACHE=str(cache)),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


# ``python -m MODULE ARGV`` exactly (runpy runs the module as __main__), with the sgemm peak measured on 128x128
# matrices: the 2048 measurement takes seconds per process and is for real runs.
AS_MAIN = ("import runpy, sys; from benchmarks import timing; timing.SGEMM_SIZE = 128; "
           "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def command(module: str, argv) -> list[str]:
    return [sys.executable, "-c", AS_MAIN, module, *map(str, argv)]


def cli(*argv, module="benchmarks.run", **kwargs) -> subprocess.CompletedProcess:
    """One real ``python -m <module> ARGV`` process."""
    return subprocess.run(command(module, argv), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
                          **kwargs)


def one_error(stderr: str, after_progress: bool = False) -> str:
    """The single line a refused command prints: the whole of its stderr, or (``after_progress``, a command that
    failed mid-run) the one "error:" line, last, after its progress bars. No traceback either way."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert "Traceback" not in stderr and len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
    assert after_progress or len(lines) == 1, stderr[-3000:]
    return errors[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file() and checkpoint.is_temp_file(p)]


# ----------------------------------------------------------------------------- real files to damage


def mnist_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (120, 28, 28), dtype=np.uint8),
             x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    return path


def one_face(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 70, 3), dtype=np.uint8)).save(folder / "a.jpg")
    return folder


def checkpointed(out: Path, steps: int = 12, at: int = 5) -> Path:
    """A real checkpoint of parabola torch eager seed 0 (a run of ``steps``), saved by the cell loop at step ``at``."""
    from benchmarks import cell
    from benchmarks.cell import Cell, CellLoop, RunOptions
    from common import tasks
    from common.init import init_weights
    from common.stream import Stream
    import backend_torch

    task = tasks.get_task("parabola")
    spec, _ = tasks.configure(task, steps=steps)
    one = Cell(task, "torch", "eager", spec, steps, 0)
    trainer = backend_torch.build(spec, init_weights(spec, 0), device="cpu", mode="eager")
    loop = CellLoop(one, trainer, Stream(spec, task.load().source, 0),
                    RunOptions(out=str(out), checkpoint_every=at), out=open(os.devnull, "w"))
    while loop.done < at:
        loop.advance()
    assert cell.checkpoint_of(one, out)[0] == at
    return store.checkpoint_path(out, CELL)


def rewrite_checkpoint(path: Path, change) -> None:
    bundle = dict(np.load(path, allow_pickle=False))
    change(bundle)
    np.savez(path, **bundle)


def tampered(results: Path, dest: Path, **fields) -> Path:
    """A copy of a results folder whose first record has ``fields`` changed."""
    import shutil

    shutil.copytree(results, dest)
    records = store.read_records(results)
    records[0].update(fields)
    (dest / store.RUNS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    return dest


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A real results folder: parabola, torch eager, 6 steps."""
    out = tmp_path_factory.mktemp("hostile") / "results"
    done = cli(*PARABOLA, "--steps", 6, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


# ----------------------------------------------------------------------------- the one-subprocess classes


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder nothing can be created in: /sys/kernel for root (os.access says "writable" to root, yet the kernel
    refuses), else a folder without write permission (chmod it back to 0o700 when done)."""
    if os.geteuid() == 0 and Path("/sys/kernel").is_dir():
        return Path("/sys/kernel")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def refused_cases(tmp_path: Path, results: Path, unwritable: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, what the one error line must say): real files, damaged or tampered as a user or a crash
    would leave them. argv without --out get tmp_path / "out"."""
    (tmp_path / "file").write_text("x")
    truncated = mnist_npz(tmp_path / "truncated.npz")
    truncated.write_bytes(truncated.read_bytes()[:3000])
    no_test = tmp_path / "no-test"
    no_test.mkdir()
    np.savez(no_test / "mnist.npz", x_train=np.zeros((120, 28, 28), np.uint8))
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (gz / f"{name}.gz").write_bytes(gzip.compress(b"\x00" * 4000)[:-30] + b"\xff" * 30)
    not_utf8 = tmp_path / "not-utf8"
    not_utf8.mkdir()
    (not_utf8 / store.RUNS_FILE).write_bytes(b"\xff\xfe\x00garbage")
    faces = one_face(tmp_path / "one-face")
    ckpt = {name: tmp_path / name for name in ("damaged", "absurd", "shapes", "history")}
    for name, folder in ckpt.items():
        path = checkpointed(folder)
        if name == "damaged":
            path.write_bytes(path.read_bytes()[:5000])
        elif name == "absurd":
            rewrite_checkpoint(path, lambda b: b.update(meta=np.array(json.dumps(
                {**json.loads(str(b["meta"])), "steps_done": 10**15}))))
        elif name == "shapes":
            rewrite_checkpoint(path, lambda b: b.update({"trainer/generator/0": np.zeros((5, 7), np.float32)}))
        else:
            rewrite_checkpoint(path, lambda b: b.update({"history/d_loss": np.zeros(3)}))
    resume = [*PARABOLA, "--steps", "12", "--checkpoint-every", "5", "--resume"]
    escape = tampered(results, tmp_path / "escape", task="../../escaped")
    passwd = tampered(results, tmp_path / "passwd", history="/etc/passwd")
    cases = {  # argv -> what the one line must say
        "steps beyond int64": ([*PARABOLA, "--steps", "9223372036854775808"],
                               "allowed: an integer in 1..9223372036854775807"),
        "history beyond memory": ([*PARABOLA, "--steps", "9223372036854775807"], "alone needs"),
        "batch beyond memory": ([*PARABOLA, "--batch-size", "1000000000000", "--steps", "3"],
                                "more than this machine's"),
        "warm-up longer than the run": ([*PARABOLA, "--steps", "10", "--warmup", "50"],
                                        "--warmup 50 leaves no timed step"),
        "default warm-up, calls of 4": ([*PARABOLA, "--steps", "6", "--steps-per-call", "4"],
                                        "the default warm-up of 5 steps leaves no timed step"),
        "steps per call beyond the steps": ([*PARABOLA, "--steps", "5", "--steps-per-call", "100"],
                                            "--steps-per-call 100 is more than the 5 steps"),
        "checkpoints never due": ([*PARABOLA, "--steps", "10", "--checkpoint-every", "10"],
                                  "would save no checkpoint"),
        "seeds past int64": ([*PARABOLA, "--seed", "9223372036854775807", "--num-seeds", "2"], "past the largest seed"),
        "too many runs": (["--task", "parabola", "gmm2", "--num-seeds", "100000", "--backend", "torch", "--no-report"],
                          "allowed: at most 100000"),
        "threads beyond the CPUs": ([*PARABOLA, "--threads", "100000"], "logical CPUs"),
        "lr overflows to inf": ([*PARABOLA, "--lr", "1e309"], "a finite number > 0"),
        "lr overflows float32": ([*PARABOLA, "--lr", "1e39"], "allowed: a number in 1.18e-38..3.4e+38 (float32's normal"),
        "lr subnormal in float32": ([*PARABOLA, "--lr", "1e-45"], "float32's normal range"),
        "lr overflowing Adam's first step": ([*PARABOLA, "--lr", "3e38"], "after Adam's bias correction"),
        "empty --out": ([*PARABOLA, "--out", ""], "output folder '' is invalid"),
        "--out not writable": ([*PARABOLA, "--steps", "3", "--out", str(unwritable)], "is not writable"),
        "--out is a file": ([*PARABOLA, "--out", str(tmp_path / "file")], "is a file"),
        "--out below a file": ([*PARABOLA, "--out", str(tmp_path / "file" / "x")], "cannot be created"),
        "truncated mnist.npz": (["--task", "mnist", *TINY, "--steps", "3", "--data-dir", str(truncated)],
                                "not a readable .npz file (BadZipFile"),
        "mnist.npz without x_test": (["--task", "mnist", *TINY, "--steps", "3", "--data-dir", str(no_test)],
                                     "lacks x_test"),
        "damaged gzip IDX": (["--task", "mnist", *TINY, "--steps", "3", "--data-dir", str(gz)],
                             "cannot read an IDX file"),
        "runs.jsonl not UTF-8": ([*PARABOLA, "--steps", "3", "--out", str(not_utf8)], "runs.jsonl cannot be read"),
        "damaged checkpoint": ([*resume, "--out", str(ckpt["damaged"])], "not a readable .npz file"),
        "absurd checkpoint step": ([*resume, "--out", str(ckpt["absurd"])],
                                   "steps_done 1000000000000000 is invalid for a run of 12 steps"),
        "checkpoint of other shapes": ([*resume, "--out", str(ckpt["shapes"])], "does not fit this GAN: generator/0"),
        "checkpoint history of another length": ([*resume, "--out", str(ckpt["history"])], "its history has d_loss"),
        "tampered task (run)": ([*PARABOLA, "--steps", "3", "--out", str(escape)], "task '../../escaped' is invalid"),
        "tampered task (report)": (["report", str(escape)], "task '../../escaped' is invalid"),
        "tampered history path (report)": (["report", str(passwd)], "history '/etc/passwd' is invalid"),
        "empty report folder": (["report", ""], "DIR '' is invalid"),
        "a task named twice": (["--task", "parabola", "parabola", *TINY], "--task names parabola more than once"),
        "--data-dir no task reads": ([*PARABOLA, "--data-dir", str(tmp_path)], "--data-dir is read by none of"),
        "face folder of one image": (["--task", "faces", *TINY, "--data-dir", str(faces), "--batch-size", "1",
                                      "--steps", "2"], "faces: 1 real example(s) to judge the samples against"),
        "sweep --seeds": (["--sweep", "batch", "--task", "parabola", "--num-seeds", "3"], "cannot honour --num-seeds"),
        "sweep --resume": (["--sweep", "batch", "--task", "parabola", "--resume"], "cannot honour --resume"),
        "sweep --batch-size": (["--sweep", "batch", "--task", "parabola", "--batch-size", "8"],
                               "--batch-size is what a batch sweep varies"),
        "sweep unsupported mode": (["--sweep", "width", "--task", "parabola", "--backend", "torch", "--mode", "xla"],
                                   "mode 'xla' is invalid for backend 'torch'"),
        "sweep --data-dir": (["--sweep", "batch", "--task", "mnist-small", "--data-dir", str(truncated),
                              "--backend", "torch"], "not a readable .npz file"),
        "sweep.py batch of 1.5": (["sweep", "--sweep", "batch", "--task", "parabola", "--values", "1.5"],
                                  "batch size 1.5 is invalid; allowed: an integer >= 1"),
        "sweep.py no steps": (["sweep", "--sweep", "width", "--task", "parabola", "--steps", "0"],
                              "allowed: an integer in 1.."),
    }
    for argv, _ in cases.values():
        if argv[0] != "report" and "--out" not in argv:
            argv += ["--out", str(tmp_path / "out")]
    return cases


def test_refused_inputs_are_one_line_exit_2_and_write_nothing(tmp_path, results):
    """Numbers checked against their use, output folders probed, corrupt and tampered files, misleading
    successes: each refused with one line and exit code 2 before anything is written."""
    unwritable = unwritable_folder(tmp_path)
    cases = refused_cases(tmp_path, results, unwritable)
    cache = tmp_path / "cache"  # the face cache: data decoded once, not output (the one-image folder fills it)
    folders = {name: Path(argv[argv.index("--out") + 1]) for name, (argv, _) in cases.items() if "--out" in argv}
    before = {name: files_under(folder) for name, folder in folders.items() if folder.is_relative_to(tmp_path)}
    outside = [f for f in files_under(tmp_path.parent) if not (tmp_path.parent / f).is_relative_to(cache)]
    try:
        answers = cli_batch([argv for argv, _ in cases.values()], cache)
    finally:
        if unwritable.is_relative_to(tmp_path):
            unwritable.chmod(0o700)
    for (name, (argv, expected)), answer in zip(cases.items(), answers):
        assert answer["rc"] == 2, (name, answer)
        line = one_error(answer["err"])
        assert expected in line, (name, line)
        assert "written" not in answer["out"], (name, answer["out"])
        if name in before:
            assert files_under(folders[name]) == before[name], name  # nothing written
    assert not (tmp_path / "out").exists()  # no refused command created its folder
    # Nothing written anywhere, nothing escaped its folder.
    assert [f for f in files_under(tmp_path.parent) if not (tmp_path.parent / f).is_relative_to(cache)] == outside


def test_truths_told_where_a_success_used_to_mislead(tmp_path, results):
    """Runs that finish but must say what went wrong, and a sweep that honours its flags and keeps other rows."""
    cache = tmp_path / "cache"
    copied = tampered(results, tmp_path / "damaged-history")
    history = copied / store.read_records(copied)[0]["history"]
    history.write_bytes(history.read_bytes()[:2000])
    (copied / store.SWEEP_FILE).write_bytes(b"\x00\xffnot a table")
    cases = [
        # lr 1000: the weights stay finite (~5e3) but G's samples reach ~6e9, inf as float16
        ["--task", "parabola", *TINY, "--steps", "10", "--lr", "1000", "--out", str(tmp_path / "samples")],
        # least squares at lr 3e4: the weights grow ~3e4 a step, past 1e6 (WEIGHT_LIMIT) by step 40, while every
        # loss (~1e34) and sample stays finite
        ["--task", "ring8", *TINY, "--loss", "least-squares", "--steps", "40", "--lr", "30000",
         "--out", str(tmp_path / "weights")],
        ["--sweep", "width", "--task", "parabola", "--backend", "torch", "--mode", "eager", "--steps", "2",
         "--warmup", "1", "--out", str(tmp_path / "sweep")],
        ["--sweep", "batch", "--task", "parabola", "--backend", "torch", "--mode", "eager", "--steps", "2",
         "--warmup", "1", "--out", str(tmp_path / "sweep")],
        ["report", str(copied)],
    ]
    answers = cli_batch(cases, cache)
    for answer in answers:
        assert answer["rc"] == 0 and "Traceback" not in answer["err"], answer
    [samples] = store.read_records(tmp_path / "samples")
    assert samples["status"] == "diverged" and "samples_not_finite" in samples["flags"] and samples["metrics"] == {}
    [weights] = store.read_records(tmp_path / "weights")
    assert weights["status"] == "diverged" and "weights_exploded" in weights["flags"]
    sweep = pd.read_csv(tmp_path / "sweep" / store.SWEEP_FILE)
    assert "written: 5 points" in answers[2]["out"] and "written: 7 points" in answers[3]["out"]
    assert sorted(set(sweep["sweep"])) == ["batch", "width"] and len(sweep) == 12  # the width rows were kept
    assert set(sweep["task"]) == {"parabola"}
    md = (copied / "report.md").read_text()
    assert "history missing or unreadable, figures skipped" in md and "not a readable .npz file" in md
    assert f"{store.SWEEP_FILE} cannot be read" in md


# ----------------------------------------------------------------------------- classes that need real processes


def popen(*argv, log: Path) -> subprocess.Popen:
    sink = open(log, "w")  # a file, not a pipe: a full pipe would stall the run
    return subprocess.Popen(command("benchmarks.run", argv), cwd=ROOT, env=ENV, stdout=sink, stderr=subprocess.STDOUT,
                            text=True)


def wait_for(condition, process, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its marker"
        time.sleep(0.02)


def test_a_second_writer_is_refused_and_the_first_loses_nothing(tmp_path):
    """Two real processes on one --out: the second is refused at once (exit 75, nothing written); the first, held
    still by SIGSTOP while the second tries (so the test does not depend on timing), finishes every run."""
    out = tmp_path / "out"
    first = popen(*PARABOLA, "--steps", 12, "--num-seeds", 2, "--checkpoint-every", 3, "--out", out, log=tmp_path / "1.log")
    wait_for(lambda: store.checkpoint_path(out, CELL).exists(), first)  # it holds the lock and is mid-run
    first.send_signal(signal.SIGSTOP)
    try:
        before = files_under(out)
        second = cli(*PARABOLA, "--steps", 3, "--out", out)
        after = files_under(out)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 75
    assert "is in use by another run" in one_error(second.stderr)
    assert after == before  # the refused process wrote nothing
    assert first.wait(timeout=600) == 0, (tmp_path / "1.log").read_text()[-3000:]
    records = store.read_records(out)
    assert [r["seed"] for r in records] == [0, 1] and len(pd.read_csv(out / store.CSV_FILE)) == 2


APPENDER = textwrap.dedent("""
    import json, pathlib, sys, time
    from benchmarks import store
    out, name, n = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    record = json.loads(sys.argv[4])
    print("ready", flush=True)
    while not (out / "go").exists():
        time.sleep(0.005)
    for i in range(n):
        store.append_record(out, {**record, "run_id": f"{name}-{i}", "seed": i})
""")


def test_processes_appending_at_once_lose_no_record(tmp_path):
    """What a driver storing workers' records does (issue 13), by two real processes at once: the append is
    read-all-rewrite-all, so without the OS lock around it records are lost; with it, every one is kept."""
    from tests.test_store import record

    out = tmp_path / "out"
    out.mkdir()
    appenders = [subprocess.Popen([sys.executable, "-c", APPENDER, str(out), name, "15", json.dumps(record())],
                                  cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    for process in appenders:
        assert process.stdout.readline().strip() == "ready"
    (out / "go").write_text("")
    for process in appenders:
        assert process.wait(timeout=300) == 0
    ids = [r["run_id"] for r in store.read_records(out)]
    assert sorted(ids) == sorted(f"{name}-{i}" for name in "ab" for i in range(15))
    assert sorted(pd.read_csv(out / store.CSV_FILE)["run_id"]) == sorted(ids)


def test_after_a_sigkill_resume_sweeps_leftovers_and_repairs_the_csv(tmp_path, results):
    """SIGKILL: the OS releases the lock, and --resume removes what a kill mid-write leaves (temp files, a history
    without its record) and rebuilds a results.csv a row short; every run is then there once."""
    out = tmp_path / "out"
    killed = popen(*PARABOLA, "--steps", 20, "--num-seeds", 2, "--checkpoint-every", 5, "--out", out,
                   log=tmp_path / "killed.log")
    seed_1 = store.checkpoint_path(out, "parabola-torch-eager-minimax-s1")
    wait_for(seed_1.exists, killed)
    killed.kill()
    killed.wait(timeout=60)
    recorded = [r["seed"] for r in store.read_records(out)]
    assert recorded in ([0], [0, 1])
    # What a SIGKILL at a less lucky moment leaves: a half-written file, a history without its record, a CSV
    # written before its last row (the kill landed between runs.jsonl and results.csv).
    suffix = checkpoint.TEMP_SUFFIX
    leftovers = [out / f".runs.jsonl.k1ll3d{suffix}", out / store.HISTORY_DIR / f".x.npz.k1ll3d{suffix}"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    orphan = out / store.write_history(out, "parabola-torch-eager-minimax-s1-orphan",
                                       store.read_history(results, store.read_records(results)[0]["history"]))
    users = [out / ".my-notes.tmp", out / store.HISTORY_DIR / "mine.npz"]  # the user's: never removed
    for path in users:
        path.write_bytes(b"the user's")
    pd.read_csv(out / store.CSV_FILE).iloc[:0].to_csv(out / store.CSV_FILE, index=False)
    done = cli(*PARABOLA, "--steps", 20, "--num-seeds", 2, "--checkpoint-every", 5, "--out", out, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "repaired:" in done.stdout and "0 rows for" in done.stdout
    for path in [*leftovers, orphan]:
        assert f"resume: removed {path}" in done.stdout and not path.exists()
    assert all(path.exists() for path in users)
    assert [r["seed"] for r in store.read_records(out)] == [0, 1]
    assert [int(s) for s in pd.read_csv(out / store.CSV_FILE)["seed"]] == [0, 1]
    assert temp_files(out) == []


def file_size_limit(limit: int):
    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


def test_a_write_error_mid_run_is_one_line_exit_74_and_leaves_no_temp_file(tmp_path):
    """A real failing write of the OS, for any user: RLIMIT_FSIZE makes the kernel refuse a file past 64 kB (EFBIG),
    which the first run's history is; runs.jsonl and the probe fit."""
    out = tmp_path / "out"
    done = cli(*PARABOLA, "--steps", 3, "--out", out, preexec_fn=file_size_limit(64 * 1024))
    assert done.returncode == 74, done.stderr[-3000:]
    line = one_error(done.stderr, after_progress=True)
    assert "writing failed" in line and "File too large" in line and f"{CELL}-" in line and "--resume" in line
    assert store.read_records(out) == [] and temp_files(out) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 kB tmpfs: a real full disk (ENOSPC). Needs root; skipped where mount is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_keeps_finished_runs_and_resume_completes(tiny_disk):
    out = tiny_disk / "out"
    full = cli(*PARABOLA, "--steps", 3, "--num-seeds", 2, "--out", out)  # ~130 kB a run of 3 steps: room for one, not two
    assert full.returncode == 74, full.stderr[-3000:]
    assert "No space left on device" in one_error(full.stderr, after_progress=True)
    assert [r["seed"] for r in store.read_records(out)] == [0]
    assert len(pd.read_csv(out / store.CSV_FILE)) == 1 and temp_files(out) == []
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_disk)], check=True)  # space is freed
    done = cli(*PARABOLA, "--steps", 3, "--num-seeds", 2, "--out", out, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["seed"] for r in store.read_records(out)] == [0, 1]
    # The report on a full disk: one line, exit 74, no half-written report and no temp file.
    free = os.statvfs(tiny_disk)
    (tiny_disk / "filler").write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 8192))
    report = cli(out, module="benchmarks.report")
    assert report.returncode == 74 and "writing the report failed" in one_error(report.stderr)
    assert not (out / "report.md").exists() and not (out / "report.html").exists() and temp_files(out) == []
    # A disk already full is found by the write probe, before any run: exit 2, nothing created.
    free = os.statvfs(tiny_disk)
    (tiny_disk / "more").write_bytes(b"\0" * (free.f_bavail * free.f_frsize))
    probed = cli(*PARABOLA, "--steps", 3, "--out", tiny_disk / "new")
    assert probed.returncode == 2 and "is not writable (No space left on device)" in one_error(probed.stderr)
    assert not (tiny_disk / "new").exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt itself
def test_an_interrupt_swallowed_during_the_report_still_ends_the_command(results, tmp_path, monkeypatch):
    """Ctrl-C that lands in a callback (here a finalizer; matplotlib's and PIL's swallow alike) is printed and
    dropped by Python; the commands check again after the report and exit 130 instead of 0."""
    import shutil

    from benchmarks import report, run, timing

    def swallowed_interrupt(*args, **kwargs):
        class Finalizer:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs here, inside __del__, which swallows what it raises
                    pass
        Finalizer()

    monkeypatch.setattr(report, "speed_section", swallowed_interrupt)
    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)
    out = shutil.copytree(results, tmp_path / "copy")
    assert report.main([str(out)]) == 130
    assert run.main([*PARABOLA[:-1], "--steps", "3", "--out", str(tmp_path / "run")]) == 130
    assert len(store.read_records(tmp_path / "run")) == 1  # the run is recorded; only the command's end changed
    from benchmarks import cell
    assert cell._pending_signal == []  # and the interrupt ended with its command: the next one is not stopped


def test_figures_are_plain_names_inside_the_figures_folder(tmp_path):
    """The report's second line of defence, behind the registry check of every record read."""
    from benchmarks.report import FigureFolder

    figures = FigureFolder(tmp_path / "figures")
    assert figures / "parabola-losses.png" == tmp_path / "figures" / "parabola-losses.png"
    for name in ("../../escaped-losses.png", "/etc/x-losses.png", "a/b.png", ".."):
        with pytest.raises(ValueError, match="would leave"):
            figures / name


@pytest.mark.parametrize("module", ["benchmarks.run", "benchmarks"])
@pytest.mark.parametrize("after_s", [0.3, 0.8])
def test_ctrl_c_while_starting_is_one_line_and_130(tmp_path, module, after_s):
    """Ctrl-C while the command's libraries still import (or just after, in main's own handlers): exit 130 with a
    line that says so, never a KeyboardInterrupt traceback, and nothing written. (The interpreter's own start-up,
    its first few tens of milliseconds, comes before any line of the suite's and is out of its reach.)"""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", module, "--task", "parabola", "--steps", "100000", "--backend",
                             "both", "--no-report", "--out", str(out)], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err, err
    assert not (out / "runs.jsonl").exists()


@pytest.mark.parametrize("folder", ["histories", "checkpoints", "figures"])
def test_a_symlinked_folder_inside_out_is_refused_before_anything_is_written(tmp_path, folder):
    """The inside-`--out` check followed the path text: with OUT/histories a symlink to elsewhere, histories were
    written there. Now a folder the suite writes into that is a link is refused up front (exit 2, one line) by the
    run and by the report, and nothing is written on either side of the link."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / folder).symlink_to(elsewhere, target_is_directory=True)
    done = cli(*PARABOLA, "--steps", 3, "--out", out)
    assert done.returncode == 2 and "is a link to" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(elsewhere.iterdir()) == [] and not (out / store.RUNS_FILE).exists()
    with pytest.raises(ValueError, match="is a link to|leads to"):
        store.inside(out, f"{folder}/x.npz") if folder != "figures" else store.check_subfolders(out)


# ----------------------------------------------------------------------------- issue 28, classes 1, 2, 4, 7, 9


def test_a_runs_jsonl_line_is_refused_naming_file_line_and_field(tmp_path, capsys):
    """Issue 28 class 2: every record read is checked against the record's schema (benchmarks/record.py) before
    any code uses it. Deep nesting, a list or object where a config value belongs, an integer beyond int64 (or of
    more digits than Python reads), a missing field and a field of another type used to surface as RecursionError,
    TypeError (unhashable, in the grouping), an error naming no file, or KeyError/TypeError in the report. Each is
    now one ValueError naming the file, the line and the field; the report and compare_runs exit 2 with one line."""
    import importlib

    from benchmarks import report
    from tests.test_store import record

    sys.path.insert(0, str(ROOT / "scripts"))
    compare_runs = importlib.import_module("compare_runs")
    good = record(seed=1)
    cases = {  # the bad second line -> what the message must name
        "deep nesting": ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nests deeper"),
        "nesting within a field": (json.dumps(record(environment=json.loads('{"a": ' * 20 + "1" + "}" * 20))),
                                   "field environment.a.a.a.a"),
        "a list as a config value": (json.dumps(record(config={**good["config"], "optimizer": ["spec"]})),
                                     "field config.optimizer ['spec'] is invalid; allowed: a string"),
        "an object as a config value": (json.dumps(record(config={**good["config"], "my": {"x": 1}})),
                                        "field config.my"),
        "a huge integer": (json.dumps(record()).replace('"seed": 0', '"seed": ' + "9" * 5000), "beyond int64"),
        "an integer beyond int64": (json.dumps(record(steps_done=2**64)), "field steps_done holds the integer"),
        "no steps": (json.dumps({k: v for k, v in record().items() if k != "steps"}), "field steps is missing"),
        "steps_done a string": (json.dumps(record(steps_done="10")), "field steps_done '10' is invalid"),
        "a metric a string": (json.dumps(record(metrics={"w1": "0.5"})), "field metrics.w1 '0.5' is invalid"),
        "an unknown init": (json.dumps(record(init="seed+x")), "init 'seed+x' is invalid"),
    }
    for name, (line, expected) in cases.items():
        out = tmp_path / name.replace(" ", "-")
        out.mkdir()
        (out / store.RUNS_FILE).write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(ValueError) as caught:
            store.read_records(out)
        assert f"{out / store.RUNS_FILE} line 2" in str(caught.value) and expected in str(caught.value), name
        for main in (report.main, compare_runs.main):
            assert main([str(out)] + ([str(out)] if main is compare_runs.main else [])) == 2, name
            line = one_error(capsys.readouterr().err)
            assert f"{out / store.RUNS_FILE} line 2" in line and expected in line, (name, line)
        assert sorted(p.name for p in out.iterdir()) == [store.RUNS_FILE], name  # nothing written


def test_paths_that_are_not_utf8_are_refused_up_front_and_face_file_names_read_as_bytes(tmp_path, capsys,
                                                                                          monkeypatch):
    """Issue 28 class 1: a legal POSIX name that is not UTF-8 (here Latin-1 'café') in --out, --data-dir or
    --tensorboard used to train, record the run in runs.jsonl and then end in a UnicodeEncodeError traceback from
    the CSV writer (results.csv a run short), and one among a face folder's files in one from the cache key. Now
    every path that is written into a record, the CSV or the report is refused before anything runs (exit 2, one
    line naming the flag and the path's bytes, nothing created), a relative --out in such a working folder and
    the report's and the sweep's folders too; a face folder's file names, which reach no text file, are read as
    the bytes they are."""
    from PIL import Image

    from benchmarks import report, run, sweep, timing
    from common import data

    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)
    monkeypatch.setenv("GAN_SUITE_CACHE", str(tmp_path / "cache"))
    latin1 = os.fsdecode(b"caf\xe9")
    shown = "caf\\xe9"

    def faces(folder: Path, names) -> Path:
        folder.mkdir()
        for i, name in enumerate(names):
            Image.fromarray(np.full((70, 70, 3), 40 * i, np.uint8)).save(folder / name)
        return folder

    images, info = data.load_face_folder(faces(tmp_path / "faces", ["a.png", "b.png", latin1 + ".png"]))
    assert len(images) == 3 and info.notice is None  # the Latin-1 name decoded like the others
    bad_folder = faces(tmp_path / latin1, ["a.png", "b.png", "c.png"])
    with pytest.raises(data.DataError, match=f"face folder '.*{re.escape(shown)}' is not UTF-8 text"):
        data.load_face_folder(bad_folder)
    records_there = tmp_path / (latin1 + "-results")
    store.append_record(records_there, __import__("tests.test_store", fromlist=["record"]).record())
    before = files_under(records_there)
    cases = [  # (the command's main, argv, what the one line names)
        (run.main, [*PARABOLA, "--steps", "3", "--out", str(tmp_path / latin1 / "out")], "--out"),
        (run.main, [*PARABOLA, "--steps", "3", f"--out={tmp_path / latin1 / 'out'}"], "--out"),
        (run.main, ["--task", "faces", *TINY, "--steps", "2", "--batch-size", "2", "--data-dir", str(bad_folder),
                    "--out", str(tmp_path / "out")], "--data-dir"),
        (run.main, [*PARABOLA, "--steps", "3", "--tensorboard", str(tmp_path / latin1 / "tb"),
                    "--out", str(tmp_path / "out")], "--tensorboard"),
        (report.main, [str(records_there)], "DIR"),
        (sweep.main, ["--sweep", "batch", "--task", "parabola", "--backend", "torch", "--mode", "eager", "--values",
                      "8", "--steps", "1", "--warmup", "0", "--out", str(tmp_path / latin1 / "sweep")],
         "output folder"),
    ]
    for main, argv, names in cases:
        assert main(argv) == 2, argv
        line = one_error(capsys.readouterr().err)
        assert line.startswith(f"error: {names} '") and shown in line and "is not UTF-8 text" in line, line
    monkeypatch.chdir(tmp_path / latin1)  # a relative --out is inside the working folder
    assert run.main([*PARABOLA, "--steps", "3", "--out", "results"]) == 2
    assert f"output folder '{tmp_path}/{shown}/results' is not UTF-8" in one_error(capsys.readouterr().err)
    assert sorted(p.name for p in (tmp_path / latin1).iterdir()) == ["a.png", "b.png", "c.png"]  # nothing created
    assert not (tmp_path / "out").exists() and files_under(records_there) == before


def test_a_checkpoint_is_checked_value_by_value_when_read_and_when_saved(tmp_path, capsys, monkeypatch):
    """Issue 28 class 4: a checkpoint whose values no run that has not diverged holds used to resume: a negative
    optimiser step count ended in a complex-number traceback, NaN in the stored losses resumed and ended "finished"
    with NaN losses, NaN or 1e30 weights resumed and ended "diverged". Each is now refused (exit 2, one line naming
    the file and the array); and the same test applied when saving means the suite never writes such a
    checkpoint: a state that turned NaN between two checks is not saved, the previous checkpoint stays."""
    from benchmarks import cell, run, timing
    from benchmarks.cell import Cell, CellLoop, RunOptions
    from common import tasks
    from common.init import init_weights
    from common.stream import Stream
    import backend_torch

    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)
    corruptions = {  # bundle key -> (new value from the old, what the line names)
        "trainer/opt/discriminator/t": (lambda v: np.array(-1, np.int64), "opt/discriminator/t is -1, not the 5"),
        "trainer/opt/generator/t": (lambda v: v + 1, "opt/generator/t is 6"),
        "history/d_loss": (lambda v: np.where(np.arange(len(v)) == 2, np.nan, v), "its history has d_loss nan"),
        "trainer/generator/0": (lambda v: np.full_like(v, np.nan), "generator/0 holds NaN or infinity"),
        "trainer/discriminator/1": (lambda v: np.full_like(v, 1e30), "discriminator/1 holds 1e+30, beyond the weight"),
        "trainer/opt/generator/v/0": (lambda v: -np.ones_like(v), "opt/generator/v/0 holds -1, a negative second"),
        "history/step_time": (lambda v: -v, "its history has step_time -"),
    }
    template = checkpointed(tmp_path / "template")
    for key, (change, expected) in corruptions.items():
        out = tmp_path / key.replace("/", "-")
        __import__("shutil").copytree(tmp_path / "template", out)
        rewrite_checkpoint(store.checkpoint_path(out, CELL), lambda b: b.update({key: change(b[key])}))
        before = files_under(out)
        assert run.main([*PARABOLA, "--steps", "12", "--checkpoint-every", "5", "--resume", "--out", str(out)]) == 2
        line = one_error(capsys.readouterr().err)
        assert f"checkpoint {store.checkpoint_path(out, CELL)} is corrupt: {expected}" in line, (key, line)
        assert files_under(out) == before, key
    assert template.exists()
    # Saving: the second moments turned negative before step 10's update, whose losses are still finite; the
    # state after it holds NaN, so the checkpoint of step 10 is not written and step 5's stays.
    task = tasks.get_task("parabola")
    spec, _ = tasks.configure(task, steps=12)
    one = Cell(task, "torch", "eager", spec, 12, 0)
    trainer = backend_torch.build(spec, init_weights(spec, 0), device="cpu", mode="eager")
    log = io.StringIO()
    loop = CellLoop(one, trainer, Stream(spec, task.load().source, 0),
                    RunOptions(out=str(tmp_path / "saving"), checkpoint_every=5), out=log)
    while loop.done < 9:
        loop.advance()
    state = trainer.state()
    trainer.load_state({k: -1e3 * np.abs(v) - 1e3 if "/v/" in k else v for k, v in state.items()})
    loop.advance()
    assert loop.done == 10 and loop.status == "finished" and "no checkpoint saved" in log.getvalue(), log.getvalue()
    assert cell.checkpoint_of(one, tmp_path / "saving")[0] == 5


def test_output_targets_are_probed_before_the_first_step(tmp_path, capsys, monkeypatch):
    """Issue 28 class 7 (and results.csv as a folder): --tensorboard where nothing can be written (as root,
    /sys/kernel, which os.access calls writable) used to be found after training, exit 74; a file the suite writes
    in --out that stands there as a folder (results.csv) likewise. Both are now refused before the first step (exit
    2, one line, nothing written); a face cache folder that cannot be written is one DataError naming it. And
    --resume --tensorboard writes the events of the runs recorded before it, which it used to leave out (it wrote
    only the cells it ran)."""
    from benchmarks import run, timing
    from common import data

    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)
    unwritable = unwritable_folder(tmp_path)
    out = tmp_path / "out"
    faces = one_face(tmp_path / "faces")
    try:
        assert run.main([*PARABOLA, "--steps", "3", "--out", str(out), "--tensorboard", str(unwritable / "tb")]) == 2
        with pytest.raises(data.DataError, match="face cache folder .* cannot be written"):  # checked inputs' writes
            data.load_face_folder(faces, cache_dir=unwritable / "cache")
    finally:
        if unwritable.is_relative_to(tmp_path):
            unwritable.chmod(0o700)
    line = one_error(capsys.readouterr().err)
    assert f"--tensorboard folder '{unwritable / 'tb'}'" in line and "choose another with --tensorboard" in line, line
    assert not out.exists()
    (out / store.CSV_FILE).mkdir(parents=True)
    assert run.main([*PARABOLA, "--steps", "3", "--out", str(out)]) == 2
    line = one_error(capsys.readouterr().err)
    assert f"{out / store.CSV_FILE}' is a folder, where the suite writes its own {store.CSV_FILE}" in line, line
    assert files_under(out) == [store.CSV_FILE]
    (out / store.CSV_FILE).rmdir()
    assert run.main([*PARABOLA, "--steps", "3", "--out", str(out)]) == 0
    [record] = store.read_records(out)
    board = tmp_path / "board"
    assert run.main([*PARABOLA, "--steps", "3", "--out", str(out), "--resume", "--tensorboard", str(board)]) == 0
    assert "0 runs to do (1 already in" in capsys.readouterr().out
    assert [p.name.rsplit(".", 1)[-1] for p in board.rglob("events.out.tfevents.*")] == [record["run_id"]]


def silent_server() -> tuple[str, socket.socket]:
    """HOST:PORT of a local socket that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(server.accept()) for _ in range(16)], daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}", server


def test_a_ray_address_that_accepts_but_never_answers_is_refused_in_seconds_naming_it(tmp_path, capsys,
                                                                                       monkeypatch):
    """Issue 28 class 9: --ray-address at a port that is open but is not Ray's used to hang (ray.init retries for
    about 15 minutes without a word). Every wait before ray.init now has a timeout (executor.CONNECT_TIMEOUT_S,
    set to 2 s here): the connection, then a Ray call to the cluster's GCS; the error names the address (exit 2,
    one line, nothing written)."""
    pytest.importorskip("ray")
    from benchmarks import executor, run

    monkeypatch.setattr(executor, "CONNECT_TIMEOUT_S", 2.0)
    address, server = silent_server()
    outcome = {}

    def join():
        try:
            executor.connect(address, "cpu")
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=join, daemon=True)  # a thread: on a hang the test fails instead of hanging
    started = time.monotonic()
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "connect() was still waiting after 60 s"
    assert time.monotonic() - started < 30
    error = outcome.get("error")
    assert isinstance(error, executor.ClusterError) and f"--ray-address {address}: no Ray cluster answers" in str(
        error) and "nothing answered within 2 s" in str(error), error
    out = tmp_path / "out"
    assert run.main([*PARABOLA, "--steps", "3", "--executor", "ray", "--ray-address", address, "--out", str(out)]) == 2
    assert f"--ray-address {address}: no Ray cluster answers" in one_error(capsys.readouterr().err)
    assert not out.exists()
    server.close()


def test_the_mnist_download_has_a_deadline_as_a_whole(tmp_path, monkeypatch):
    """Issue 28 class 9, the other network wait: urllib's timeout bounds each wait for the server, so a server that
    sends a byte every second kept the MNIST download going for ever. The download has a deadline as a whole
    (data.DOWNLOAD_DEADLINE_S, 1 s here); past it, nothing is written and the error names the URL."""
    import http.server

    from common import data

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(11 * 2**20))
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.2)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/mnist.npz"
    monkeypatch.setattr(data, "MNIST_URL", url)
    monkeypatch.setattr(data, "DOWNLOAD_DEADLINE_S", 1.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=re.escape(url)):
        data.download_mnist(tmp_path / "mnist.npz")
    assert time.monotonic() - started < 4 and list(tmp_path.iterdir()) == []
    server.shutdown()


# ----------------------------------------------------------------------------- issue 28, also found


def test_compare_runs_finds_a_resumed_run_the_same_as_a_straight_one(tmp_path, capsys, monkeypatch):
    """scripts/compare_runs.py compared resumed_from_step, timed_steps and the history's timed steps, which a run
    resumed from a checkpoint changes (it warms up again) while computing the same: it exited 1 for every resumed
    run. Now only what a run computes is compared; a real difference is still found."""
    import importlib

    from benchmarks import run, timing

    sys.path.insert(0, str(ROOT / "scripts"))
    compare_runs = importlib.import_module("compare_runs")
    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run.main([*PARABOLA, "--steps", "12", "--out", str(straight)]) == 0
    checkpointed(resumed)
    assert run.main([*PARABOLA, "--steps", "12", "--checkpoint-every", "5", "--resume", "--out", str(resumed)]) == 0
    assert store.read_records(resumed)[0]["resumed_from_step"] == 5
    capsys.readouterr()
    assert compare_runs.main([str(straight), str(resumed)]) == 0, capsys.readouterr().out
    [record] = store.read_records(resumed)
    (resumed / store.RUNS_FILE).write_text(json.dumps({**record, "steps_done": 11}) + "\n")
    assert compare_runs.main([str(straight), str(resumed)]) == 1
    assert "steps_done 12 != 11" in capsys.readouterr().out


def test_a_face_folder_refused_for_too_few_images_leaves_no_cache(tmp_path):
    """The face decode cache was written before the folder was refused (one image: too few to judge samples
    against). The count is now checked on the decoded temp file, before it becomes the cache."""
    from common import data, tasks

    folder = one_face(tmp_path / "one-face")
    cache = tmp_path / "cache"
    with pytest.raises(data.DataError, match="faces: 1 real example"):
        data.load_face_folder(folder, cache_dir=cache, min_images=2)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    with pytest.raises(data.DataError, match="faces: 1 real example"):  # the task's loader asks for the minimum
        tasks.get_task("faces").load(data_dir=folder)


def test_a_pack_too_large_for_memory_is_told_a_pack_that_fits(capsys, tmp_path):
    """--pack 1000000000000's hint said "allowed: a batch up to 0"; a batch of 1 does not fit either, so the hint
    now names the largest pack that does (with a batch of 1), and that pack passes the same check."""
    from benchmarks import plan, run
    from common import tasks

    assert run.main([*PARABOLA, "--pack", "1000000000000", "--out", str(tmp_path / "out")]) == 2
    line = one_error(capsys.readouterr().err)
    found = re.search(r"allowed: --pack up to (\d+) with --batch-size 1", line)
    assert found and "a batch up to 0" not in line, line
    pack = int(found.group(1))
    spec, _ = tasks.configure(tasks.get_task("parabola"), steps=10, batch_size=1, pack=pack)
    plan.check_memory(spec, 1, "the hinted pack")
    with pytest.raises(ValueError, match="more than this machine's"):
        plan.check_memory(spec.with_pack(pack + 1), 1, "one more")
