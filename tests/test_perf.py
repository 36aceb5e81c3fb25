"""benchmarks/perf.py's K-step check and benchmarks/sweep.py's table: behaviour only, no timing assertions."""
import numpy as np
import pandas as pd
import pytest

from benchmarks import perf, store, sweep


@pytest.mark.parametrize("backend, mode", [("torch", "eager"), ("tf", "compiled")])
def test_k_steps_equal_single_steps(backend, mode):
    gap = perf.check_k_steps(backend, mode, 3)
    assert gap == 0.0 if mode == "eager" else 0.0 <= gap <= perf.tolerances.K_STEPS_ATOL


def test_goals_name_each_frameworks_best_configuration():
    report = {"c": [{"backend": "torch", "mode": "compiled", "optimizer": "spec", "k": 1, "steps_per_s": 6000.0},
                    {"backend": "torch", "mode": "eager", "optimizer": "native", "k": 1, "steps_per_s": 900.0},
                    {"backend": "tf", "mode": "xla", "optimizer": "spec", "k": 100, "steps_per_s": 4000.0}],
              "a": [{"backend": "tf", "mode": "xla", "overhead_pct": 7.5}]}
    lines = perf.goals(report, ["torch", "tf"])
    assert lines[0] == "goal: parabola >= 5000 steps/s, PyTorch best 6000 (compiled, spec, K=1): met"
    assert lines[1] == "goal: parabola >= 5000 steps/s, TensorFlow best 4000 (xla, spec, K=100): NOT met"
    assert lines[2] == "goal: harness overhead <= 5%, TensorFlow xla: +7.5%: NOT met"


def test_xla_fuses_the_optimiser_update():
    """The optimised HLO of TF's XLA step: the Adam update's sqrt and divide all sit inside fusions."""
    fused = perf.xla_fusion("parabola", 16)
    assert fused["fusions"] > 0 and fused["unfused_update_ops"] == []


def test_k_step_check_can_fail(monkeypatch):
    from backend_torch.trainer import Trainer

    original = Trainer.train_steps

    def off_by_one(self, real, noise, gp_eps=None):
        results = original(self, real, noise, gp_eps)
        results["d_loss"] = results["d_loss"] + np.float32(1e-3)
        return results
    monkeypatch.setattr(Trainer, "train_steps", off_by_one)
    with pytest.raises(AssertionError, match="differs from 2 train_step calls by 0.001"):
        perf.check_k_steps("torch", "eager", 2)


def test_sweep_writes_a_well_formed_csv(tmp_path):
    frame = sweep.run_sweep("width", backends=["torch"], modes=["eager", "xla"], out_dir=tmp_path, task="parabola",
                            values=[0.5, 1.0], steps=3, warmup=1)
    written = pd.read_csv(tmp_path / store.SWEEP_FILE)
    assert list(written.columns) == list(sweep.COLUMNS)
    assert len(written) == 2  # torch has no xla mode: skipped, not failed
    assert written["value"].tolist() == [0.5, 1.0] and set(written["mode"]) == {"eager"}
    assert (written["p25_s"] <= written["median_s"]).all() and (written["median_s"] <= written["p75_s"]).all()
    assert (written["gflops"] > 0).all() and (written["compile_s"] >= 0).all()
    # GFLOP/s follows from the step time and the FLOP model: the wider net does more work per step.
    assert written["steps_per_s"].tolist() == pytest.approx((1 / written["median_s"]).tolist())
    # The file holds what the function returned: text and counts exactly, floats to CSV round-trip precision.
    assert frame[["sweep", "task", "backend", "mode"]].equals(written[["sweep", "task", "backend", "mode"]])
    numbers = [c for c in sweep.COLUMNS if c not in ("sweep", "task", "backend", "mode")]
    np.testing.assert_allclose(frame[numbers].to_numpy(float), written[numbers].to_numpy(float), rtol=1e-15)


def test_sweep_scales_only_hidden_sizes():
    from common.tasks import TASKS

    spec = sweep.point_spec(TASKS["mnist-small"].spec, "width", 0.25)
    assert spec.generator.sizes == (64, 64, 64, 784) and spec.discriminator.sizes == (784, 64, 64, 1)
    assert sweep.point_spec(TASKS["mnist-small"].spec, "batch", 32).batch_size == 32


def test_sweep_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="allowed: batch, width"):
        sweep.run_sweep("depth", out_dir=tmp_path)


def test_harness_overhead_times_the_real_loop_of_a_cell(monkeypatch):
    """The overhead figure is measured on benchmarks/cell.py's own loop, not on a copy that could drift."""
    from benchmarks import cell

    calls = []
    real_advance = cell.CellLoop.advance

    def counted(self):
        calls.append(self.done)
        return real_advance(self)
    monkeypatch.setattr(cell.CellLoop, "advance", counted)
    figure = perf.harness_overhead("torch", "eager", steps=perf.BLOCK)
    # A warm-up block, then one timed block: every iteration one step further along the real loop.
    assert calls == list(range(2 * perf.BLOCK)) and figure["steps_each"] == perf.BLOCK
    assert figure["harness_s"] > 0 and figure["plain_s"] > 0
