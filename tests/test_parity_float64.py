"""float64 parity: the strong proof that PyTorch and TensorFlow compute the same function, float32 rounding aside.

In float64 (``GAN.dtype = "float64"``) every rounding gap between the frameworks shrinks by 2^-29 against float32,
so the bounds are float32's derived bounds with float64's unit roundoff (common/tolerances.py, the float64
section). Every loss with both spec optimisers over FLOAT64_SEEDS, the frameworks' own optimisers, compiled and
XLA modes, the convolutional GAN (BatchNorm, dropout, transposed convolutions), the step schedule against the
float64 numpy reference, and the contrast that makes float64 worth having: a deliberately broken TF backend (a
LeakyReLU slope one float32 ulp off, Adam's epsilon moved by 1 %) passes float32 parity and fails float64 parity.
JAX is paired with PyTorch at the same bounds on a subset (tests/test_parity.py says why): its dtypes, WGAN-GP with
Adam over two seeds, the convolutional GAN with WGAN-GP, the schedule against the numpy reference.
"""
import numpy as np
import pytest

from benchmarks.parity import (SeededPair, UniformSource, WeightBound, build_pair, conv_parity_spec,
                               max_weight_difference, measure_seed, parity_spec, relative_distance)
from common import tolerances as tol
from common.backend import STEP_KEYS, get_backend
from common.init import init_weights
from common.spec import LOSSES, MLP, Loss, Optimizer, Updates
from common.stream import Stream
from tests import reference
from tests.test_parity import assert_forward_within

torch_backend = get_backend("torch")
tf_backend = get_backend("tf")
F64 = "float64"
BACKENDS = ["torch", "tf", "jax"]


# ---- what a float64 run is made of ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [parity_spec, conv_parity_spec])
def test_float64_runs_start_from_the_float32_runs_draw_and_see_its_inputs(make):
    """Initial weights: float32's are the float64 draw rounded. Step inputs: the float32 stream's numbers exactly
    (a mask's kept value is 1 / (1 - rate) in each dtype)."""
    spec32, spec64 = make("wgan-gp"), make("wgan-gp", dtype=F64)
    w32, w64 = init_weights(spec32, 3), init_weights(spec64, 3)
    for net in w32:
        for a, b in zip(w32[net], w64[net]):
            assert b.dtype == np.float64 and np.array_equal(b.astype(np.float32), a)
    assert any(not np.array_equal(b, a) for net in w32 for a, b in zip(w32[net], w64[net]))  # not an upcast
    s32, s64 = Stream(spec32, UniformSource(spec32.data_dim), 3).next(), Stream(spec64, UniformSource(spec64.data_dim), 3).next()
    for name in ("real", "noise", "gp_eps"):
        assert getattr(s64, name).dtype == np.float64 and np.array_equal(getattr(s64, name), getattr(s32, name))
    if s32.dropout is not None:
        assert np.array_equal(s64.dropout > 0, s32.dropout > 0)
        assert set(np.unique(s64.dropout)) == {0.0, 1 / (1 - 0.3)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_float64_trainer_is_float64_throughout(backend, tmp_path):
    """Weights, optimiser moments, statistics, samples and checkpoints stay float64 (nothing is rounded to float32
    on the way out or in)."""
    # JAX: its jitted step (eager JAX compiles every float64 convolution op on its own: 16 s against 5), of the GAN
    # test_conv_gan_agrees_in_float64 runs: trainers of one spec share the compiled step, which compiles once
    spec = conv_parity_spec("wgan-gp" if backend == "jax" else "nonsaturating", dtype=F64)
    trainer = get_backend(backend).build(spec, init_weights(spec, 0), device="cpu",
                                         mode="compiled" if backend == "jax" else "eager")
    stream = Stream(spec, UniformSource(spec.data_dim), 0)
    trainer.train_step(**stream.next().as_kwargs())
    state = trainer.state()
    assert all(value.dtype == np.float64 for key, value in state.items() if not key.endswith("/t"))
    assert trainer.generate(stream.fixed_noise(4)).dtype == np.float64
    trainer.save(tmp_path / "ckpt.npz")
    other = get_backend(backend).build(spec, init_weights(spec, 1), device="cpu")
    other.load(tmp_path / "ckpt.npz")
    assert all(np.array_equal(other.state()[key], value) for key, value in state.items())


# ---- every loss and optimiser -----------------------------------------------------------------------------------
def test_forward_outputs_agree_in_float64():
    for spec in (parity_spec("nonsaturating", dtype=F64), conv_parity_spec("nonsaturating", dtype=F64)):
        pt, tf = build_pair(spec, seed=1)
        rng = np.random.default_rng(0)
        noise, x = rng.standard_normal((64, spec.latent_dim)), rng.uniform(-1, 1, (64, spec.data_dim))
        assert_forward_within(spec, pt, tf, noise, x)


@pytest.mark.parametrize("other, loss, optimizer", [("tf", loss, opt) for loss in LOSSES for opt in ("adam", "rmsprop")]
                         + [("jax", "wgan-gp", "adam")])
def test_every_loss_and_optimizer_agrees_in_float64(other, loss, optimizer):
    """Over FLOAT64_SEEDS against TF, every other seed a case (the bounds are derived per coordinate, not tuned on
    seeds; each loss still runs every seed over its two optimisers, each optimiser every seed over the losses), and
    the first two against JAX: step 1's gradients to GRADIENT_ULPS float64 units, every weight after 1 and 20 steps
    within the float64 derived bound, one step's relative weight distance within FLOAT64_STEP_RTOL, the losses within
    loss_bound in float64 (torch eager vs tf.function, or jax.jit)."""
    pair = SeededPair(parity_spec(loss, optimizer, dtype=F64), other=other)
    seeds = tol.FLOAT64_SEEDS[(LOSSES.index(loss) + ("adam", "rmsprop").index(optimizer)) % 2::2] if other == "tf" \
        else tol.FLOAT64_SEEDS[:2]
    for seed in seeds:
        got = measure_seed(pair, seed, tol.TRAJECTORY_STEPS)
        assert got["gradient_ratio"] <= 1.0, (seed, got)
        assert got["loss_ratio"] <= 1.0, (seed, got)
        assert got["step1_weight_ratio"] <= 1.0, (seed, got)
        assert got["step1_weight_rel_l2"] <= tol.FLOAT64_STEP_RTOL, (seed, got)
        assert got[f"step{tol.TRAJECTORY_STEPS}_weight_ratio"] <= 1.0, (seed, got)


@pytest.mark.parametrize("order, reuse, d_steps", [("g_then_d", True, 1), ("simultaneous", True, 1), ("d_then_g", False, 2)])
def test_update_orders_and_critic_steps_agree_in_float64(order, reuse, d_steps):
    spec = parity_spec("wgan-gp", order=order, reuse=reuse, dtype=F64).replace(
        updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse))
    pt, tf = build_pair(spec)
    bound = WeightBound(spec)
    stream = Stream(spec, UniformSource(), seed=2)
    for _ in range(2):
        inputs = stream.next().as_kwargs()
        a, b = pt.train_step(**inputs), tf.train_step(**inputs)
        assert all(abs(a[k] - b[k]) <= tol.loss_bound(a[k], bound.relative(pt.get_weights()) if bound.bound else 0.0, F64)
                   for k in a)
        bound.after_step(pt, tf)
    assert bound.ratio(pt.get_weights(), tf.get_weights()) <= 1.0


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_torch_optim_kernels_equal_the_spec_optimizers_in_float64(optimizer):
    """torch.optim's single-tensor, foreach and fused (Adam) kernels against the spec optimiser, in float64."""
    spec = parity_spec("nonsaturating", optimizer, dtype=F64)
    stream_inputs = [Stream(spec, UniformSource(), seed=0).next().as_kwargs()]
    want = torch_backend.build(spec, init_weights(spec, 0), device="cpu")
    want.train_step(**stream_inputs[0])
    for implementation in ("native", "native-foreach") + (("native-fused",) if optimizer == "adam" else ()):
        other = parity_spec("nonsaturating", optimizer, implementation=implementation, dtype=F64)
        got = torch_backend.build(other, init_weights(other, 0), device="cpu")
        got.train_step(**stream_inputs[0])
        assert max_weight_difference(got.get_weights(), want.get_weights()) <= tol.FLOAT64_KERNEL_ATOL, implementation
        assert got.state()["opt/generator/v/0"].dtype == np.float64


def test_keras_optimizers_run_in_float64():
    """Keras' own Adam keeps float64 moments and moves float64 weights (it differs from torch's by design: not
    parity; measured in every TF mode, only eager is tested to keep the suite fast)."""
    spec = parity_spec("nonsaturating", implementation="native", dtype=F64)
    trainer = tf_backend.build(spec, init_weights(spec, 0), device="cpu")
    trainer.train_step(**Stream(spec, UniformSource(), seed=0).next().as_kwargs())
    assert trainer.state()["opt/generator/m/0"].dtype == np.float64
    assert max_weight_difference(trainer.get_weights(), init_weights(spec, 0)) > 1e-4


# ---- compiled modes ---------------------------------------------------------------------------------------------
def test_tf_compiled_and_xla_agree_with_torch_eager_in_float64():
    """wgan-gp: the second-order graph, the hardest to compile (nonsaturating measured alike)."""
    spec = parity_spec("wgan-gp", dtype=F64)
    weights = init_weights(spec, 0)
    eager = torch_backend.build(spec, weights, device="cpu")
    compiled = [tf_backend.build(spec, weights, device="cpu", mode=m) for m in ("compiled", "xla")]
    bound = WeightBound(spec)
    stream = Stream(spec, UniformSource(), seed=0)
    for _ in range(2):
        inputs = stream.next().as_kwargs()
        rel = bound.relative(eager.get_weights()) if bound.bound else 0.0
        want = eager.train_step(**inputs)
        for trainer in compiled:
            got = trainer.train_step(**inputs)
            assert all(abs(got[k] - want[k]) <= tol.loss_bound(want[k], rel, F64) for k in STEP_KEYS), trainer.mode
        bound.after_step(eager)
    for trainer in compiled:
        assert bound.ratio(eager.get_weights(), trainer.get_weights()) <= 1.0, trainer.mode


def test_torch_compiled_agrees_with_eager_in_float64():
    """torch.compile's whole step in float64 (its step counts stay (1,)-shaped float64 tensors). The parity GAN's
    ingredients (LeakyReLU, tanh, its loss and Adam) with one hidden layer a network, not two: Inductor compiles C++
    kernels for every layer shape, and the second 32x32 layer adds kernels, not an ingredient."""
    spec = parity_spec("nonsaturating", dtype=F64)
    spec = spec.replace(generator=MLP((4, 32, spec.data_dim), hidden_activation="leaky_relu", output_activation="tanh"),
                        discriminator=MLP((spec.data_dim, 32, 1), hidden_activation="leaky_relu",
                                          output_activation=spec.discriminator.output_activation))
    eager, compiled = (torch_backend.build(spec, init_weights(spec, 0), device="cpu", mode=m) for m in ("eager", "compiled"))
    stream = Stream(spec, UniformSource(), seed=0)
    for _ in range(3):
        inputs = stream.next().as_kwargs()
        want, got = eager.train_step(**inputs), compiled.train_step(**inputs)
        assert all(abs(got[k] - want[k]) <= tol.FLOAT64_MODE_ATOL["torch"] for k in STEP_KEYS)
    assert compiled.compiled_as.startswith("whole step as one graph") and compiled.g_opt.t == 3
    assert max_weight_difference(eager.get_weights(), compiled.get_weights()) <= tol.FLOAT64_MODE_ATOL["torch"]
    assert compiled.get_weights()["generator"][0].dtype == np.float64


# ---- convolutions, BatchNorm, dropout -----------------------------------------------------------------------------
@pytest.mark.parametrize("other, loss, optimizer", [("tf", "wgan-gp", "adam"), ("tf", "wasserstein", "rmsprop"),
                                                   ("jax", "wgan-gp", "adam")])
def test_conv_gan_agrees_in_float64(other, loss, optimizer):
    """The convolutional parity GAN: one step's losses, weights and BatchNorm statistics, then 5 steps, at the CONV_*
    tolerances scaled to float64 (wasserstein + RMSprop is float32's worst case; every loss x optimiser measured
    with `python -m benchmarks.parity`)."""
    spec = conv_parity_spec(loss, optimizer, dtype=F64)
    pt, tf = build_pair(spec, other=other, mode_tf="eager" if other == "tf" else "compiled")  # JAX: as above
    stream = Stream(spec, UniformSource(spec.data_dim), seed=0)
    for step in range(5):
        inputs = stream.next().as_kwargs()
        a, b = pt.train_step(**inputs), tf.train_step(**inputs)
        atol = tol.FLOAT64_CONV_LOSS_ATOL if step == 0 else tol.FLOAT64_CONV_TRAJECTORY_LOSS_ATOL
        assert max(abs(a[k] - b[k]) for k in a) <= atol, step
        if step == 0:
            assert max_weight_difference(pt.get_weights(), tf.get_weights()) <= tol.FLOAT64_CONV_STEP_WEIGHT_ATOL
            stats_pt, stats_tf = pt.get_statistics(), tf.get_statistics()
            assert max(float(np.abs(x - y).max()) for net in stats_pt for x, y in zip(stats_pt[net], stats_tf[net])) \
                <= tol.FLOAT64_CONV_STEP_WEIGHT_ATOL
    assert relative_distance(pt.get_weights(), tf.get_weights()) <= tol.FLOAT64_CONV_TRAJECTORY_WEIGHT_RTOL


# ---- one backend against the float64 numpy reference ------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss, order, d_steps, reuse", [("nonsaturating", "d_then_g", 2, True),
                                                         ("wasserstein", "g_then_d", 1, False),
                                                         ("nonsaturating", "simultaneous", 1, True)])
def test_schedule_equals_the_numpy_reference_to_float64_precision(backend, loss, order, d_steps, reuse):
    """tests/test_backend_contract.py's schedule test in float64: the backend and the numpy loop written from the
    spec's words then agree to a few float64 units, not float32's 1e-6. JAX runs its jitted step (the same schedule
    code, traced): op by op, eager JAX compiles each float64 op of these shapes on its own, 11 s for the first case
    against about 1 s a compiled step; its eager schedule is the contract's (tests/test_backend_contract.py)."""
    opt = Optimizer("adam", lr=0.05, beta1=0.5, beta2=0.9, eps=1.0)
    spec = parity_spec(loss, dtype=F64).replace(
        generator=MLP((4, 8, 6), "tanh"), discriminator=MLP((6, 8, 1), "tanh", Loss(loss).d_output), batch_size=6,
        d_optimizer=opt, g_optimizer=opt, updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse))
    if loss == "wasserstein":
        spec = spec.replace(loss=Loss("wasserstein", clip=0.3))
    weights = init_weights(spec, 21)
    trainer = get_backend(backend).build(spec, weights, device="cpu", mode="compiled" if backend == "jax" else "eager")
    ref = reference.ReferenceGAN(spec, weights)
    stream = Stream(spec, UniformSource(), seed=22)
    for _ in range(3):
        inputs = stream.next()
        got, want = trainer.train_step(**inputs.as_kwargs()), ref.step(inputs.real, inputs.noise)
        assert all(abs(got[k] - want[k]) <= tol.FLOAT64_SCHEDULE_REFERENCE_ATOL for k in STEP_KEYS), (got, want)
    for net, arrays in trainer.get_weights().items():
        for a, b in zip(arrays, ref.weights()[net]):
            np.testing.assert_allclose(a, b, atol=tol.FLOAT64_SCHEDULE_REFERENCE_ATOL, rtol=0)


# ---- the point of float64: a difference float32 cannot see --------------------------------------------------------
def slope_one_ulp_off(monkeypatch):
    """TF's LeakyReLU slope one float32 ulp above the spec's (0.2 -> 0.20000002)."""
    import backend_tf.models

    original = backend_tf.models.activation_layer
    monkeypatch.setattr(backend_tf.models, "activation_layer", lambda name, slope, dtype="float32": original(
        name, float(np.nextafter(np.float32(slope), np.float32(1))), dtype))


def epsilon_moved(monkeypatch):
    """TF's spec Adam with epsilon 1.01e-8 instead of 1e-8."""
    import backend_tf.optim

    original = backend_tf.optim.SpecAdam.__init__

    def moved(self, opt, params):
        original(self, opt, params)
        self.eps = opt.eps * 1.01

    monkeypatch.setattr(backend_tf.optim.SpecAdam, "__init__", moved)


@pytest.mark.parametrize("break_tf", [slope_one_ulp_off, epsilon_moved])
def test_a_broken_backend_passes_float32_parity_and_fails_float64_parity(monkeypatch, break_tf):
    break_tf(monkeypatch)
    ratios = {}
    for dtype in ("float32", "float64"):
        pair = SeededPair(parity_spec("nonsaturating", "adam", dtype=dtype), tf_mode="eager")
        got = measure_seed(pair, 0, 3)
        ratios[dtype] = max(got["step1_weight_ratio"], got["step3_weight_ratio"], got["loss_ratio"],
                            got["gradient_ratio"])
    assert ratios["float32"] <= 1.0, ratios  # float32 parity cannot tell the broken backend from rounding ...
    assert ratios["float64"] > 100.0, ratios  # ... float64 parity rejects it by orders of magnitude
