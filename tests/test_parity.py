"""PyTorch and TensorFlow compute the same GAN: same weights, same inputs, outputs compared with stated tolerances.

In the manner of Hugging Face's PT/TF equivalence tests, but through the whole training step: forward passes,
one step of every loss with both spec optimisers, 20-step trajectories, compiled modes and checkpoints.
The tolerances and their justification live in common/tolerances.py.
"""
import numpy as np
import pytest

from common import tolerances as tol
from common.backend import get_backend
from common.init import init_weights
from benchmarks.parity import UniformSource, build_pair, parity_spec, relative_distance, run_both
from common.spec import LOSSES, Optimizer, Updates
from common.stream import Stream
from common.tasks import TASKS

torch_backend = get_backend("torch")
tf_backend = get_backend("tf")


def assert_weights_close(a, b, atol, rtol=0.0):
    for net in ("generator", "discriminator"):
        for i, (x, y) in enumerate(zip(a[net], b[net])):
            np.testing.assert_allclose(x, y, atol=atol, rtol=rtol, err_msg=f"{net}[{i}]")


@pytest.mark.parametrize("task", list(TASKS))
def test_forward_outputs_agree_on_every_task_model(task):
    spec = TASKS[task].spec
    pt, tf = build_pair(spec, seed=1)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((8, spec.latent_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, (8, spec.data_dim)).astype(np.float32)
    np.testing.assert_allclose(pt.generate(noise), tf.generate(noise), atol=tol.FORWARD_ATOL, rtol=0)
    np.testing.assert_allclose(pt.discriminate(x), tf.discriminate(x), atol=tol.FORWARD_ATOL, rtol=0)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("loss", LOSSES)
def test_one_step_agrees(loss, optimizer):
    spec = parity_spec(loss, optimizer)
    pt, tf = build_pair(spec)
    inputs = Stream(spec, UniformSource(), seed=0).next()
    out_pt, out_tf = pt.train_step(**inputs.as_kwargs()), tf.train_step(**inputs.as_kwargs())
    for key in out_pt:
        assert out_pt[key] == pytest.approx(out_tf[key], abs=tol.LOSS_ATOL), key
    assert_weights_close(pt.get_weights(), tf.get_weights(), atol=tol.STEP_WEIGHT_ATOL)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("loss", LOSSES)
def test_twenty_step_trajectories_stay_together(loss, optimizer):
    pt, tf, results = run_both(parity_spec(loss, optimizer), tol.TRAJECTORY_STEPS)
    for step, (out_pt, out_tf) in enumerate(results):
        for key in out_pt:
            assert out_pt[key] == pytest.approx(out_tf[key], abs=tol.TRAJECTORY_LOSS_ATOL), (step, key)
    assert relative_distance(pt.get_weights(), tf.get_weights()) < tol.TRAJECTORY_WEIGHT_RTOL


@pytest.mark.parametrize("order, reuse", [("g_then_d", True), ("g_then_d", False), ("simultaneous", True),
                                          ("d_then_g", True)])
def test_update_orders_agree(order, reuse):
    spec = parity_spec("minimax", order=order, reuse=reuse)
    pt, tf = build_pair(spec)
    stream = Stream(spec, UniformSource(), seed=2)
    for _ in range(3):
        inputs = stream.next()
        out_pt, out_tf = pt.train_step(**inputs.as_kwargs()), tf.train_step(**inputs.as_kwargs())
    assert out_pt["g_loss"] == pytest.approx(out_tf["g_loss"], abs=tol.LOSS_ATOL)
    assert_weights_close(pt.get_weights(), tf.get_weights(), atol=tol.STEP_WEIGHT_ATOL * 3)


def test_critic_steps_agree():
    spec = parity_spec("wgan-gp").replace(updates=Updates(d_steps=3))
    pt, tf = build_pair(spec)
    inputs = Stream(spec, UniformSource(), seed=5).next()
    out_pt, out_tf = pt.train_step(**inputs.as_kwargs()), tf.train_step(**inputs.as_kwargs())
    assert out_pt["d_loss"] == pytest.approx(out_tf["d_loss"], abs=tol.LOSS_ATOL)
    assert_weights_close(pt.get_weights(), tf.get_weights(), atol=tol.STEP_WEIGHT_ATOL * 3)


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_compiled_modes_agree_with_eager_across_frameworks(loss):
    """tf.function and XLA against PyTorch eager: compiling changes no result beyond the stated tolerance."""
    spec = parity_spec(loss)
    weights = init_weights(spec, 0)
    reference = torch_backend.build(spec, weights, device="cpu", mode="eager")
    compiled = [tf_backend.build(spec, weights, device="cpu", mode=m) for m in ("compiled", "xla")]
    stream = Stream(spec, UniformSource(), seed=0)
    for _ in range(5):
        inputs = stream.next().as_kwargs()
        expected = reference.train_step(**inputs)
        for trainer in compiled:
            got = trainer.train_step(**inputs)
            assert got["d_loss"] == pytest.approx(expected["d_loss"], abs=tol.TRAJECTORY_LOSS_ATOL)
    for trainer in compiled:
        assert_weights_close(reference.get_weights(), trainer.get_weights(), atol=tol.STEP_WEIGHT_ATOL * 5)


@pytest.mark.parametrize("source, target", [("torch", "tf"), ("tf", "torch")])
def test_checkpoint_moves_between_frameworks(tmp_path, source, target):
    """A checkpoint (weights + optimiser state) saved by one framework continues identically in the other."""
    spec = parity_spec("nonsaturating")
    weights = init_weights(spec, 0)
    first = get_backend(source).build(spec, weights, device="cpu")
    stream = Stream(spec, UniformSource(), seed=0)
    for _ in range(3):
        first.train_step(**stream.next().as_kwargs())
    first.save(tmp_path / "ckpt.npz")
    second = get_backend(target).build(spec, init_weights(spec, 99), device="cpu")
    second.load(tmp_path / "ckpt.npz")
    inputs = stream.next().as_kwargs()
    out_first, out_second = first.train_step(**inputs), second.train_step(**inputs)
    assert out_first["g_loss"] == pytest.approx(out_second["g_loss"], abs=tol.LOSS_ATOL)
    assert_weights_close(first.get_weights(), second.get_weights(), atol=tol.STEP_WEIGHT_ATOL * 4)


def test_native_optimisers_drift_more_than_spec_ones():
    """The reason 'spec' exists: Keras' Adam adds epsilon to the uncorrected sqrt(v), PyTorch's to sqrt(v_hat)."""
    drift = {}
    for implementation in ("spec", "native"):
        pt, tf, _ = run_both(parity_spec("nonsaturating", implementation=implementation), tol.TRAJECTORY_STEPS)
        drift[implementation] = relative_distance(pt.get_weights(), tf.get_weights())
    assert drift["native"] > 10 * drift["spec"]
