"""The TensorFlow backend against independent numpy evaluations of the spec's formulas (CPU, small nets)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
backend_tf = pytest.importorskip("backend_tf")  # before tensorflow: it sets TensorFlow's environment

import tensorflow as tf  # noqa: E402
from backend_tf import losses, optim  # noqa: E402
from common import tolerances as tol  # noqa: E402
from common.backend import DeviceUnavailableError  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.spec import GAN, GP_NORM_EPS, MLP, Loss, Optimizer, Updates  # noqa: E402

LATENT, DATA, HIDDEN, BATCH = 3, 4, 8, 6
# This backend against float64 numpy (not across frameworks, which common/tolerances.py covers):
OPTIMIZER_ATOL = 2e-6  # 20 float32 updates of size <= lr on a quadratic, against float64: rounding only
MODE_ATOL = 1e-5  # compiled / xla against eager after MODE_STEPS wgan-gp steps (XLA may fuse to FMA, reorder sums)


def small_spec(loss="least-squares", order="d_then_g", d_steps=1, reuse_fake=False, opt=None, **changes) -> GAN:
    opt = opt or Optimizer(lr=1e-2, beta1=0.5)
    loss = Loss(loss)
    base = GAN(latent_dim=LATENT, generator=MLP((LATENT, HIDDEN, DATA)),
               discriminator=MLP((DATA, HIDDEN, 1), output_activation=loss.d_output), data_shape=(DATA,),
               loss=loss, d_optimizer=opt, g_optimizer=opt, batch_size=BATCH,
               updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse_fake))
    return base.replace(**changes)


def step_inputs(spec: GAN, seed: int, count: int | None = None) -> dict:
    """Random step inputs; with ``count`` every array gains a leading axis of that size."""
    rng = np.random.default_rng(seed)
    lead = () if count is None else (count,)
    d, b = spec.updates.d_steps, spec.batch_size
    inputs = {"real": rng.standard_normal(lead + (d, b, spec.data_dim), dtype=np.float32),
              "noise": rng.standard_normal(lead + (d + 1, b, spec.latent_dim), dtype=np.float32),
              "gp_eps": None}
    if spec.loss.name == "wgan-gp":
        inputs["gp_eps"] = rng.random(lead + (d, b), dtype=np.float32)
    return inputs


def numpy_mlp(weights, x, hidden, output, slope=0.2):
    """float64 forward of a neutral weight list."""
    acts = {"relu": lambda h: np.maximum(h, 0), "leaky_relu": lambda h: np.where(h > 0, h, slope * h),
            "tanh": np.tanh, "sigmoid": lambda h: 1 / (1 + np.exp(-h)), "linear": lambda h: h}
    h = np.asarray(x, np.float64)
    layers = len(weights) // 2
    for i in range(layers):
        h = h @ weights[2 * i].astype(np.float64) + weights[2 * i + 1].astype(np.float64)
        h = acts[output if i == layers - 1 else hidden](h)
    return h


def assert_weights_equal(a, b, atol=0.0):
    for net in ("generator", "discriminator"):
        for x, y in zip(a[net], b[net]):
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ---- models ----------------------------------------------------------------------------------------
def test_weights_round_trip():
    spec = small_spec()
    weights = init_weights(spec, 1)
    got = backend_tf.build(spec, weights, "cpu").get_weights()
    assert_weights_equal(got, weights)
    assert all(a.dtype == np.float32 for a in got["generator"] + got["discriminator"])


def test_forward_equals_numpy():
    gen = MLP((LATENT, 16, 16, DATA), hidden_activation="leaky_relu", output_activation="tanh", leaky_slope=0.2)
    disc = MLP((DATA, 16, 1), hidden_activation="leaky_relu", output_activation="sigmoid", leaky_slope=0.2)
    spec = small_spec(loss="nonsaturating", generator=gen, discriminator=disc)
    weights = init_weights(spec, 2)
    trainer = backend_tf.build(spec, weights, "cpu")
    z = np.random.default_rng(3).standard_normal((32, LATENT)).astype(np.float32) * 3
    fake = trainer.generate(z)
    want = numpy_mlp(weights["generator"], z, "leaky_relu", "tanh")
    np.testing.assert_allclose(fake, want, rtol=0, atol=tol.FORWARD_ATOL)
    x = np.random.default_rng(4).standard_normal((32, DATA)).astype(np.float32) * 3
    logits = numpy_mlp(weights["discriminator"], x, "leaky_relu", "linear")[:, 0]
    np.testing.assert_allclose(trainer.discriminate(x), 1 / (1 + np.exp(-logits)), rtol=0, atol=tol.FORWARD_ATOL)
    # The network itself outputs logits: the sigmoid lives in the loss.
    np.testing.assert_allclose(trainer.discriminator(x).numpy()[:, 0], logits, rtol=0, atol=tol.FORWARD_ATOL)


# ---- losses ----------------------------------------------------------------------------------------
def numpy_softplus(x):
    return np.logaddexp(0.0, x)


def numpy_d_loss(name, l_r, l_f, d_average, gp_weight, penalty):
    real, fake = {
        "minimax": (numpy_softplus(-l_r).mean(), numpy_softplus(l_f).mean()),
        "nonsaturating": (numpy_softplus(-l_r).mean(), numpy_softplus(l_f).mean()),
        "wasserstein": (-l_r.mean(), l_f.mean()),
        "wgan-gp": (-l_r.mean(), l_f.mean()),
        "hinge": (np.maximum(1 - l_r, 0).mean(), np.maximum(1 + l_f, 0).mean()),
        "least-squares": (0.5 * ((l_r - 1) ** 2).mean(), 0.5 * (l_f ** 2).mean()),
    }[name]
    total = (real + fake) / 2 if d_average else real + fake
    return total + (gp_weight * penalty if name == "wgan-gp" else 0.0)


def numpy_g_loss(name, l_f):
    return {"minimax": -numpy_softplus(l_f).mean(), "nonsaturating": numpy_softplus(-l_f).mean(),
            "least-squares": 0.5 * ((l_f - 1) ** 2).mean()}.get(name, -l_f.mean())


@pytest.mark.parametrize("d_average", [False, True])
@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wasserstein", "wgan-gp", "hinge", "least-squares"])
def test_losses_equal_numpy(name, d_average):
    # Large logits too: softplus must stay finite and exact where exp(x) overflows float32.
    l_r = np.array([-95.0, -3.0, -0.7, 0.0, 0.4, 2.5, 40.0], np.float32)
    l_f = np.array([60.0, 1.2, -0.3, 0.0, -2.0, 0.9, -88.0], np.float32)
    loss = Loss(name, d_average=d_average, gp_weight=7.0)
    penalty = np.float32(0.37)
    got_d = losses.d_loss(loss, tf.constant(l_r), tf.constant(l_f), tf.constant(penalty)).numpy()
    want_d = numpy_d_loss(name, l_r.astype(np.float64), l_f.astype(np.float64), d_average, 7.0, 0.37)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-6, atol=tol.LOSS_ATOL)
    got_g = losses.g_loss(loss, tf.constant(l_f)).numpy()
    np.testing.assert_allclose(got_g, numpy_g_loss(name, l_f.astype(np.float64)), rtol=1e-6, atol=tol.LOSS_ATOL)


def test_gradient_penalty_is_per_example():
    spec = small_spec(loss="wgan-gp", discriminator=MLP((DATA, HIDDEN, 1), "tanh", "linear"))
    weights = init_weights(spec, 5)
    trainer = backend_tf.build(spec, weights, "cpu")
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((2, 16, DATA)).astype(np.float32)
    eps = rng.random(16).astype(np.float32)
    got = losses.gradient_penalty(trainer.discriminator, tf.constant(real), tf.constant(fake), tf.constant(eps))
    # numpy: d tanh-MLP / dx for each example, at x_hat built with that example's own eps.
    k0, b0, k1 = (w.astype(np.float64) for w in weights["discriminator"][:3])
    x_hat = eps[:, None] * real.astype(np.float64) + (1 - eps[:, None]) * fake
    grad = ((1 - np.tanh(x_hat @ k0 + b0) ** 2) * k1[:, 0]) @ k0.T
    want = np.mean((np.sqrt((grad ** 2).sum(axis=1) + GP_NORM_EPS) - 1) ** 2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)

    # Its gradient w.r.t. D's weights (second order) matches a central difference along a random direction.
    variables = trainer.discriminator.trainable_variables
    with tf.GradientTape() as tape:
        value = losses.gradient_penalty(trainer.discriminator, real, fake, eps)
    grads = tape.gradient(value, variables)
    direction = [rng.standard_normal(v.shape).astype(np.float32) for v in variables]
    assert grads[-1] is None  # the output bias does not enter dD/dx
    analytic = sum(float(np.sum(g.numpy() * u)) for g, u in zip(grads[:-1], direction))
    h = 1e-3
    values = []
    for sign in (1, -1):
        for v, w, u in zip(variables, weights["discriminator"], direction):
            v.assign(w + sign * h * u)
        values.append(float(losses.gradient_penalty(trainer.discriminator, real, fake, eps)))
    np.testing.assert_allclose(analytic, (values[0] - values[1]) / (2 * h), rtol=2e-3)


# ---- optimisers ------------------------------------------------------------------------------------
def numpy_adam(opt, w, grad_fn, updates):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, updates + 1):
        g = grad_fn(w)
        m = opt.beta1 * m + (1 - opt.beta1) * g
        v = opt.beta2 * v + (1 - opt.beta2) * g * g
        w = w - (opt.lr / (1 - opt.beta1 ** t)) * m / (np.sqrt(v) / np.sqrt(1 - opt.beta2 ** t) + opt.eps)
    return w


def numpy_rmsprop(opt, w, grad_fn, updates):
    v = np.zeros_like(w)
    for _ in range(updates):
        g = grad_fn(w)
        v = opt.alpha * v + (1 - opt.alpha) * g * g
        w = w - opt.lr * g / (np.sqrt(v) + opt.eps)
    return w


def run_optimizer(opt, w0, grad_fn, updates):
    variable = tf.Variable(w0.astype(np.float32))
    optimizer = optim.make_optimizer(opt, [variable])
    for _ in range(updates):
        optimizer.apply([tf.constant(grad_fn(variable.numpy().astype(np.float64)).astype(np.float32))])
    assert int(optimizer.t.numpy()) == updates
    return variable.numpy()


QUAD_SCALE = np.array([0.5, 1.0, 2.0, 4.0, 0.1, 3.0])
QUAD_CENTRE = np.array([1.0, -2.0, 0.5, 0.0, 3.0, -1.0])
W0 = np.array([0.3, 0.7, -1.2, 2.0, -0.5, 0.0])


def quadratic_grad(w):  # f(w) = 0.5 sum a (w - c)^2
    return QUAD_SCALE * (w - QUAD_CENTRE)


@pytest.mark.parametrize("opt", [Optimizer("adam", lr=0.05, beta1=0.9), Optimizer("adam", lr=0.05, beta1=0.5),
                                 Optimizer("rmsprop", lr=0.01, alpha=0.99), Optimizer("rmsprop", lr=0.01, alpha=0.9)])
def test_spec_optimizers_equal_numpy_pytorch_formula(opt):
    reference = numpy_adam if opt.name == "adam" else numpy_rmsprop
    want = reference(opt, W0.copy(), quadratic_grad, 20)
    got = run_optimizer(opt, W0, quadratic_grad, 20)
    np.testing.assert_allclose(got, want, rtol=0, atol=OPTIMIZER_ATOL)
    assert np.abs(want - W0).min() > 1e-3  # the weights really moved


def test_keras_native_optimizers_differ_from_spec_where_eps_matters():
    tiny = lambda w: np.full_like(w, 1e-7)  # noqa: E731  gradients comparable to eps
    w0 = np.zeros(3)
    adam = Optimizer("adam", lr=1e-3, eps=1e-8)
    spec_adam = run_optimizer(adam, w0, tiny, 5)
    native_adam = run_optimizer(dataclasses.replace(adam, implementation="native"), w0, tiny, 5)
    np.testing.assert_allclose(spec_adam, numpy_adam(adam, w0, tiny, 5), rtol=1e-5)
    # Keras: w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), eps on the uncorrected sqrt(v).
    m = v = 0.0
    w = 0.0
    for t in range(1, 6):
        m, v = m + (1e-7 - m) * 0.1, v + (1e-14 - v) * 0.001
        w -= 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(native_adam, w, rtol=1e-5)
    assert abs(native_adam[0]) < 0.5 * abs(spec_adam[0])  # a measured, not a rounding, difference

    rms = Optimizer("rmsprop", lr=1e-3, alpha=0.99, eps=1e-8)
    small = lambda w: np.full_like(w, 1e-4)  # noqa: E731
    spec_rms = run_optimizer(rms, w0, small, 1)
    native_rms = run_optimizer(dataclasses.replace(rms, implementation="native"), w0, small, 1)
    np.testing.assert_allclose(spec_rms, -1e-3 * 1e-4 / (np.sqrt(0.01 * 1e-8) + 1e-8), rtol=1e-5)
    # Keras RMSprop: eps inside the square root.
    np.testing.assert_allclose(native_rms, -1e-3 * 1e-4 / np.sqrt(0.01 * 1e-8 + 1e-8), rtol=1e-5)


# ---- update order ----------------------------------------------------------------------------------
def critic_on(spec, gen_weights, disc_weights, x_noise):
    """D(G(z)) for the given weights, from a fresh trainer (least-squares: raw critic values)."""
    trainer = backend_tf.build(spec, {"generator": gen_weights, "discriminator": disc_weights}, "cpu")
    return trainer.discriminate(trainer.generate(x_noise)).astype(np.float64)


def ls_g_loss(l_f):
    return 0.5 * np.mean((l_f - 1) ** 2)


@pytest.mark.parametrize("reuse_fake", [False, True])
@pytest.mark.parametrize("order", ["d_then_g", "g_then_d", "simultaneous"])
def test_update_order_uses_the_specified_weights_and_noise(order, reuse_fake):
    spec = small_spec(order=order, reuse_fake=reuse_fake)
    w0 = init_weights(spec, 7)
    inputs = step_inputs(spec, 8)
    noise = inputs["noise"]
    trainer = backend_tf.build(spec, w0, "cpu")
    result = trainer.train_step(**inputs)
    w1 = trainer.get_weights()
    g0, d0, g1, d1 = w0["generator"], w0["discriminator"], w1["generator"], w1["discriminator"]
    g_noise = noise[0] if reuse_fake else noise[1]
    if order == "d_then_g":  # D first on G0; G then trained through the updated D
        want_fake, want_g = critic_on(spec, g0, d0, noise[0]), ls_g_loss(critic_on(spec, g0, d1, g_noise))
    elif order == "g_then_d":  # G first through D0; D then sees the updated G unless it reuses G's batch
        want_fake = critic_on(spec, g0 if reuse_fake else g1, d0, noise[0])
        want_g = ls_g_loss(critic_on(spec, g0, d0, g_noise))
    else:  # both gradients at (G0, D0)
        want_fake, want_g = critic_on(spec, g0, d0, noise[0]), ls_g_loss(critic_on(spec, g0, d0, g_noise))
    assert result["d_fake"] == pytest.approx(want_fake.mean(), abs=tol.LOSS_ATOL)
    assert result["g_loss"] == pytest.approx(want_g, abs=tol.LOSS_ATOL)
    want_real = backend_tf.build(spec, w0, "cpu").discriminate(inputs["real"][0]).mean()
    assert result["d_real"] == pytest.approx(want_real, abs=tol.LOSS_ATOL)
    # Both networks moved, each by exactly one update.
    assert not np.array_equal(g0[0], g1[0]) and not np.array_equal(d0[0], d1[0])
    assert int(trainer.g_opt.t.numpy()) == 1 and int(trainer.d_opt.t.numpy()) == 1


def changed(spec, w0, inputs, **edit):
    """Final weights after one step on ``inputs`` and on a copy with one array's slice re-drawn."""
    base = backend_tf.build(spec, w0, "cpu")
    base.train_step(**inputs)
    (name, index), = edit.items()
    other = {k: (None if v is None else v.copy()) for k, v in inputs.items()}
    other[name][index] += 1.0
    edited = backend_tf.build(spec, w0, "cpu")
    edited.train_step(**other)
    a, b = base.get_weights(), edited.get_weights()
    return {net: not all(np.array_equal(x, y) for x, y in zip(a[net], b[net])) for net in a}


def test_update_order_dependencies_with_two_d_steps():
    d_then_g = small_spec(order="d_then_g", d_steps=2)
    w0 = init_weights(d_then_g, 9)
    inputs = step_inputs(d_then_g, 10)
    # d_then_g: noise[2] feeds only G; the real data reach G through the updated D.
    assert changed(d_then_g, w0, inputs, noise=2) == {"generator": True, "discriminator": False}
    assert changed(d_then_g, w0, inputs, real=1) == {"generator": True, "discriminator": True}
    reuse = small_spec(order="d_then_g", d_steps=2, reuse_fake=True)
    assert changed(reuse, w0, inputs, noise=2) == {"generator": False, "discriminator": False}
    # g_then_d: G moves before D sees any real data.
    g_then_d = small_spec(order="g_then_d", d_steps=2)
    assert changed(g_then_d, w0, inputs, real=0) == {"generator": False, "discriminator": True}
    reuse = small_spec(order="g_then_d", d_steps=2, reuse_fake=True)
    assert changed(reuse, w0, inputs, noise=2) == {"generator": False, "discriminator": False}
    # One optimiser step per update applied.
    trainer = backend_tf.build(d_then_g, w0, "cpu")
    trainer.train_step(**inputs)
    assert int(trainer.d_opt.t.numpy()) == 2 and int(trainer.g_opt.t.numpy()) == 1


def test_wasserstein_clips_every_discriminator_weight():
    spec = small_spec(loss="wasserstein").replace(loss=Loss("wasserstein", clip=0.05))
    w0 = init_weights(spec, 11)  # torch_default bounds 1/sqrt(4) and 1/sqrt(8): well above the clip
    trainer = backend_tf.build(spec, w0, "cpu")
    trainer.train_step(**step_inputs(spec, 12))
    disc = trainer.get_weights()["discriminator"]
    assert all(np.abs(w).max() <= 0.05 for w in disc)
    assert all(np.isclose(np.abs(w), 0.05).any() for w in disc[0::2])  # clipping really happened (kernels)
    assert max(np.abs(w).max() for w in trainer.get_weights()["generator"]) > 0.05  # G is not clipped


# ---- modes, K steps, checkpoints -------------------------------------------------------------------
MODE_SPEC = small_spec(loss="wgan-gp", order="d_then_g", d_steps=2)  # second-order gradients in every mode
MODE_STEPS = 3


@pytest.fixture(scope="module")
def mode_runs():
    """Per mode: results and weights of MODE_STEPS single steps, and of one train_steps(MODE_STEPS) call."""
    weights = init_weights(MODE_SPEC, 13)
    stacked = step_inputs(MODE_SPEC, 14, count=MODE_STEPS)
    runs = {}
    for mode in ("eager", "compiled", "xla"):
        one_by_one = backend_tf.build(MODE_SPEC, weights, "cpu", mode)
        singles = [one_by_one.train_step(**{k: v[i] for k, v in stacked.items()}) for i in range(MODE_STEPS)]
        together = backend_tf.build(MODE_SPEC, weights, "cpu", mode)
        runs[mode] = {"singles": {key: np.float32([s[key] for s in singles]) for key in singles[0]},
                      "single_weights": one_by_one.get_weights(),
                      "steps": together.train_steps(**stacked), "steps_weights": together.get_weights()}
    return runs


@pytest.mark.parametrize("mode", ["eager", "compiled", "xla"])
def test_train_steps_equals_repeated_train_step(mode_runs, mode):
    run = mode_runs[mode]
    for key, values in run["steps"].items():
        assert values.shape == (MODE_STEPS,)
        np.testing.assert_array_equal(values, run["singles"][key])
    assert_weights_equal(run["steps_weights"], run["single_weights"])


@pytest.mark.parametrize("mode", ["compiled", "xla"])
def test_compiled_and_xla_equal_eager(mode_runs, mode):
    run, eager = mode_runs[mode], mode_runs["eager"]
    assert_weights_equal(run["steps_weights"], eager["steps_weights"], atol=MODE_ATOL)
    for key, values in run["steps"].items():
        np.testing.assert_allclose(values, eager["steps"][key], rtol=0, atol=MODE_ATOL)


@pytest.mark.parametrize("implementation", ["spec", "native"])
def test_checkpoint_resume_is_exact(tmp_path, implementation):
    opt = Optimizer("adam", lr=1e-2, beta1=0.5, implementation=implementation)
    spec = small_spec(loss="nonsaturating", opt=opt)
    weights = init_weights(spec, 17)
    stacked = step_inputs(spec, 18, count=6)
    first, second = ({k: None if v is None else v[s] for k, v in stacked.items()} for s in (slice(0, 3), slice(3, 6)))
    straight = backend_tf.build(spec, weights, "cpu")
    straight.train_steps(**stacked)
    interrupted = backend_tf.build(spec, weights, "cpu")
    interrupted.train_steps(**first)
    path = tmp_path / "checkpoint.npz"
    interrupted.save(path)
    resumed = backend_tf.build(spec, init_weights(spec, 99), "cpu")
    resumed.load(path)
    resumed.train_steps(**second)
    assert_weights_equal(resumed.get_weights(), straight.get_weights())
    with np.load(path) as data:
        keys = set(data.files)
        assert int(data["opt/generator/t"]) == 3 and data["opt/generator/t"].dtype == np.int64
    assert {"spec", "generator/0", "discriminator/3", "opt/discriminator/m/3", "opt/discriminator/v/0"} <= keys
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # no temporary left behind

    wider = spec.replace(generator=MLP((LATENT, HIDDEN + 1, DATA)))
    with pytest.raises(ValueError, match="generator"):
        backend_tf.build(wider, init_weights(wider, 0), "cpu").load(path)


# ---- package functions -----------------------------------------------------------------------------
def test_cuda_without_gpu_raises():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    spec = small_spec()
    with pytest.raises(DeviceUnavailableError, match="--device cuda"):
        backend_tf.build(spec, init_weights(spec, 0), "cuda")
    assert backend_tf.device_name("auto") == "cpu"


def test_bad_mode_and_shapes_raise():
    spec = small_spec()
    with pytest.raises(ValueError, match="mode"):
        backend_tf.build(spec, init_weights(spec, 0), "cpu", "jit")
    trainer = backend_tf.build(spec, init_weights(spec, 0), "cpu")
    inputs = step_inputs(spec, 0)
    with pytest.raises(ValueError, match="noise"):
        trainer.train_step(inputs["real"], inputs["noise"][:1])


def test_versions_and_configure_record_settings():
    info = backend_tf.versions()
    assert info["tensorflow"] == tf.__version__ and info["tf32"] == "False"
    if os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0":
        assert info["onednn_enabled"] in ("False", "unknown")
    first = backend_tf.configure(threads=None, deterministic=True)
    assert backend_tf.configure(threads=None, deterministic=True) == first  # safe to call twice
    assert first["deterministic"] is True and first["tf32"] is False
