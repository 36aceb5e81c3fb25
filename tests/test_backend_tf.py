"""What only the TensorFlow backend has: Keras' native optimisers, tf.function and XLA modes, the gradient
penalty's second-order gradient through GradientTape, its settings. The contract both backends share is
tests/test_backend_contract.py; expected values come from numpy (tests/reference.py) or finite differences."""
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
from common.init import init_weights  # noqa: E402
from common.spec import MLP, Optimizer  # noqa: E402
from common.stream import Stream  # noqa: E402
from conftest import DATA, HIDDEN, small_spec, step_inputs  # noqa: E402  (shared with test_backend_contract.py)
from tests import reference  # noqa: E402
from tests.test_backend_layers import RandomSource, bn_spec  # noqa: E402

MODE_ATOL = tol.MODE_ATOL["tf"]
K_STEPS_ATOL = tol.K_STEPS_ATOL


def assert_weights_equal(a, b, atol=0.0):
    for net in ("generator", "discriminator"):
        for x, y in zip(a[net], b[net]):
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ---- the gradient penalty's second-order gradient -------------------------------------------------------
def test_gradient_penalty_weight_gradient_matches_finite_differences():
    """The penalty's value is in the contract; its gradient w.r.t. D's weights (second order, GradientTape
    inside GradientTape) is checked here against a central difference along a random direction."""
    spec = small_spec(loss="wgan-gp", discriminator=MLP((DATA, HIDDEN, 1), "tanh", "linear"))
    weights = init_weights(spec, 5)
    trainer = backend_tf.build(spec, weights, "cpu")
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((2, 16, DATA)).astype(np.float32)
    eps = rng.random(16).astype(np.float32)
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
def run_optimizer(opt, w0, grad_fn, updates):
    variable = tf.Variable(w0.astype(np.float32))
    optimizer = optim.make_optimizer(opt, [variable])
    for _ in range(updates):
        optimizer.apply([tf.constant(grad_fn(variable.numpy().astype(np.float64)).astype(np.float32))])
    assert int(optimizer.t.numpy()) == updates
    return variable.numpy()


def test_keras_native_optimizers_differ_from_spec_where_eps_matters():
    tiny = lambda w: np.full_like(w, 1e-7)  # noqa: E731  gradients comparable to eps
    w0 = np.zeros(3)
    adam = Optimizer("adam", lr=1e-3, eps=1e-8)
    spec_adam = run_optimizer(adam, w0, tiny, 5)
    native_adam = run_optimizer(dataclasses.replace(adam, implementation="native"), w0, tiny, 5)
    np.testing.assert_allclose(spec_adam, reference.adam(adam, w0, tiny, 5), rtol=1e-5)
    # Keras: w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), eps on the uncorrected sqrt(v).
    m = v = 0.0
    w = 0.0
    for t in range(1, 6):
        m, v = m + (1e-7 - m) * 0.1, v + (1e-14 - v) * 0.001
        w -= 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(native_adam, w, rtol=1e-5)
    assert abs(native_adam[0]) < 0.5 * abs(spec_adam[0])  # a measured, not a rounding, difference
    keras_form = run_optimizer(dataclasses.replace(adam, eps_form="keras"), w0, tiny, 5)
    np.testing.assert_allclose(keras_form, native_adam, rtol=1e-5)  # the spec's Keras form is Keras' update

    rms = Optimizer("rmsprop", lr=1e-3, alpha=0.99, eps=1e-8)
    small = lambda w: np.full_like(w, 1e-4)  # noqa: E731
    spec_rms = run_optimizer(rms, w0, small, 1)
    native_rms = run_optimizer(dataclasses.replace(rms, implementation="native"), w0, small, 1)
    np.testing.assert_allclose(spec_rms, -1e-3 * 1e-4 / (np.sqrt(0.01 * 1e-8) + 1e-8), rtol=1e-5)
    # Keras RMSprop: eps inside the square root.
    np.testing.assert_allclose(native_rms, -1e-3 * 1e-4 / np.sqrt(0.01 * 1e-8 + 1e-8), rtol=1e-5)


# ---- modes and K steps per call -------------------------------------------------------------------
MODE_SPEC = small_spec(loss="wgan-gp", order="d_then_g", d_steps=2)  # second-order gradients in every mode
MODE_STEPS = 3


@pytest.fixture(scope="module")
def mode_runs():
    """Per mode: results and weights of MODE_STEPS single steps (and the trainer that took them), and of one
    train_steps(MODE_STEPS) call."""
    weights = init_weights(MODE_SPEC, 13)
    stacked = step_inputs(MODE_SPEC, 14, count=MODE_STEPS)
    runs = {}
    for mode in ("eager", "compiled", "xla"):
        one_by_one = backend_tf.build(MODE_SPEC, weights, "cpu", mode)
        singles = [one_by_one.train_step(**{k: v[i] for k, v in stacked.items()}) for i in range(MODE_STEPS)]
        together = backend_tf.build(MODE_SPEC, weights, "cpu", mode)
        runs[mode] = {"singles": {key: np.float32([s[key] for s in singles]) for key in singles[0]}, "one_by_one": one_by_one,
                      "single_weights": one_by_one.get_weights(),
                      "steps": together.train_steps(**stacked), "steps_weights": together.get_weights()}
    return runs


@pytest.mark.parametrize("mode", ["eager", "compiled", "xla"])
def test_train_steps_equals_repeated_train_step(mode_runs, mode):
    """Eager runs the same ops either way: identical. Compiled modes trace a one-step and a K-step graph, optimised
    apart: within K_STEPS_ATOL (common/tolerances.py)."""
    run = mode_runs[mode]
    atol = 0.0 if mode == "eager" else K_STEPS_ATOL
    for key, values in run["steps"].items():
        assert values.shape == (MODE_STEPS,)
        np.testing.assert_allclose(values, run["singles"][key], rtol=0, atol=atol)
    assert_weights_equal(run["steps_weights"], run["single_weights"], atol=atol)


@pytest.mark.parametrize("mode", ["compiled", "xla"])
def test_a_single_step_does_not_run_the_k_step_graph(mode_runs, mode):
    """train_step runs its own one-step graph (no tf.range loop around it), traced once, never the K-step one: the
    trainer of mode_runs that took MODE_STEPS single steps."""
    trainer = mode_runs[mode]["one_by_one"]
    assert trainer._step_fn.experimental_get_tracing_count() == 1
    assert trainer._steps_fn.experimental_get_tracing_count() == 0
    graph = trainer._step_fn.get_concrete_function().graph.as_graph_def()
    assert not any(node.op in ("While", "StatelessWhile") for node in graph.node)


@pytest.mark.parametrize("mode", ["compiled", "xla"])
@pytest.mark.parametrize("which", ["wgan-gp", "batchnorm-dropout"])
def test_concrete_function_calls_equal_tf_function_calls(mode, which):
    """train_step and train_steps call their graph's concrete function (no tf.function dispatch per call): bit for
    bit what calling the tf.function itself gives, results and weights, and each graph is traced once. GP
    coefficients, dropout masks and BatchNorm statistics included."""
    spec = MODE_SPEC if which == "wgan-gp" else bn_spec("g_then_d", 2, True)
    if which == "wgan-gp":
        singles = [step_inputs(spec, 30 + i) for i in range(2)]
        stacked = step_inputs(spec, 32, count=3)
    else:
        stream = Stream(spec, RandomSource(), seed=30)
        singles = [stream.next().as_kwargs() for _ in range(2)]
        many = [stream.next().as_kwargs() for _ in range(3)]
        stacked = {key: None if many[0][key] is None else np.stack([m[key] for m in many]) for key in many[0]}
    weights = init_weights(spec, 21)
    ours, theirs = (backend_tf.build(spec, weights, "cpu", mode) for _ in range(2))
    got = [np.float32(list(ours.train_step(**inputs).values())) for inputs in singles]
    got.append(np.stack(list(ours.train_steps(**stacked).values()), axis=1))
    want = []
    with tf.device("cpu"):
        for inputs in singles:
            tensors = [t for t in theirs._tensors(**inputs, stacked=False) if t is not None]
            want.append(theirs._step_fn(*tensors).numpy())
        tensors = [t for t in theirs._tensors(**stacked, stacked=True) if t is not None]
        want.append(theirs._steps_fn(*tensors).numpy())
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    state, other = ours.state(), theirs.state()  # weights, BatchNorm statistics, optimiser moments and counters
    assert state.keys() == other.keys()
    for key in state:
        assert state[key].tobytes() == other[key].tobytes(), key
    for trainer in (ours, theirs):
        assert trainer._step_fn.experimental_get_tracing_count() == 1
        assert trainer._steps_fn.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("mode", ["compiled", "xla"])
def test_compiled_and_xla_equal_eager(mode_runs, mode):
    run, eager = mode_runs[mode], mode_runs["eager"]
    assert_weights_equal(run["steps_weights"], eager["steps_weights"], atol=MODE_ATOL)
    for key, values in run["steps"].items():
        np.testing.assert_allclose(values, eager["steps"][key], rtol=0, atol=MODE_ATOL)


def test_versions_and_configure_record_settings():
    info = backend_tf.versions()
    assert info["tensorflow"] == tf.__version__ and info["tf32"] == "False"
    if os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0":
        assert info["onednn_enabled"] == "False"  # "unknown" would mean TF's private probe broke: say so
    first = backend_tf.configure(threads=None, deterministic=True)
    assert backend_tf.configure(threads=None, deterministic=True) == first  # safe to call twice
    assert first["deterministic"] is True and first["tf32"] is False


# ---- the layer list: Keras' own layers, and where the suite departs from them ------------------------------
def test_norm_training_pass_is_keras_batchnormalization_bit_for_bit():
    """The suite's BatchNorm writes Keras' training branch out (for an exact second derivative): its outputs and
    moving statistics are Keras' own, bit for bit, and evaluation is Keras' own call."""
    from backend_tf.models import Norm
    from common.spec import BatchNorm

    x = tf.constant(np.random.default_rng(0).standard_normal((8, 3, 4, 5)).astype(np.float32) * 3 + 1)
    ours, keras_bn = Norm(BatchNorm(momentum=0.01, eps=1e-3, running_variance="biased")), \
        tf.keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)
    for layer in (ours, keras_bn):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 5).astype(np.float32))
        layer.beta.assign(np.linspace(-1, 1, 5).astype(np.float32))
    for _ in range(2):
        np.testing.assert_array_equal(ours(x, training=True).numpy(), keras_bn(x, training=True).numpy())
    np.testing.assert_array_equal(ours.moving_mean.numpy(), keras_bn.moving_mean.numpy())
    np.testing.assert_array_equal(ours.moving_variance.numpy(), keras_bn.moving_variance.numpy())
    np.testing.assert_array_equal(ours(x, training=False).numpy(), keras_bn(x, training=False).numpy())
    assert not np.array_equal(ours.moving_variance.numpy(), np.ones(5, np.float32))


def test_keras_dropout_scales_kept_units_as_the_suite_masks():
    """Keras' Dropout keeps a unit as x * (1 / (1 - rate)) in float32: exactly what the stream's mask holds."""
    from common.init import DTYPE
    from common.spec import Dropout

    x = tf.constant(np.random.default_rng(1).standard_normal((64, 50)).astype(np.float32))
    out = tf.keras.layers.Dropout(0.3, seed=3)(x, training=True).numpy()
    kept = out != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_array_equal(out[kept], x.numpy()[kept] * DTYPE(Dropout(0.3).scale))


def test_conv_compiled_mode_equals_eager_and_k_steps_equal_single_steps():
    """tf.function on the convolutional parity GAN (BatchNorm, dropout masks in the traced signature): K steps per
    call equal K single steps bit for bit, and equal eager. XLA and wgan-gp's double backward through convolutions
    in compiled modes: tests/test_parity.py (one trace each: XLA compiles take minutes on 2 cores)."""
    from benchmarks.parity import conv_parity_spec, source_for
    from common.stream import Stream

    spec = conv_parity_spec("nonsaturating")
    weights = init_weights(spec, 3)
    stream = Stream(spec, source_for(spec), seed=4)
    steps = [stream.next() for _ in range(3)]
    stacked = {key: np.stack([getattr(s, key) for s in steps]) for key in ("real", "noise", "dropout")}
    eager, one, many = (backend_tf.build(spec, weights, "cpu", mode) for mode in ("eager", "compiled", "compiled"))
    singles = [one.train_step(**s.as_kwargs()) for s in steps]
    want = [eager.train_step(**s.as_kwargs()) for s in steps]
    together = many.train_steps(**stacked)
    for key in together:
        np.testing.assert_array_equal(together[key], np.float32([s[key] for s in singles]))
        np.testing.assert_allclose(together[key], np.float32([s[key] for s in want]), rtol=0, atol=MODE_ATOL)
    assert_weights_equal(many.get_weights(), one.get_weights())
    assert_weights_equal(many.get_statistics(), one.get_statistics())
    assert_weights_equal(many.get_weights(), eager.get_weights(), atol=MODE_ATOL)
    assert_weights_equal(many.get_statistics(), eager.get_statistics(), atol=MODE_ATOL)


def test_spec_adam_in_keras_form_is_keras_adam():
    """dcgan-mnist's optimiser: the spec Adam with eps_form="keras" against keras.optimizers.Adam itself, 20 updates
    of gradients near epsilon (where the two forms part), within float32 rounding of the update."""
    from common.tasks import TASKS

    adam = TASKS["dcgan-mnist"].spec.d_optimizer
    assert adam.eps_form == "keras" and adam.eps == 1e-7
    rng = np.random.default_rng(0)
    grads = [np.float32(1e-7) * rng.standard_normal(4).astype(np.float32) for _ in range(20)]
    feed = iter(grads)
    spec_form = run_optimizer(adam, np.zeros(4), lambda w: next(feed), 20)
    feed = iter(grads)
    keras_own = run_optimizer(dataclasses.replace(adam, implementation="native"), np.zeros(4), lambda w: next(feed), 20)
    np.testing.assert_allclose(spec_form, keras_own, rtol=1e-5, atol=0)
    feed = iter(grads)
    torch_form = run_optimizer(dataclasses.replace(adam, eps_form="torch"), np.zeros(4), lambda w: next(feed), 20)
    assert np.abs(torch_form - keras_own).max() > 0.1 * np.abs(keras_own).max()  # the other form is not it
