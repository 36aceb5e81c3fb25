"""The harness end to end on tiny parabola runs with the real backends: records, reproducibility,
checkpoint/resume, divergence, bad input and signals (subprocesses only where a real process is needed)."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backend_torch
from benchmarks import cell, plan, run, store, timing
from benchmarks.record import RunRecord
from common import checkpoint, tasks
from conftest import planned, request_of

# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
STEP_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


@pytest.fixture(autouse=True)
def _cheap_peak(cheap_peak):
    pass


def bench(out, *flags) -> int:
    return run.main(["--task", "parabola", "--out", str(out), "--no-report", *map(str, flags)])


def runs(out) -> list[tuple[dict, dict]]:
    return [(r, store.read_history(out, r["history"])) for r in store.read_records(out)]


def assert_same_run(a: dict, b: dict, snapshots: bool = True) -> None:
    for key in STEP_KEYS:
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a["sketch"][-1], b["sketch"][-1])
    if not snapshots:  # with --steps-per-call K, snapshots fall on call boundaries
        return
    np.testing.assert_array_equal(a["snapshot_steps"], b["snapshot_steps"])
    np.testing.assert_array_equal(a["snapshots"], b["snapshots"])


def test_a_run_records_timing_metrics_history_and_environment(tmp_path):
    assert bench(tmp_path, "--backend", "torch", "--mode", "eager", "--steps", 30) == 0
    [(record, history)] = runs(tmp_path)
    assert record["status"] == "finished" and record["flags"] == []
    assert record["steps_done"] == 30 and record["warmup_steps"] == 5 and record["timed_steps"] == 25
    assert record["p25_step_s"] <= record["median_step_s"] <= record["p75_step_s"]
    assert record["steps_per_s"] == pytest.approx(1 / record["median_step_s"])
    assert record["samples_per_s"] == pytest.approx(64 / record["median_step_s"])
    # The peak is the best sgemm measured in this run, numpy's and the backend's own; % of peak follows from it.
    assert set(record["sgemm_gflops"]) == {"numpy", "torch"} and record["gflops_per_s"] > 0
    assert record["peak_gflops"] == max(record["sgemm_gflops"].values())
    assert record["pct_of_peak"] == pytest.approx(100 * record["gflops_per_s"] / record["peak_gflops"])
    assert RunRecord.from_json(record).to_json() == record  # the typed record reads back what was written
    assert {"in_band", "ks_a", "d_real_gap"} <= set(record["metrics"])
    assert record["environment"]["versions"]["torch"] and record["environment"]["configure"]["torch"]["deterministic"]
    assert len(history["d_loss"]) == 30 and history["timed"].sum() == 25
    assert history["snapshots"].shape == (16, cell.SNAPSHOT_SAMPLES, 15)
    assert history["snapshot_steps"][0] == 0 and history["snapshot_steps"][-1] == 30
    assert history["sketch_index"].size == 4880  # parabola has 4 880 weights: the sketch is all of them
    assert history["samples"].shape == (store.STORED_SAMPLES, 15)
    csv = (tmp_path / store.CSV_FILE).read_text().splitlines()
    assert len(csv) == 2 and "metrics.in_band" in csv[0]


@pytest.mark.parametrize("backend, mode", [("torch", "eager"), ("tf", "eager"), ("tf", "compiled")])
def test_same_seed_same_run_other_seed_other_run(tmp_path, backend, mode):
    for out, seeds in (("a", 2), ("b", 1)):
        assert bench(tmp_path / out, "--backend", backend, "--mode", mode, "--steps", 8, "--num-seeds", seeds) == 0
    (a0, ha0), (a1, ha1) = runs(tmp_path / "a")
    [(b0, hb0)] = runs(tmp_path / "b")
    assert (a0["seed"], a1["seed"], b0["seed"]) == (0, 1, 0)
    assert_same_run(ha0, hb0)
    assert not np.array_equal(ha0["d_loss"], ha1["d_loss"])
    assert not np.array_equal(ha0["sketch"][-1], ha1["sketch"][-1])


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_checkpoint_resume_equals_a_straight_run(tmp_path, monkeypatch, backend):
    flags = ["--backend", backend, "--mode", "eager", "--steps", 15]  # snapshots at every step 0..15
    assert bench(tmp_path / "straight", *flags) == 0

    real_save = store.save_checkpoint

    def save_then_terminate(*args, **kwargs):  # a real SIGTERM right after the first checkpoint
        real_save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(store, "save_checkpoint", save_then_terminate)
    assert bench(tmp_path / "cut", *flags, "--checkpoint-every", 8) == 143
    assert store.read_records(tmp_path / "cut") == []
    meta, _, _ = store.read_checkpoint(tmp_path / "cut", f"parabola-{backend}-eager-minimax-s0")
    assert meta["steps_done"] == 8
    monkeypatch.setattr(store, "save_checkpoint", real_save)
    assert bench(tmp_path / "cut", *flags, "--checkpoint-every", 8, "--resume") == 0

    [(straight, h_straight)] = runs(tmp_path / "straight")
    [(resumed, h_resumed)] = runs(tmp_path / "cut")
    assert resumed["resumed_from_step"] == 8 and resumed["steps_done"] == 15
    assert_same_run(h_straight, h_resumed)
    assert not (tmp_path / "cut" / store.CHECKPOINT_DIR / f"parabola-{backend}-eager-minimax-s0.npz").exists()


def test_resume_skips_identical_cells_and_reruns_changed_ones(tmp_path, capsys):
    flags = ["--backend", "torch", "--mode", "eager"]
    assert bench(tmp_path, *flags, "--steps", 10) == 0
    assert bench(tmp_path, *flags, "--steps", 10, "--resume") == 0
    assert len(store.read_records(tmp_path)) == 1
    assert bench(tmp_path, *flags, "--steps", 12, "--resume") == 0
    assert "running it again" in capsys.readouterr().out
    assert [r["steps"] for r in store.read_records(tmp_path)] == [10, 12]


def test_steps_per_call_gives_the_same_run(tmp_path):
    flags = ["--backend", "torch", "--mode", "eager", "--steps", 9]
    assert bench(tmp_path / "one", *flags) == 0
    assert bench(tmp_path / "four", *flags, "--steps-per-call", 4) == 0  # calls of 4, 4 and 1 steps
    [(_, one)], [(record, four)] = runs(tmp_path / "one"), runs(tmp_path / "four")
    assert record["steps_per_call"] == 4
    assert_same_run(one, four, snapshots=False)


def test_optimizer_implementations_and_k_are_cells_of_their_own(tmp_path, capsys):
    """Several optimiser implementations and K values in one command: one record each, told apart by the cell
    key (so the report keeps them all); what a backend cannot run is skipped with its reason."""
    assert bench(tmp_path, "--backend", "both", "--mode", "eager", "--steps", 4, "--warmup", 1, "--no-floor", "--optimizer-impl", "spec", "native-fused",
                 "--steps-per-call", 1, 2) == 0
    out = capsys.readouterr().out
    assert "skipped tf with optimizer implementation native-fused: tf runs spec, native" in out
    records = store.read_records(tmp_path)
    configs = sorted((r["backend"], r["config"]["optimizer"], r["steps_per_call"]) for r in records)
    assert configs == [("tf", "spec", 1), ("tf", "spec", 2), ("torch", "native-fused", 1), ("torch", "native-fused", 2),
                       ("torch", "spec", 1), ("torch", "spec", 2)]
    assert len({store.cell_of(r) for r in records}) == 6 and all(r["compiled_as"] == "eager: op by op" for r in records)
    assert len({r["history"] for r in records}) == 6
    assert bench(tmp_path, "--backend", "both", "--mode", "eager", "--steps", 4, "--warmup", 1, "--no-floor", "--optimizer-impl", "spec", "native-fused",
                 "--steps-per-call", 1, 2, "--resume") == 0
    assert len(store.read_records(tmp_path)) == 6  # every one of them is recognised as done


def test_float64_is_a_cell_of_its_own(tmp_path, capsys):
    """--dtype float64: a record of its own beside float32's (id suffix, config key), float64 end to end; old ids and
    configs are unchanged for float32, so --resume still recognises them; a bad dtype is one error line."""
    assert bench(tmp_path, "--backend", "torch", "--mode", "eager", "--steps", 4, "--warmup", 1) == 0
    assert bench(tmp_path, "--backend", "torch", "--mode", "eager", "--steps", 4, "--warmup", 1, "--dtype", "float64") == 0
    r32, r64 = sorted(store.read_records(tmp_path), key=lambda r: r["config"].get("dtype", "float32"))
    assert "dtype" not in r32["config"] and r32["spec"]["dtype"] == "float32"
    assert r64["config"]["dtype"] == "float64" == r64["spec"]["dtype"] and "-s0-float64-" in r64["run_id"]
    assert store.cell_of(r32) != store.cell_of(r64) and "float64" not in r32["run_id"]
    h32, h64 = store.read_history(tmp_path, r32["history"]), store.read_history(tmp_path, r64["history"])
    assert not np.array_equal(h32["d_loss"], h64["d_loss"])  # another precision, another trajectory ...
    np.testing.assert_allclose(h32["d_loss"], h64["d_loss"], atol=1e-4)  # ... of the same function
    assert bench(tmp_path, "--backend", "torch", "--mode", "eager", "--steps", 4, "--warmup", 1, "--dtype", "float64",
                 "--resume") == 0
    assert len(store.read_records(tmp_path)) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        bench(tmp_path / "bad", "--dtype", "float16")
    assert exit_.value.code == 2 and "error: argument --dtype: invalid choice: 'float16'" in capsys.readouterr().err


def test_pack_values_are_cells_of_their_own(tmp_path):
    """--pack 1 2: two records told apart by the cell key; pack 2's D judges 30-wide packs, its G makes 2 x 64 rows,
    and pack 1 is the unpacked run (the same losses as a command without --pack)."""
    assert bench(tmp_path / "both", "--backend", "torch", "--mode", "eager", "--steps", 6, "--pack", 1, 2) == 0
    assert bench(tmp_path / "plain", "--backend", "torch", "--mode", "eager", "--steps", 6) == 0
    records = sorted(store.read_records(tmp_path / "both"), key=lambda r: r["config"]["pack"])
    assert [r["config"]["pack"] for r in records] == [1, 2]
    assert "-s0-p2-" in records[1]["run_id"] and "-s0-p" not in records[0]["run_id"]
    assert len({store.cell_of(r) for r in records}) == 2
    assert records[1]["examples_per_step"] == records[0]["examples_per_step"]  # D still sees 64 real + 64 fake (packs)
    [(_, plain)] = runs(tmp_path / "plain")
    one = store.read_history(tmp_path / "both", records[0]["history"])
    assert_same_run(plain, one)
    assert bench(tmp_path / "both", "--backend", "torch", "--mode", "eager", "--steps", 6, "--pack", 1, 2,
                 "--resume") == 0
    assert len(store.read_records(tmp_path / "both")) == 2


def test_an_optimizer_one_backend_cannot_run_is_refused(tmp_path, capsys):
    assert bench(tmp_path, "--backend", "tf", "--optimizer-impl", "native-foreach") == 2
    assert capsys.readouterr().err.strip() == ("error: --optimizer-impl 'native-foreach' is invalid for backend 'tf'; "
                                               "allowed: spec, native")
    assert not any(tmp_path.iterdir())


def test_the_quick_plan_runs_each_framework_out_of_the_box_too():
    configs = plan.config_plan(request_of(), {"torch": backend_torch, "tf": None}, [])
    assert (("torch", "eager", "native"), 0.25) in configs and (("tf", "eager", "native"), 0.05) in configs
    assert {c for c, _ in configs} == {c for c in plan.QUICK_PLAN if c[0] in ("torch", "tf")}


class Poisoned:
    """A real trainer whose losses (or weights) turn NaN from step ``at`` on: a test double for divergence."""

    def __init__(self, trainer, at, where):
        self.trainer, self.at, self.where, self.done = trainer, at, where, 0

    def __getattr__(self, name):
        return getattr(self.trainer, name)

    def train_step(self, **inputs):
        self.done += 1
        results = self.trainer.train_step(**inputs)
        if self.where == "loss" and self.done >= self.at:
            results["d_loss"] = float("nan")
        return results

    def get_weights(self):
        weights = self.trainer.get_weights()
        if self.where == "weights" and self.done >= self.at:
            weights["generator"][0] = np.full_like(weights["generator"][0], np.inf)
        return weights


@pytest.mark.parametrize("where, expected_step", [("loss", 7), ("weights", 8)])  # weights: checked at snapshots
def test_divergence_is_recorded_and_the_next_run_goes_on(tmp_path, monkeypatch, where, expected_step):
    real_build = backend_torch.build
    monkeypatch.setattr(backend_torch, "build", lambda *a, **k: Poisoned(real_build(*a, **k), 7, where))
    assert bench(tmp_path, "--backend", "torch", "--mode", "eager", "--steps", 30, "--num-seeds", 2) == 0
    recorded = runs(tmp_path)
    assert [r["seed"] for r, _ in recorded] == [0, 1]
    for record, history in recorded:
        assert record["status"] == "diverged" and record["diverged_at_step"] == expected_step
        assert record["metrics"] == {} and len(history["d_loss"]) == record["steps_done"] == expected_step


def test_collapse_flags():
    task = tasks.get_task("gmm2")
    gmm2 = cell.Cell(task, "torch", "eager", task.spec, 600, 0)
    log = cell.RunLog(task.spec)
    log.steps["d_fake"] = [0.5] * 50 + [0.001] * cell.SATURATED_STEPS
    assert cell.flags_of(gmm2, log, {"modes_covered": 2.0}) == ["d_saturated"]
    log.steps["d_fake"] = [0.001] * (cell.SATURATED_STEPS - 1) + [0.5]
    assert cell.flags_of(gmm2, log, {"modes_covered": 1.0}) == ["mode_collapse"]


@pytest.mark.parametrize("flags, message", [
    (["--task", "nope"], "task 'nope' is invalid; allowed: parabola"),
    (["--task", "parabola", "--backend", "torch", "--mode", "xla"], "mode 'xla' is invalid for backend 'torch'"),
    (["--task", "mnist", "--data-dir", "{tmp}/missing"], "does not exist"),
    (["--task", "mnist", "--batch-size", "100000"], "batch"),
    (["--task", "mnist", "--batch-size", "100000", "--steps", "5"], "larger than the mnist data set"),
    (["--task", "parabola", "--device", "cuda"], "cuda"),
    (["--task", "dcgan-mnist", "--pack", "2", "--steps", "5"], "GAN.pack=2 is invalid; allowed: 1 for a discriminator"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, flags, message):
    if "cuda" in flags and "cuda" in backend_torch.device_name("auto"):
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert run.main([*flags, "--out", str(out), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--batch-size", "-3"), ("--lr", "-1"), ("--num-seeds", "0"),
                                         ("--loss", "bogus"), ("--backend", "mxnet"), ("--pack", "0")])
def test_bad_flag_values_exit_2(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--task", "parabola", flag, value, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_output_file_or_a_foreign_runs_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert bench(tmp_path / "file", "--backend", "torch") == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / store.RUNS_FILE).write_text('{"some": "other tool"}\n')
    assert bench(foreign, "--backend", "torch", "--resume") == 2
    err = capsys.readouterr().err.splitlines()
    assert "is a file" in err[0] and "not a gan-parity-suite record" in err[1]
    assert sorted(p.name for p in foreign.iterdir()) == [store.RUNS_FILE]


def command(out, *flags):
    return [sys.executable, "-m", "benchmarks.run", "--backend", "torch", "--task", "parabola", "--mode", "eager",
            "--num-seeds", "2", "--steps", "100", "--checkpoint-every", "10", "--out", str(out), "--no-report", *flags]


def signal_when(cmd, ready, signum, out) -> subprocess.CompletedProcess:
    """Start ``cmd``, wait until ``ready()`` sees its marker on disk, then send ``signum``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = out.parent / "interrupted.log"  # a file, not a pipe: a full pipe would stall the run
    with open(log, "w") as sink:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None and not ready():
            time.sleep(0.02)
        process.send_signal(signum)
        process.wait(timeout=120)
    return subprocess.CompletedProcess(cmd, process.returncode, "", log.read_text())


def test_sigint_keeps_finished_runs_and_resume_completes(tmp_path):
    """The signal is sent once seed 0 is recorded and seed 1 has written its first checkpoint (10 of 100 steps),
    but the assertions hold wherever it lands: finished runs kept whole, the CSV matching runs.jsonl, no temp file,
    and --resume completing every cell exactly once."""
    out = tmp_path / "out"
    seed_1 = store.checkpoint_path(out, "parabola-torch-eager-minimax-s1")
    first = signal_when(command(out), seed_1.exists, signal.SIGINT, out)
    recorded = [r["seed"] for r in store.read_records(out)]
    assert "Traceback" not in first.stderr
    assert (first.returncode, recorded) in ((130, [0]), (130, [0, 1]), (0, [0, 1])), first.stderr[-2000:]
    if first.returncode == 130:
        assert "--resume" in first.stderr
    assert [int(s) for s in pd.read_csv(out / store.CSV_FILE)["seed"]] == recorded
    assert [p for p in out.rglob(".*") if checkpoint.is_temp_file(p)] == []  # no temp file left behind
    done = subprocess.run(command(out, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["seed"] for r in store.read_records(out)] == [0, 1]  # every cell once: none lost, none duplicated
    assert f"{2 - len(recorded)} runs to do ({len(recorded)} already in" in done.stdout
    if recorded == [0]:  # seed 1 continued from its checkpoint, and left none behind
        assert "parabola-torch-eager-minimax-s1 continues from its checkpoint at step" in done.stdout
        assert store.read_records(out)[1]["resumed_from_step"] > 0 and not seed_1.exists()
    assert [p for p in out.rglob(".*") if checkpoint.is_temp_file(p)] == []


def test_command_line_bad_input_has_no_traceback_and_list_prints_tasks(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "benchmarks.run", "--task", "nope", "--out", str(tmp_path / "o")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: task 'nope'")
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    listed = subprocess.run([sys.executable, "-m", "benchmarks.run", "--list"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and all(name in listed.stdout for name in tasks.TASKS)


def test_an_interrupt_swallowed_by_python_still_stops_the_run():
    """A signal whose exception Python swallowed (raised inside a __del__) is re-raised between steps."""
    cell._pending_signal.append(signal.SIGTERM)
    try:
        with pytest.raises(cell.Interrupted) as stopped:
            cell.stop_if_interrupted()
        assert stopped.value.exit_code == 143
    finally:
        cell._pending_signal.clear()
    cell.stop_if_interrupted()  # nothing pending: no exception


def test_quick_suite_plan_runs_dcgan_mnist_small_and_without_xla():
    """The quick suite's dcgan-mnist: batch 64 (the tutorial's 256 is seconds a step on 2 cores), 20 steps, no
    tf+xla cell (minutes a step on CPU), the reason printed; an explicit --task keeps the tutorial's batch."""
    import backend_tf

    backends = {"torch": backend_torch, "tf": backend_tf}
    cells, skipped, suite = planned(backends=backends)
    dcgan = [c for c in cells if c.task.name == "dcgan-mnist"]
    assert suite == "quick" and {(c.backend, c.mode) for c in dcgan} == \
        {("torch", "eager"), ("torch", "compiled"), ("tf", "eager"), ("tf", "compiled")}
    assert all(c.spec.batch_size == 64 for c in dcgan) and {c.steps for c in dcgan} == {20, 5, 1}  # 5: PyTorch out of the box (25%)
    assert any("dcgan-mnist tf+xla" in reason for reason in skipped)
    assert all(c.spec.batch_size == c.task.spec.batch_size for c in cells if c.task.name != "dcgan-mnist")
    cells, _, _ = planned("--task", "dcgan-mnist", "--steps", "3", backends=backends)
    assert {c.spec.batch_size for c in cells} == {256} and ("tf", "xla") in {(c.backend, c.mode) for c in cells}


def test_the_quick_suite_times_the_phases_of_eager_modes_only():
    """A graph mode's phase times cost a second, split compile (cell.finish): the quick suite leaves them out, and
    every other run keeps them; sampling is timed either way."""
    from common.backend import get_backend

    task = tasks.get_task("parabola")
    machine = {"peak_gflops": 100.0, "sgemm_gflops": {}}
    phases = {}
    for mode in ("eager", "compiled"):
        for suite in ("custom", "quick"):
            one = cell.Cell(task, "tf", mode, task.spec, 6, 0)
            trainer = get_backend("tf").build(task.spec, cell.initial_weights(task.spec, 0), device="cpu", mode=mode)
            loop = cell.CellLoop(one, trainer, cell.Stream(task.spec, task.load().source, 0),
                                 cell.RunOptions(out="", suite=suite, device="cpu"), out=io.StringIO())
            while loop.advance():
                pass
            phases[mode, suite] = set(cell.finish(loop, task.load(), machine, {}).record.extra_timings)
    assert phases["eager", "custom"] == phases["eager", "quick"] == phases["compiled", "custom"] == \
        {"d_update_s", "g_update_s", "sample_s"}
    assert phases["compiled", "quick"] == {"sample_s"}
