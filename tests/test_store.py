"""The results store: atomic files, strict reading of runs.jsonl, checkpoints that round-trip exactly."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from benchmarks import store
from common.tasks import TASKS


def record(task="parabola", seed=0, **extra) -> dict:
    r = {"schema": store.SCHEMA_VERSION, "producer": store.PRODUCER, "suite": "custom", "run_id": f"{task}-{seed}",
         "task": task, "backend": "torch", "mode": "eager", "loss": "minimax", "seed": seed,
         "config": {"steps": 10, "batch_size": 4, "d_lr": 1e-4, "g_lr": 1e-4, "optimizer": "spec"},
         "status": "finished", "flags": ["a", "b"], "metrics": {"w1": 0.5}}
    r.update(extra)
    return r


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
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


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
])
def test_malformed_or_foreign_runs_file_is_refused(tmp_path, line, problem):
    (tmp_path / store.RUNS_FILE).write_text(json.dumps(record()) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=problem):
        store.read_records(tmp_path)


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_out_dir_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not writable"):
            store.check_out_dir(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_history_round_trip(tmp_path):
    arrays = {"d_loss": np.arange(5.0), "timed": np.array([False, True, True, True, True])}
    relative = store.write_history(tmp_path, "run-1", arrays)
    back = store.read_history(tmp_path, relative)
    assert relative == "histories/run-1.npz"
    np.testing.assert_array_equal(back["d_loss"], arrays["d_loss"])
    np.testing.assert_array_equal(back["timed"], arrays["timed"])


def test_checkpoint_round_trip_restores_trainer_history_and_meta(tmp_path):
    saved = FakeTrainer(1.5)
    history = {"d_loss": np.array([0.1, 0.2])}
    store.save_checkpoint(tmp_path, "cell", saved, history, {"steps_done": 2, "config": {"steps": 4}})
    assert store.peek_checkpoint_meta(tmp_path, "cell") == {"steps_done": 2, "config": {"steps": 4}}
    restored = FakeTrainer(0.0)
    meta, back = store.load_checkpoint(tmp_path, "cell", restored)
    assert meta["steps_done"] == 2
    np.testing.assert_array_equal(back["d_loss"], history["d_loss"])
    assert restored.arrays.keys() == saved.arrays.keys()
    for key, value in saved.arrays.items():
        np.testing.assert_array_equal(restored.arrays[key], value)
    store.remove_checkpoint(tmp_path, "cell")
    assert store.load_checkpoint(tmp_path, "cell", restored) is None
