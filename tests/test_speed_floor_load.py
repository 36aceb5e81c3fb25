"""Issue 26's speed bookkeeping, without timing anything: the step's floor (common/flops.py, benchmarks/timing.py), the machine's load
around timed steps (benchmarks/timing.py) and a busy machine named in the report's speed verdicts."""
from __future__ import annotations

import pytest

from benchmarks import perf, timing
from benchmarks.record import RunRecord, check_fields
from benchmarks.report import faster, speed
from common import flops
from common.spec import Optimizer, Updates


def test_optimizer_traffic_is_every_parameter_word_read_and_written_once():
    """mnist's 2.04 M parameters with Adam: p, g, m, v read and p, m, v written, 4 bytes each (issue 26: 57 MB)."""
    spec = perf.spec_of("mnist", 128)
    params = sum(i * o + o for mlp in (spec.generator, spec.discriminator) for i, o in mlp.layer_shapes)
    assert params == 2_039_953
    assert flops.optimizer_traffic_bytes(spec) == params * 7 * 4
    d_params = sum(i * o + o for i, o in spec.discriminator.layer_shapes)
    rmsprop = spec.replace(d_optimizer=Optimizer(name="rmsprop", lr=1e-3))
    assert flops.optimizer_traffic_bytes(rmsprop) == (params - d_params) * 7 * 4 + d_params * 5 * 4
    two_critic_steps = spec.replace(updates=Updates(order="d_then_g", d_steps=2, reuse_fake=False))
    assert flops.optimizer_traffic_bytes(two_critic_steps) == (params + d_params) * 7 * 4


def test_the_floor_is_the_matmuls_plus_the_optimiser_traffic_at_the_measured_bandwidth():
    """Issue 26's worked example: matmuls 21.3 ms + 57 MB at 23.3 GB/s = 23.8 ms; a 37.6 ms step is 63% of it."""
    floor = timing.step_floor_seconds(21.3e-3, 57_118_684, 23.3)
    assert floor == pytest.approx(23.75e-3, abs=0.01e-3)
    assert round(100 * floor / 37.6e-3) == 63


def test_goals_print_the_floor_and_pytorch_against_tensorflow():
    report = {"b": {"modes": [{"backend": "torch", "mode": "compiled", "pct_of_floor": 63.0, "pct_of_peak": 12.0},
                              {"backend": "tf", "mode": "xla", "pct_of_floor": 85.0, "pct_of_peak": 14.0}]},
              "c": [{"backend": "torch", "mode": "compiled", "optimizer": "spec", "k": 200, "steps_per_s": 6000.0},
                    {"backend": "tf", "mode": "xla", "optimizer": "spec", "k": 200, "steps_per_s": 10000.0}]}
    lines = perf.goals(report, ["torch", "tf"])
    assert "goal: mnist batch 128 >= 80% of the step's floor, PyTorch best 63% (compiled): NOT met" in lines
    assert "goal: mnist batch 128 >= 80% of the step's floor, TensorFlow best 85% (xla): met" in lines
    assert lines[-1] == "goal: parabola, PyTorch's best >= 0.75x TensorFlow's best in the same run: 0.60x: NOT met"


def test_load_counts_only_what_other_processes_took(monkeypatch):
    """The machine's CPU seconds less this process's, per second of wall time; busy past BUSY_OTHERS_CORES."""
    clock = {"wall": 100.0, "busy": 1000.0, "own": 10.0}
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(timing, "_busy_cpu_seconds", lambda: clock["busy"])
    monkeypatch.setattr(timing, "_own_cpu_seconds", lambda: clock["own"])
    before = timing.load_snapshot()
    clock.update(wall=110.0, busy=1018.0, own=18.0)  # 10 s: this process 8 CPU s, the machine 18: others 10
    load = timing.load_since(before)
    assert load["others_cpu_s"] == pytest.approx(10.0) and load["others_cores"] == pytest.approx(1.0)
    assert load["busy"] is True and load["wall_s"] == pytest.approx(10.0)
    assert timing.load_note(load).startswith("busy machine: other processes took 1.0 of ")
    clock.update(wall=120.0, busy=1028.5, own=28.0)  # since before: others 10.5 CPU s in 20 s
    later = timing.load_since(before)
    assert later["others_cores"] == pytest.approx(10.5 / 20) and later["busy"] is True
    clock.update(wall=200.0, busy=1109.0, own=100.0)
    assert timing.load_since(before)["busy"] is False and timing.load_note(timing.load_since(before)) == ""
    monkeypatch.setattr(timing, "_busy_cpu_seconds", lambda: float("nan"))  # no /proc/stat: unknown, not idle
    assert timing.load_since(timing.load_snapshot())["busy"] is None


def record(backend, mode, load=None, median=1e-3):
    return {"backend": backend, "mode": mode, "config": {"optimizer": "spec"}, "steps_per_call": 1,
            "median_step_s": median, "load": load}


BUSY = {"load_avg_1m": 3.1, "others_cpu_s": 13.0, "others_cores": 1.3, "wall_s": 10.0, "cores": 2, "busy": True}
IDLE = {**BUSY, "others_cores": 0.01, "others_cpu_s": 0.1, "busy": False}


def test_a_speed_verdict_measured_on_a_busy_machine_says_so():
    speed_of = {"ratio": 0.2, "low": 0.18, "high": 0.22, "verdict": "b faster", "host": None}
    quiet = faster.speed_verdict({**speed_of, "best": {"torch": [record("torch", "compiled", IDLE)],
                                                       "tf": [record("tf", "xla", IDLE)]}})
    assert quiet == "TF XLA, 5.00x faster than PyTorch torch.compile (95% CI 4.55–5.56)"
    busy = faster.speed_verdict({**speed_of, "best": {"torch": [record("torch", "compiled", BUSY)],
                                                      "tf": [record("tf", "xla", IDLE)]}})
    assert busy == (quiet + "; measured on a busy machine (1 of 2 runs; worst: other processes took 1.3 of 2 "
                    "cores (load average 3.1))")
    # Records from before the load was recorded: no word either way.
    assert faster.speed_verdict({**speed_of, "best": {"torch": [record("torch", "compiled")],
                                                      "tf": [record("tf", "xla")]}}) == quiet
    assert [speed.machine_load(record("torch", "eager", load)) for load in (None, IDLE, BUSY)] == [
        "—", "idle", "busy: others 1.3 of 2 cores"]


def test_a_record_carries_its_load_and_an_old_record_reads_without_it():
    from tests.test_store import record as stored_record  # a whole runs.jsonl line of made-up values

    check_fields(stored_record(load=BUSY))
    check_fields(stored_record())  # no load: a record of before issue 26
    assert RunRecord.from_json(stored_record()).load is None
    assert RunRecord.from_json(stored_record(load=BUSY)).to_json()["load"] == BUSY
    with pytest.raises(ValueError, match="field load.busy"):
        check_fields(stored_record(load={**BUSY, "busy": "yes"}))


def test_the_floors_products_are_every_dense_layers_three_matmuls_and_convolutions_have_none():
    """mnist: G 100-128-256-512-1024-784 and D 784-512-256-1 at batch 128, x @ W, grad @ W^T and x^T @ grad per
    layer; PacGAN's D sees the packs (batch rows, pack x the features); a DCGAN has no floor of matmuls."""
    spec = perf.spec_of("mnist", 128)
    products = flops.dense_products(spec)
    assert len(products) == 3 * (5 + 3)
    assert products[:3] == [(128, 100, 128), (128, 128, 100), (100, 128, 128)]
    assert (128, 784, 512) in products and (784, 128, 512) in products
    packed = spec.with_pack(2)
    assert (128, 2 * 784, 512) in flops.dense_products(packed) and (256, 100, 128) in flops.dense_products(packed)
    assert flops.dense_products(perf.spec_of("dcgan-mnist")) is None


def test_a_timed_run_records_its_floor_and_the_report_shows_it(tmp_path, one_torch_thread):
    """A real timed run of a dense GAN carries its floor (its matmuls alone + the optimiser traffic at the measured
    bandwidth, and floor / median step as pct_of_floor); the report's speed table prints it, and a dash for a run
    without one (a record from before the floor was measured)."""
    from benchmarks import job, store
    from tests.conftest import request_of

    job.run(request_of("--backend", "torch", "--task", "parabola", "--steps", "30", "--mode", "eager", "--out",
                       tmp_path, "--no-report"))
    record = store.read_records(str(tmp_path))[0]
    floor = record["floor"]
    assert floor["optimizer_traffic_bytes"] == flops.optimizer_traffic_bytes(perf.spec_of("parabola"))
    assert 0 < floor["matmul_s"] < floor["floor_s"] < record["median_step_s"] * 10
    assert floor["pct_of_floor"] == pytest.approx(100 * floor["floor_s"] / record["median_step_s"])
    from benchmarks.report import FigureFolder
    from benchmarks.report.doc import Doc, fmt

    doc = Doc()
    speed.speed_section(doc, [record, {**record, "floor": None, "seed": 1}], FigureFolder(tmp_path / "figures"))
    table = next(b[1] for b in doc.blocks if b[0] == "table" and "% of floor" in b[1])
    assert list(table["% of floor"]) == [fmt(floor["pct_of_floor"], 2), "—"]


def test_the_machines_floor_takes_each_product_at_its_fastest_framework():
    """Three stand-in frameworks, each fastest at one shape: the machine's floor is the sum of the minima, scaled to
    the step's FLOPs as each framework's own floor is."""
    spec = perf.spec_of("parabola")
    shapes = list(dict.fromkeys(flops.dense_products(spec)))

    class Framework:  # a backend module's one timing function: fast at one shape only
        def __init__(self, fast_shape):
            self.fast_shape = fast_shape

        def matmul_seconds(self, m, k, n, dtype, device):
            return 1e-6 if (m, k, n) == self.fast_shape else 1e-3
    modules = [Framework(shape) for shape in shapes]
    products = flops.dense_products(spec)
    scale = flops.train_step_flops(spec)["total"] / sum(2 * m * k * n for m, k, n in products)
    assert timing.fastest_matmul_seconds(spec, modules) == pytest.approx(len(products) * 1e-6 * scale)
    assert timing.matmul_only_seconds(spec, modules[0])[0] > 100 * timing.fastest_matmul_seconds(spec, modules)
