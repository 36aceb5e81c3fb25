"""The chaos floor on real runs of the harness: planned with --backend both, recorded as such, and the verdict it
gives: within the floor on a toy where the two frameworks compute the same thing, beyond it for a deliberately
broken TensorFlow (Adam's epsilon moved, injected here by monkeypatching, never in the code)."""
import dataclasses

import numpy as np
import pytest

from benchmarks import report, run, store, timing
from benchmarks.report.divergence import model_verdict, task_drift
from benchmarks.report.runs import Histories, load_runs
from common import tolerances as tol
from common.init import initial_weights, nudge_ulp
from common.tasks import TASKS

STEPS = 60


@pytest.fixture(autouse=True)
def cheap_peak(monkeypatch):
    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)


def bench(out, *flags) -> int:
    return run.main(["--task", "parabola", "--backend", "both", "--mode", "eager", "--steps", str(STEPS),
                     "--out", str(out), "--no-report", *flags])


def drift_of(out):
    runs = load_runs(out)
    floors = [r for r in runs if r["init"] != "seed"]
    return task_drift([r for r in runs if r["init"] == "seed"], floors, Histories(out))


def test_nudge_moves_every_weight_by_one_ulp():
    weights = initial_weights(TASKS["parabola"].spec, 0)
    nudged = nudge_ulp(weights)
    for net in weights:
        for w, n in zip(weights[net], nudged[net]):
            assert n.dtype == np.float32 and (n > w).all()
            assert (n - w <= np.spacing(np.abs(w))).all()  # one unit in the last place, no more
            assert (np.nextafter(n, np.float32(-np.inf)) == w).all()  # and the very next float32
    assert initial_weights(TASKS["parabola"].spec, 0, "seed+ulp")["generator"][0][0, 0] == nudged["generator"][0][0, 0]
    with pytest.raises(ValueError, match="init 'x' is invalid"):
        initial_weights(TASKS["parabola"].spec, 0, "x")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("floor")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timing, "SGEMM_SIZE", 128)
        assert bench(out) == 0
    return out


def test_both_backends_plan_one_floor_run_per_seed_recorded_as_such(toy, tmp_path):
    records = store.read_records(toy)
    assert [(r["backend"], r["mode"], r["init"]) for r in records] == [
        ("torch", "eager", "seed"), ("tf", "eager", "seed"), ("torch", "eager", "seed+ulp")]
    twin, floor = records[0], records[2]
    assert floor["run_id"].startswith("parabola-torch-eager-minimax-s0-ulp-") and floor["config"] == twin["config"]
    h_twin, h_floor = (store.read_history(toy, r["history"]) for r in (twin, floor))
    assert not np.array_equal(h_twin["sketch"][0], h_floor["sketch"][0])  # other initial weights, one ulp away
    np.testing.assert_allclose(h_twin["sketch"][0], h_floor["sketch"][0], rtol=2.0 ** -22, atol=0)
    assert bench(tmp_path / "no-floor", "--no-floor") == 0
    assert [r["init"] for r in store.read_records(tmp_path / "no-floor")] == ["seed", "seed"]


def test_the_floor_holds_on_a_toy_where_both_compute_the_same(toy):
    drift = drift_of(toy)
    [row] = drift["rows"]
    assert row["floor"] is not None and row["within"] is True, row
    assert 0 <= row["max_ratio"] <= tol.FLOOR_RATIO_LIMIT
    assert model_verdict(drift).startswith("yes: drift at most") and "x the one-ulp chaos floor (limit 10x)" in model_verdict(drift)
    report.build_report(toy)
    md = (toy / report.REPORT_MD).read_text()
    assert "within the floor" in md and "vs itself from weights +1 ulp, seed 0" in md
    speed = md.split("## Speed", 1)[1].split("\n## ", 1)[0]
    assert speed.count("\n| parabola | PyTorch | eager |") == 1  # the floor's twin is no speed row of its own


def test_a_broken_backend_is_flagged_beyond_the_floor(tmp_path, monkeypatch):
    import backend_tf.optim

    original = backend_tf.optim.SpecAdam.__init__

    def moved_epsilon(self, opt, params):
        original(self, opt, params)
        self.eps = 1e-5  # 1e-8 in the spec: a semantic difference, not rounding

    monkeypatch.setattr(backend_tf.optim.SpecAdam, "__init__", moved_epsilon)
    assert bench(tmp_path) == 0
    drift = drift_of(tmp_path)
    [row] = drift["rows"]
    assert row["within"] is False and row["max_ratio"] > tol.FLOOR_RATIO_LIMIT, row
    assert model_verdict(drift).startswith("investigate: drift")
    report.build_report(tmp_path)
    md = (tmp_path / report.REPORT_MD).read_text()
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "[investigate: drift" in summary and "(#drift-parabola)" in summary
    assert "a semantic difference to investigate" in md


def test_the_quick_suite_plans_one_floor_run_per_task_beside_its_twin():
    from common.backend import get_backend
    from common.tasks import QUICK_SUITE

    args = run.parse_args(["--backend", "both", "--seeds", "2"])
    cells, *_ = run.plan(args, {name: get_backend(name) for name in ("torch", "tf")})
    floors = [c for c in cells if c.init == "seed+ulp"]
    assert [(c.task.name, c.backend, c.mode, c.seed) for c in floors] == [
        (task, "torch", "compiled", seed) for task in QUICK_SUITE for seed in (0, 1)]
    for floor in floors:
        twin = next(c for c in cells if c.key == dataclasses.replace(floor, init="seed").key)
        assert (twin.steps, twin.spec, twin.config) == (floor.steps, floor.spec, floor.config)
        assert floor.id == twin.id + "-ulp"
    single = run.parse_args(["--backend", "torch"])
    assert not [c for c in run.plan(single, {"torch": get_backend("torch")})[0] if c.init != "seed"]


def test_the_ratio_is_judged_once_the_floor_has_left_its_one_ulp_start():
    """dcgan-mnist's shape (quick suite, 2026-12-02): one step's amplified rounding across frameworks against a floor
    still at one ulp is no verdict; from the snapshot where the floor has grown FLOOR_GROWTH-fold on, it is. A floor
    that never grows keeps every snapshot; a drift far above a grown floor is still flagged."""
    from benchmarks.report.divergence import against_floor

    steps = np.array([0, 1, 3, 20])
    floor = {"sketch_steps": steps, "weight_rel_l2": np.array([1.2e-7, 1.3e-7, 8.6e-6, 1.2e-4])}
    cross = {"sketch_steps": steps, "weight_rel_l2": np.array([0.0, 4.2e-5, 5.7e-5, 2.2e-4])}
    verdict = against_floor(cross, floor)
    assert verdict["within"] is True and verdict["at_step"] == 3 and verdict["max_ratio"] == pytest.approx(5.7e-5 / 8.6e-6)
    flat = {"sketch_steps": steps, "weight_rel_l2": np.full(4, 1.2e-7)}
    assert against_floor(cross, flat)["at_step"] == 20 and against_floor(cross, flat)["within"] is False  # all judged
    broken = {"sketch_steps": steps, "weight_rel_l2": np.array([0.0, 4.2e-5, 5e-3, 9e-2])}
    assert against_floor(broken, floor)["within"] is False
