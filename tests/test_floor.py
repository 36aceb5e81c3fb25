"""The chaos floor on real runs of the harness: its twins planned with --backend both (batches in another order),
recorded as such, and the verdict of the band: within it on a toy where the two frameworks compute the same thing,
beyond it for a deliberately broken TensorFlow (Adam's epsilon moved, injected here by monkeypatching, never in the
code); the band rule itself on planted curves; a reordered step computing the same step."""
import dataclasses

import numpy as np
import pytest

from benchmarks import report, run, store, timing
from benchmarks.report.divergence import model_verdict, task_drift
from benchmarks.report.runs import Histories, load_runs
from common import tolerances as tol
from common.init import initial_weights, init_weights, nudge_ulp
from benchmarks.parity import conv_parity_spec, source_for
from common.backend import get_backend
from common.stream import Stream
from common.tasks import dcgan_faces_spec, dcgan_mnist_spec, pacgan_spec
from common.twin import TWINS, Twin
from common.tasks import TASKS
from conftest import planned

STEPS = 60
# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread; its default threads made a small
# model's eager step up to 60x slower on a loaded 2-core machine). The runs record the thread count they ran with.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _cheap_peak(cheap_peak):
    pass


def bench(out, *flags, steps: int = STEPS) -> int:
    return run.main(["--task", "parabola", "--backend", "both", "--mode", "eager", "--steps", str(steps),
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


def test_both_backends_plan_three_floor_twins_per_seed_recorded_as_such(toy, tmp_path):
    records = store.read_records(toy)
    assert [(r["backend"], r["mode"], r["init"]) for r in records] == [
        ("torch", "eager", "seed"), ("tf", "eager", "seed"), ("torch", "eager", "seed+order1"),
        ("torch", "eager", "seed+order2"), ("torch", "eager", "seed+order3")]
    twin = records[0]
    for floor, suffix in zip(records[2:], ("order1", "order2", "order3")):
        assert floor["run_id"].startswith(f"parabola-torch-eager-minimax-s0-{suffix}-") and floor["config"] == twin["config"]
        h_twin, h_floor = (store.read_history(toy, r["history"]) for r in (twin, floor))
        np.testing.assert_array_equal(h_twin["sketch"][0], h_floor["sketch"][0])  # the same initial weights
        assert not np.array_equal(h_twin["sketch"][-1], h_floor["sketch"][-1])  # other summation orders since
    assert bench(tmp_path / "no-floor", "--no-floor", steps=5) == 0  # what is planned, not what the steps show
    assert [r["init"] for r in store.read_records(tmp_path / "no-floor")] == ["seed", "seed"]


def test_the_floor_holds_on_a_toy_where_both_compute_the_same(toy):
    drift = drift_of(toy)
    [row] = drift["rows"]
    assert len(row["band"]) == 3 and row["within"] is True, row
    assert 0 <= row["max_ratio"] <= row["limit"]
    assert model_verdict(drift).startswith("yes: drift at most")
    report.build_report(toy)
    md = (toy / report.REPORT_MD).read_text()
    assert "within the floor" in md and "vs itself, batches reordered (order1), seed 0" in md
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
    assert row["within"] is False and row["max_ratio"] > 10 * row["limit"], row
    assert model_verdict(drift).startswith("no: drift")
    report.build_report(tmp_path)
    md = (tmp_path / report.REPORT_MD).read_text()
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "[no: drift" in summary and "(#drift-parabola)" in summary
    assert "a difference in what is computed, to investigate" in md


def test_a_slope_off_by_a_little_turns_the_verdict(tmp_path, monkeypatch):
    """A small real difference: TensorFlow's ReLUs leak a little (LeakyReLU with slope 0.01, PyTorch's default
    slope, instead of ReLU) on the 60 parabola steps: the twins agree, the cross-framework drift leaves their band."""
    import backend_tf.models

    original = backend_tf.models.layer_stage

    def leaky(info, dtype="float32"):
        if getattr(info.layer, "name", None) == "relu":
            info = dataclasses.replace(info, layer=dataclasses.replace(info.layer, name="leaky_relu", slope=0.01))
        return original(info, dtype)

    monkeypatch.setattr(backend_tf.models, "layer_stage", leaky)
    assert TASKS["parabola"].spec.generator.hidden_activation == "relu"
    assert bench(tmp_path) == 0
    drift = drift_of(tmp_path)
    [row] = drift["rows"]
    assert row["within"] is False, row  # the band says no, whatever step 1's loss check says first
    assert model_verdict(drift).startswith("no: ")


def test_the_quick_suite_plans_one_floor_run_per_task_beside_its_twin():
    from common.tasks import QUICK_SUITE

    cells, *_ = planned("--backend", "both", "--num-seeds", "2")
    floors = [c for c in cells if c.init != "seed"]
    assert [(c.task.name, c.backend, c.mode, c.seed, c.init) for c in floors] == [
        (task, "torch", "compiled", seed, init) for init in TWINS for task in QUICK_SUITE for seed in (0, 1)]
    for floor in floors:
        twin = next(c for c in cells if c.key == dataclasses.replace(floor, init="seed").key)
        assert (twin.steps, twin.spec, twin.config) == (floor.steps, floor.spec, floor.config)
        assert floor.id == twin.id + "-" + floor.init.split("+")[1]
    assert not [c for c in planned("--backend", "torch")[0] if c.init != "seed"]


def test_two_or_more_backends_plan_one_floor_of_the_first_backends_longest_cell():
    """One floor per task and seed serves every pair: the first backend's longest cell, so that its band spans the
    pairs' whole length (TensorFlow's first quick cell is a short eager one)."""
    for words, first in ((["torch", "jax"], ("torch", "compiled")), (["tf", "jax"], ("tf", "compiled")),
                         (["all"], ("torch", "compiled"))):
        cells, *_ = planned("--backend", *words, "--task", "parabola")
        floors = [c for c in cells if c.init != "seed"]
        assert [(c.backend, c.mode, c.seed, c.init) for c in floors] == [(*first, 0, init) for init in TWINS]
        assert floors[0].steps == max(c.steps for c in cells)
    assert not [c for c in planned("--backend", "jax", "--task", "parabola")[0] if c.init != "seed"]


def test_the_band_judges_by_its_prediction_limit():
    """One more draw of the band's kind lies below its prediction limit: a kink crossed in one pair first
    (mnist-small's step 50, where the band itself spreads) is within it; a drift far above the band's centre where
    the band agrees is not, and the limit is Student's; two identical curves, or one curve, give no spread and no
    verdict; step 0 is not judged."""
    from scipy import stats

    from benchmarks.report.divergence import against_floor

    steps = np.array([0, 20, 50])
    band = [{"sketch_steps": steps, "weight_rel_l2": np.array([0.0, a, b])}
            for a, b in ((2.0e-8, 7.2e-8), (2.2e-8, 5.7e-8), (2.5e-8, 3.2e-5))]
    honest = {"sketch_steps": steps, "weight_rel_l2": np.array([0.0, 2.3e-8, 1.0e-5])}
    assert against_floor(honest, band)["within"] is True
    logs = np.log([2.0e-8, 2.2e-8, 2.5e-8])
    limit = np.exp(logs.mean() + stats.t.ppf(tol.FLOOR_CONFIDENCE, 2) * logs.std(ddof=1) * np.sqrt(1 + 1 / 3))
    for factor, within in ((0.99, True), (1.01, False)):
        verdict = against_floor({"sketch_steps": steps[:2], "weight_rel_l2": np.array([0.0, limit * factor])}, band)
        assert verdict["within"] is within and verdict["at_step"] == 20
    broken = {"sketch_steps": steps, "weight_rel_l2": np.array([0.0, 5e-6, 9e-3])}
    assert against_floor(broken, band)["within"] is False
    assert against_floor(honest, band[:1])["within"] is None
    assert against_floor(honest, [band[0], band[0]])["within"] is None


TWIN_SPECS = {  # every layer kind: BatchNorm, dropout, 'same' and cropped (transposed) convolutions, a Reshape to
    # channels after a Dense, Maxout groups, packs
    "conv-parity": lambda dtype: conv_parity_spec("wgan-gp", dtype=dtype),
    "dcgan-mnist": lambda dtype: dcgan_mnist_spec(width=1 / 16, batch_size=8).replace(dtype=dtype),
    "dcgan-faces": lambda dtype: dcgan_faces_spec(ngf=4, ndf=4, image_size=16).replace(batch_size=8, dtype=dtype),
    "pacgan-4": lambda dtype: pacgan_spec(4).replace(batch_size=8, dtype=dtype),
}


@pytest.mark.parametrize("name", list(TWIN_SPECS))
def test_a_twin_is_the_same_gan_in_other_summation_orders(name):
    """A twin holds the seed's weights in its own unit order (restored exactly) and computes the same function; in
    float64 one step of the twin, batch reordered, gives the same losses and (restored) weights to float64
    rounding, in float32 other ones by float32 rounding: other summation orders, nothing else."""
    from common import rounding

    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-4)):
        spec = TWIN_SPECS[name](dtype)
        weights = init_weights(spec, 0)
        twin = Twin(spec, 0, "seed+order1")
        held = twin.weights(weights)
        for net in weights:
            assert all(np.array_equal(a, b) for a, b in zip(twin.restore(held)[net], weights[net]))
        assert any(not np.array_equal(a, b) for a, b in zip(held["generator"], weights["generator"]))
        noise = np.random.default_rng(1).standard_normal((8 * spec.pack, spec.latent_dim))
        stats = {net: [np.full(s, 0.5 if j % 2 == 0 else 2.0) for j, (_, s) in
                       enumerate(getattr(spec, f"{net}_network").statistics())] for net in weights}
        want = rounding.generate_bound(spec, weights, stats, noise)[0]
        got = rounding.generate_bound(spec, held, twin.statistics(stats), noise)[0]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        plain = Stream(spec, source_for(spec), 3).next()
        moved = twin.inputs(plain)
        assert sorted(map(tuple, moved.real[0])) == sorted(map(tuple, plain.real[0]))
        results = []
        for w, inputs in ((weights, plain), (held, moved)):
            trainer = get_backend("torch").build(spec, w, device="cpu")
            results.append((trainer.train_step(**inputs.as_kwargs()), trainer.get_weights()))
        (a, wa), (b, wb) = results
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=rtol, abs=rtol), (name, dtype, key)
        for net in wa:
            for x, y in zip(wa[net], twin.restore(wb)[net]):
                np.testing.assert_allclose(y, x, rtol=0, atol=rtol * 10 * max(1.0, float(np.abs(x).max())))
