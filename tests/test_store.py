"""The results store: atomic files, strict reading of runs.jsonl (a results folder is input too), the folder's
lock, the CSV repair and the sweep of what a SIGKILL leaves, checkpoints that round-trip exactly."""
import json
import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest

from benchmarks import store
from common import checkpoint
from common.checkpoint import signals_deferred
from common.tasks import TASKS


def record(task="parabola", seed=0, **extra) -> dict:
    """A whole record (every field of benchmarks/record.py's schema), of made-up values."""
    r = {"schema": store.SCHEMA_VERSION, "producer": store.PRODUCER, "suite": "custom", "run_id": f"{task}-{seed}",
         "task": task, "backend": "torch", "mode": "eager", "compiled_as": "eager: op by op", "loss": "minimax",
         "seed": seed, "config": {"steps": 10, "batch_size": 4, "d_lr": 1e-4, "g_lr": 1e-4, "optimizer": "spec"},
         "status": "finished", "diverged_at_step": None, "flags": ["a", "b"], "steps": 10, "steps_done": 10,
         "resumed_from_step": 0, "steps_per_call": 1, "warmup_steps": 5,
         "median_step_s": 1e-3, "p25_step_s": 1e-3, "p75_step_s": 1e-3, "timed_steps": 5, "steps_per_s": 1e3,
         "samples_per_s": 4e3, "first_call_s": 1e-3, "compile_s": 0.0, "median_data_s": 1e-4,
         "flops_per_step": 1000, "flops_approximate": False, "examples_per_step": 4, "gflops_per_s": 1.0,
         "pct_of_peak": 1.0, "sgemm_gflops": {"numpy": 100.0}, "peak_gflops": 100.0,
         "metrics": {"w1": 0.5}, "eval_samples": 100, "data": {"source": "a sampler", "n_examples": None,
                                                                "notice": None},
         "spec": {}, "environment": {}, "wall_s": 0.1}
    r.update(extra)
    return r


def history(steps=5, snapshots=3, dim=2) -> dict:
    """Arrays with the documented history layout."""
    return {**{key: np.zeros(steps) for key in store.STEP_ARRAYS}, "snapshot_steps": np.arange(snapshots),
            "snapshots": np.zeros((snapshots, 4, dim), np.float16), "sketch_index": np.arange(6),
            "sketch": np.zeros((snapshots, 6), np.float32), "sketch_steps": np.arange(snapshots),
            "samples": np.zeros((8, dim), np.float16)}


class FakeTrainer:
    """A test double with the state contract of common.backend.Trainer: a spec and a dict of arrays."""

    spec = TASKS["parabola"].spec

    def __init__(self, value):
        self.arrays = {"generator/0": np.full((3, 2), value, np.float32), "opt/generator/t": np.array(7)}

    def state(self):
        return dict(self.arrays)

    def load_state(self, state):
        self.arrays = dict(state)


def test_append_and_read_back(tmp_path):
    store.append_record(tmp_path, record(seed=0))
    store.append_record(tmp_path, record(seed=1))
    records = store.read_records(tmp_path)
    assert [r["seed"] for r in records] == [0, 1]
    table = pd.read_csv(tmp_path / store.CSV_FILE)
    assert list(table["seed"]) == [0, 1]
    assert list(table["metrics.w1"]) == [0.5, 0.5]  # nested keys flattened with "."
    assert list(table["flags"]) == ["a;b", "a;b"]
    assert [p.name for p in tmp_path.iterdir() if checkpoint.is_temp_file(p)] == []  # no temp file left
    store.append_records(tmp_path, [record(seed=2), record(seed=3)])  # several at once: one rewrite
    assert [r["seed"] for r in store.read_records(tmp_path)] == list(pd.read_csv(tmp_path / store.CSV_FILE)["seed"]) \
        == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="seed -1 is invalid"):  # each checked before any is written
        store.append_records(tmp_path, [record(seed=4), record(seed=-1)])
    assert len(store.read_records(tmp_path)) == 4


def test_schema_2_records_read_as_local_timed_runs(tmp_path):
    from benchmarks.report.runs import timed_ok

    store.append_record(tmp_path, record(schema=2))
    [old] = store.read_records(tmp_path)
    assert old["schema"] == 2 and store.SCHEMA_VERSION == 3
    assert timed_ok({**old, "timed_steps": 3, "median_step_s": 1e-3})  # no timing_mode: timed alone, as all were


def test_atomic_write_keeps_old_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "f.txt"
    store.atomic_write(target, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


@pytest.mark.parametrize("line, problem", [
    ("{not json", "is not JSON"),
    (json.dumps({"hello": 1}), "is not a gan-parity-suite record"),
    (json.dumps(record(schema=999)), "has schema 999"),
    (json.dumps({k: v for k, v in record().items() if k != "config"}), "lacks config"),
    # Fields that name files or pick code: a tampered folder must not make anyone write outside it.
    (json.dumps(record(task="../../escape")), "task '../../escape' is invalid; allowed: parabola"),
    (json.dumps(record(backend="mxnet")), "backend 'mxnet' is invalid; allowed: torch, tf, jax"),
    (json.dumps(record(mode="eager/../x")), "mode 'eager/../x' is invalid"),
    (json.dumps(record(loss=3)), "loss 3 is invalid"),
    (json.dumps(record(seed=-1)), "seed -1 is invalid"),
    (json.dumps(record(seed=True)), "seed True is invalid"),
    (json.dumps(record(run_id="../../x")), "run_id '../../x' is invalid"),
    (json.dumps(record(run_id=".hidden")), "run_id '.hidden' is invalid"),
    (json.dumps(record(history="/etc/passwd")), "history '/etc/passwd' is invalid; allowed: histories/parabola-0.npz"),
    (json.dumps(record(status="great")), "status 'great' is invalid"),
    (json.dumps(record(config=[1])), "config [1] is invalid"),
])
def test_malformed_foreign_or_tampered_runs_file_is_refused(tmp_path, line, problem):
    (tmp_path / store.RUNS_FILE).write_text(json.dumps(record()) + "\n" + line + "\n")
    with pytest.raises(ValueError, match="line 2") as refused:
        store.read_records(tmp_path)
    assert problem in str(refused.value)


def test_an_unreadable_runs_file_is_one_error_naming_it(tmp_path):
    (tmp_path / store.RUNS_FILE).write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match=f"{store.RUNS_FILE} cannot be read"):
        store.read_records(tmp_path)
    (tmp_path / store.RUNS_FILE).unlink()
    (tmp_path / store.RUNS_FILE).mkdir()
    with pytest.raises(ValueError, match="cannot be read"):
        store.read_records(tmp_path)


def test_a_record_is_checked_before_it_is_appended(tmp_path):
    with pytest.raises(ValueError, match="task '/abs' is invalid"):
        store.append_record(tmp_path, record(task="/abs"))
    with pytest.raises(ValueError, match="write_history first"):
        store.append_record(tmp_path, record(history="histories/parabola-0.npz"))
    assert not (tmp_path / store.RUNS_FILE).exists()


def test_inside_refuses_paths_that_leave_the_folder(tmp_path):
    assert store.inside(tmp_path, "histories/a.npz") == tmp_path / "histories" / "a.npz"
    for bad in ("../x.npz", "/etc/x", "histories/../../x", ".", ".."):
        with pytest.raises(ValueError, match="leaves the output folder"):
            store.inside(tmp_path, bad)
    with pytest.raises(ValueError, match="run_id"):
        store.write_history(tmp_path, "../escape", history())


def test_no_runs_file_means_no_records(tmp_path):
    assert store.read_records(tmp_path / "missing") == []


def test_check_out_dir(tmp_path):
    store.check_out_dir(tmp_path)
    store.check_out_dir(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        store.check_out_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="cannot be created"):
        store.check_out_dir(tmp_path / "file" / "below")
    with pytest.raises(ValueError, match="output folder '' is invalid"):
        store.check_out_dir("")


def test_the_write_probe_creates_nothing_it_does_not_keep(tmp_path):
    store.prepare_out_dir(tmp_path / "a" / "b", keep=False)
    assert list(tmp_path.iterdir()) == []
    store.prepare_out_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_out_dir_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not writable"):
            store.check_out_dir(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_the_writer_lock_is_reentrant_here_and_released_at_exit(tmp_path):
    with store.writer(tmp_path):
        with store.writer(tmp_path):  # the same process: nested, not refused
            store.append_record(tmp_path, record())  # append's own lock is the writer's hold
        assert store._holds  # still held by the outer block
    assert not store._holds and (tmp_path / store.LOCK_FILE).exists()


def test_repair_rebuilds_a_csv_that_disagrees_with_runs_jsonl(tmp_path):
    store.append_record(tmp_path, record(seed=0))
    store.append_record(tmp_path, record(seed=1))
    assert store.repair_csv(tmp_path) is None  # they agree
    table = pd.read_csv(tmp_path / store.CSV_FILE)
    table.iloc[:1].to_csv(tmp_path / store.CSV_FILE, index=False)  # a row short, as a SIGKILL between them leaves it
    assert "1 rows for 2 runs" in store.repair_csv(tmp_path)
    assert list(pd.read_csv(tmp_path / store.CSV_FILE)["seed"]) == [0, 1]
    (tmp_path / store.CSV_FILE).write_bytes(b"\x00garbage")
    assert "unreadable" in store.repair_csv(tmp_path)
    assert list(pd.read_csv(tmp_path / store.CSV_FILE)["seed"]) == [0, 1]


def test_sweep_removes_the_suites_leftovers_and_nothing_of_the_users(tmp_path):
    """Temp files of atomic_write's own naming and histories the suite began but never recorded go; the user's
    files stay, even named like ours were before (".x.tmp") or an unrecorded .npz under histories/."""
    relative = store.write_history(tmp_path, "parabola-0", history())
    store.append_record(tmp_path, record(history=relative))
    store.write_history(tmp_path, "orphan", history())  # killed after its history, before its record
    suffix = checkpoint.TEMP_SUFFIX
    leftovers = [tmp_path / f".runs.jsonl.x1{suffix}", tmp_path / "histories" / f".orphan.npz.x2{suffix}",
                 tmp_path / "checkpoints" / f".cell.npz.x3{suffix}"]
    users = [tmp_path / "notes.txt", tmp_path / ".draft.tmp", tmp_path / "histories" / "mine.npz",
             tmp_path / "histories" / ".mine.npz.x.tmp"]
    for path in leftovers + users:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    with store.writer(tmp_path):
        removed = store.sweep_leftovers(tmp_path)
    assert sorted(removed) == sorted(map(str, leftovers + [tmp_path / "histories" / "orphan.npz"]))
    assert (tmp_path / relative).exists() and all(path.exists() for path in users)
    with store.writer(tmp_path):
        assert store.sweep_leftovers(tmp_path) == []  # the note of begun histories was cleared


def test_history_round_trip_and_a_history_of_another_layout(tmp_path):
    arrays = history()
    arrays["timed"] = np.array([False, True, True, True, True])
    relative = store.write_history(tmp_path, "run-1", arrays)
    back = store.read_history(tmp_path, relative)
    assert relative == "histories/run-1.npz"
    for key, value in arrays.items():
        np.testing.assert_array_equal(back[key], value)
    short = history()
    short["d_loss"] = np.zeros(3)
    store.write_history(tmp_path, "run-2", short)
    with pytest.raises(ValueError, match="per-step arrays have shapes"):
        store.read_history(tmp_path, "histories/run-2.npz")
    store.write_history(tmp_path, "run-3", {"d_loss": np.zeros(2)})
    with pytest.raises(ValueError, match="lacks g_loss"):
        store.read_history(tmp_path, "histories/run-3.npz")


def test_checkpoint_round_trip_keeps_state_history_and_meta(tmp_path):
    saved = FakeTrainer(1.5)
    arrays = {"d_loss": np.array([0.1, 0.2])}
    store.save_checkpoint(tmp_path, "cell", saved, arrays, {"steps_done": 2, "config": {"steps": 4}})
    meta, state, back = store.read_checkpoint(tmp_path, "cell")
    assert meta == {"steps_done": 2, "config": {"steps": 4}}
    np.testing.assert_array_equal(back["d_loss"], arrays["d_loss"])
    assert set(state) == {"spec", *saved.arrays}
    for key, value in saved.arrays.items():
        np.testing.assert_array_equal(state[key], value)
    store.remove_checkpoint(tmp_path, "cell")
    assert store.read_checkpoint(tmp_path, "cell") is None


@pytest.mark.parametrize("meta, problem", [
    (None, "not a readable .npz"), ("not json", "no readable meta"), ('{"config": {}}', "no readable meta"),
    ('{"steps_done": "8", "config": {}}', "is invalid; expected an integer steps_done"),
    ('{"steps_done": 8, "config": 3}', "is invalid"),
])
def test_a_damaged_checkpoint_is_one_error_naming_it(tmp_path, meta, problem):
    path = store.checkpoint_path(tmp_path, "cell")
    path.parent.mkdir()
    if meta is None:
        path.write_bytes(b"PK\x03\x04 truncated")
    else:
        np.savez(path, meta=np.array(meta))
    with pytest.raises(ValueError, match=problem) as refused:
        store.read_checkpoint(tmp_path, "cell")
    assert str(path) in str(refused.value)


def test_signals_held_during_the_append_arrive_after_it(tmp_path, monkeypatch):
    """A SIGINT between the runs.jsonl and results.csv writes is delivered once both are in place."""
    real_write = store.atomic_write

    def interrupt_after_runs_jsonl(path, write, **kwargs):
        real_write(path, write, **kwargs)
        if path.name == store.RUNS_FILE:
            os.kill(os.getpid(), signal.SIGINT)

    store.append_record(tmp_path, record(seed=0))
    monkeypatch.setattr(store, "atomic_write", interrupt_after_runs_jsonl)
    with pytest.raises(KeyboardInterrupt):
        store.append_record(tmp_path, record(seed=1))
    assert len(pd.read_csv(tmp_path / store.CSV_FILE)) == len(store.read_records(tmp_path)) == 2


def test_signals_deferred_delivers_to_the_previous_handler_once():
    seen = []

    def handler(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []  # held, even past the inner block's end
        assert seen == [signal.SIGTERM, signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is handler  # the previous handler is back
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_signal_at_any_line_of_the_append_never_leaves_the_csv_a_row_short(tmp_path):
    """Whatever line of the append (store.py and the writer) a SIGINT lands on, runs.jsonl and results.csv hold the
    same runs afterwards, the record is in both or in neither, and no temp file is left."""
    from tests.test_checkpoint import line_events, signal_at_line

    files = {store.__file__, store.checkpoint.__file__}
    template = tmp_path / "template"
    store.append_record(template, record(seed=0))
    events = line_events(lambda: store.append_record(tmp_path / "count", record(seed=0)), files)
    assert events > 50
    # Every line up to the held part and after it, and a sample of the (held) middle, where reading and
    # checking the records take most of the events.
    for at in sorted({*range(1, 41), *range(events - 40, events + 1), *range(41, events - 40, 9)}):
        folder = shutil.copytree(template, tmp_path / f"at{at}")
        signal_at_line(lambda: store.append_record(folder, record(seed=1)), files, at)
        seeds = [r["seed"] for r in store.read_records(folder)]
        assert seeds in ([0], [0, 1]), at
        assert list(pd.read_csv(folder / store.CSV_FILE)["seed"]) == seeds, at
        assert [p.name for p in folder.iterdir() if checkpoint.is_temp_file(p)] == [], at
