"""--executor ray on a local Ray cluster of 2 CPUs started once for this module: the same results as the local
executor, bit for bit; a worker killed mid-cell is run again or recorded as failed, the store intact; --resume
after a driver interrupt completes the grid with no duplicates."""
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from benchmarks import cli, executor, run, store, timing  # noqa: E402
from common import checkpoint  # noqa: E402
from benchmarks.record import RunRecord  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from compare_runs import differences  # noqa: E402

TINY = ["--mode", "eager", "--steps", "12", "--batch-size", "16", "--no-report"]
VICTIM = "parabola-torch-eager-minimax-s0"
GRID = ["--no-floor", "--backend", "both", "--task", "parabola", "gmm2", "--no-timing"]  # 4 cells: 2 tasks x 2 backends


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module (its start-up takes seconds); the drivers below join it."""
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    signal.signal(signal.SIGTERM, handler)  # ray.init installs its own SIGTERM handler in this process
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(autouse=True)
def _cheap_peak(cheap_peak):
    pass


def bench(out, *flags) -> int:
    return run.main(["--out", str(out), *TINY, *map(str, flags)])


def intact(out: Path) -> list[dict]:
    """The store is whole: records readable, results.csv row for row, every history there and named, no temp file."""
    records = store.read_records(out)
    assert pd.read_csv(out / store.CSV_FILE)["run_id"].tolist() == [r["run_id"] for r in records]
    assert sorted(p.name for p in (out / store.HISTORY_DIR).iterdir()) == sorted(
        Path(r["history"]).name for r in records)
    assert [p for p in out.rglob(".*") if checkpoint.is_temp_file(p)] == []
    return records


def test_executor_flags_that_cannot_work_are_one_line_exit_2(tmp_path, capsys, monkeypatch):
    """First in the file: before the module's cluster is up (a driver in a process already joined ignores
    --ray-address)."""
    assert not ray.is_initialized()
    for flags, message in ((["--executor", "ray", "--checkpoint-every", "5"], "--checkpoint-every is invalid with"),
                           (["--ray-address", "x:1"], "--ray-address is for --executor ray"),
                           (["--executor", "ray", "--sweep", "batch"], "--sweep cannot honour --executor ray"),
                           (["--executor", "ray", "--ray-address", "127.0.0.1:1"],
                            "--ray-address 127.0.0.1:1: no Ray cluster answers there")):
        assert bench(tmp_path / "o", "--task", "parabola", *flags) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "o").exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    assert bench(tmp_path / "o", "--task", "parabola", "--executor", "ray") == 2
    assert capsys.readouterr().err.startswith("error: --executor ray needs Ray: pip install -e \".[cluster]\"")


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    """The grid with the local executor: the results every Ray run below must reproduce."""
    out = tmp_path_factory.mktemp("local")
    assert bench(out, *GRID) == 0
    return out


def test_ray_gives_the_local_executors_results_bit_for_bit(cluster, local_grid, tmp_path, capsys):
    out = tmp_path / "ray"
    assert bench(out, *GRID, "--executor", "ray") == 0
    records = intact(out)
    assert len(records) == 4 and differences(local_grid, out) == []
    assert {(r["executor"], r["timing_mode"], r["attempt"]) for r in records} == {("ray", "packed", 1)}
    assert {r["timing_mode"] for r in store.read_records(local_grid)} == {"none"}
    for r in records:  # each run records the environment of its own worker, and no timing it could not do fairly
        assert r["environment"]["host"] == os.uname().nodename and r["backend"] in r["environment"]["configure"]
        assert "sample_s" not in r and r["sgemm_gflops"] == {}
    assert "cells" in capsys.readouterr().err  # the driver's one bar
    old = {k: v for k, v in records[0].items() if k not in ("executor", "timing_mode", "attempt")}
    typed = RunRecord.from_json(old)  # a schema-2 record reads as a local run timed alone
    assert (typed.executor, typed.timing_mode, typed.attempt) == ("local", "exclusive", 1)
    # the comparison finds a difference where there is one
    tampered = copy_records(out, tmp_path / "tampered", lambda r: True)
    records = store.read_records(tampered)
    records[0]["metrics"]["ks_a"] += 1
    (tampered / store.RUNS_FILE).unlink()
    for r in records:
        store.append_record(tampered, r)
    assert differences(out, tampered) == [f"{store.cell_id(*store.cell_of(records[0]))}: metrics "
                                          f"{store.read_records(out)[0]['metrics']!r} != {records[0]['metrics']!r}"]


def copy_records(src: Path, dst: Path, keep) -> Path:
    """The records of ``src`` that ``keep`` says, with their histories, stored in ``dst`` as a writer would."""
    for r in store.read_records(src):
        if keep(r):
            store.write_history(dst, r["run_id"], store.read_history(src, r["history"]))
            store.append_record(dst, r)
    return dst


def test_killed_workers_are_run_again_or_fail_the_store_intact_and_resume_completes(cluster, local_grid, tmp_path,
                                                                                    monkeypatch, capsys):
    dies_once, dies_always = VICTIM, VICTIM.replace("-s0", "-s1")
    monkeypatch.setenv(executor.KILL_ENV, f"{dies_once}:4:1,{dies_always}:4:99")  # after 4 of 12 steps
    out = tmp_path / "ray"
    flags = ("--backend", "torch", "--task", "parabola", "--num-seeds", 2, "--no-timing", "--executor", "ray")
    assert bench(out, *flags, "--retries", 1) == cli.EXIT_CELLS_FAILED
    captured = capsys.readouterr()
    assert f"failed {dies_always}: " in captured.out and "--resume runs them again" in captured.err
    [record] = intact(out)  # the cell that died once is recorded from its second try, the store whole
    assert record["seed"] == 0 and record["attempt"] == 2
    # and it is the very run the local executor made
    assert differences(copy_records(local_grid, tmp_path / "local", lambda r: store.cell_id(*store.cell_of(r)) == VICTIM),
                       out) == []
    monkeypatch.delenv(executor.KILL_ENV)
    assert bench(out, *flags, "--resume") == 0  # on the cluster again
    assert "1 runs to do (1 already in" in capsys.readouterr().out
    assert sorted(r["seed"] for r in intact(out)) == [0, 1]


def test_resume_after_a_driver_interrupt_completes_with_no_duplicates(cluster, tmp_path, capsys):
    """A real SIGINT to this process (the driver) once the first record is stored: the cells still out are
    cancelled, every stored record kept; --resume runs the rest."""
    out = tmp_path / "ray"
    flags = ["--backend", "torch", "--task", "parabola", "--num-seeds", "3", "--no-timing", "--executor", "ray"]

    over = threading.Event()

    def interrupt_after_the_first_record():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not over.is_set() and not (out / store.RUNS_FILE).exists():
            time.sleep(0.02)
        if not over.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_after_the_first_record)
    watcher.start()
    try:
        code = bench(out, *flags)
    finally:
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a signal sent as the run ended is not pytest's
        over.set()
        watcher.join()
        signal.signal(signal.SIGINT, handler)
    recorded = [r["seed"] for r in intact(out)]
    err = capsys.readouterr().err
    assert (code == 130 and 1 <= len(recorded) < 3 and "--resume" in err) or (code == 0 and len(recorded) == 3), err
    assert bench(out, *flags, "--resume") == 0
    assert f"{3 - len(recorded)} runs to do ({len(recorded)} already in" in capsys.readouterr().out
    assert sorted(r["seed"] for r in intact(out)) == [0, 1, 2]  # every cell once: none lost, none duplicated
