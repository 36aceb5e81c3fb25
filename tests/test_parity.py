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
from benchmarks.parity import (UniformSource, build_pair, conv_parity_spec, parity_spec, relative_distance, run_both,
                               source_for)
from common.spec import LOSSES, Dropout, Network, Updates
from common.stream import Stream
from common.tasks import TASKS, dcgan_faces_spec, dcgan_mnist_spec, pacgan_spec

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


# ---- convolutional GANs: the layer list with convolutions, BatchNorm and dropout -------------------------------
TINY_TASKS = {  # each task's architecture at test size: 16x16 faces with 4 channels, dcgan-mnist at 1/16 width
    "dcgan-faces": lambda: dcgan_faces_spec(ngf=4, ndf=4, image_size=16).replace(batch_size=8),
    "dcgan-mnist": lambda: dcgan_mnist_spec(width=1 / 16, batch_size=8),
}


def assert_statistics_close(a, b, atol):
    for net in ("generator", "discriminator"):
        for i, (x, y) in enumerate(zip(a[net], b[net])):
            np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"{net} statistic {i}")


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("loss", LOSSES)
def test_conv_one_step_and_twenty_steps_agree(loss, optimizer):
    """Every loss with both spec optimisers, WGAN-GP's double backward through convolutions, dropout and a
    BatchNorm'd critic included: the first step's losses, weights and statistics, then the 20-step trajectory (one
    run: eager steps of even a tiny conv GAN cost ~0.1 s in each framework)."""
    spec = conv_parity_spec(loss, optimizer)
    pt, tf = build_pair(spec)
    stream = Stream(spec, source_for(spec), seed=0)
    for step in range(tol.TRAJECTORY_STEPS):
        inputs = stream.next().as_kwargs()
        out_pt, out_tf = pt.train_step(**inputs), tf.train_step(**inputs)
        for key in out_pt:
            atol = tol.CONV_LOSS_ATOL if step == 0 else tol.CONV_TRAJECTORY_LOSS_ATOL
            assert out_pt[key] == pytest.approx(out_tf[key], abs=atol), (step, key)
        if step == 0:
            assert_weights_close(pt.get_weights(), tf.get_weights(), atol=tol.CONV_STEP_WEIGHT_ATOL)
            assert_statistics_close(pt.get_statistics(), tf.get_statistics(), atol=tol.CONV_STEP_WEIGHT_ATOL)
    assert relative_distance(pt.get_weights(), tf.get_weights()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL


@pytest.mark.parametrize("task", list(TINY_TASKS))
def test_dcgan_task_models_train_together(task):
    """Each DCGAN task's own update semantics (d_then_g/reuse_fake with BatchNorm in both nets; simultaneous/reuse
    with dropout in D) on its architecture at test size, 20 steps."""
    spec = TINY_TASKS[task]()
    assert spec.updates == TASKS[task].spec.updates and spec.init == TASKS[task].spec.init
    pt, tf, results = run_both(spec, tol.TRAJECTORY_STEPS)
    for step, (out_pt, out_tf) in enumerate(results):
        for key in out_pt:
            assert out_pt[key] == pytest.approx(out_tf[key], abs=tol.CONV_TRAJECTORY_LOSS_ATOL), (step, key)
    assert relative_distance(pt.get_weights(), tf.get_weights()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL
    assert_statistics_close(pt.get_statistics(), tf.get_statistics(), atol=tol.CONV_STEP_WEIGHT_ATOL)
    noise = np.random.default_rng(3).standard_normal((8, spec.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(pt.generate(noise), tf.generate(noise), atol=tol.CONV_FORWARD_ATOL, rtol=0)


def test_conv_compiled_modes_agree_with_eager_across_frameworks():
    """tf.function and XLA against PyTorch eager on the convolutional parity GAN with wgan-gp: the penalty's double
    backward through convolutions, dropout and BatchNorm inside one traced (and XLA-compiled) graph."""
    spec = conv_parity_spec("wgan-gp")
    weights = init_weights(spec, 0)
    reference = torch_backend.build(spec, weights, device="cpu", mode="eager")
    compiled = [tf_backend.build(spec, weights, device="cpu", mode=m) for m in ("compiled", "xla")]
    stream = Stream(spec, source_for(spec), seed=0)
    for _ in range(5):
        inputs = stream.next().as_kwargs()
        expected = reference.train_step(**inputs)
        for trainer in compiled:
            got = trainer.train_step(**inputs)
            assert got["d_loss"] == pytest.approx(expected["d_loss"], abs=tol.CONV_TRAJECTORY_LOSS_ATOL)
    for trainer in compiled:
        assert relative_distance(reference.get_weights(), trainer.get_weights()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL


@pytest.mark.parametrize("source, target", [("torch", "tf"), ("tf", "torch")])
def test_conv_checkpoint_moves_between_frameworks(tmp_path, source, target):
    """Weights in the neutral kernel layouts, BatchNorm statistics and optimiser moments cross frameworks."""
    spec = TINY_TASKS["dcgan-faces"]()
    first = get_backend(source).build(spec, init_weights(spec, 0), device="cpu")
    stream = Stream(spec, source_for(spec), seed=0)
    for _ in range(3):
        first.train_step(**stream.next().as_kwargs())
    first.save(tmp_path / "ckpt.npz")
    second = get_backend(target).build(spec, init_weights(spec, 99), device="cpu")
    second.load(tmp_path / "ckpt.npz")
    noise = np.random.default_rng(1).standard_normal((8, spec.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(first.generate(noise), second.generate(noise), atol=tol.CONV_FORWARD_ATOL, rtol=0)
    inputs = stream.next().as_kwargs()
    out_first, out_second = first.train_step(**inputs), second.train_step(**inputs)
    assert out_first["g_loss"] == pytest.approx(out_second["g_loss"], abs=tol.CONV_LOSS_ATOL)
    assert_weights_close(first.get_weights(), second.get_weights(), atol=tol.CONV_STEP_WEIGHT_ATOL)
    assert_statistics_close(first.get_statistics(), second.get_statistics(), atol=tol.CONV_STEP_WEIGHT_ATOL)


def test_gradient_penalty_through_batchnorm_is_exact_in_both():
    """WGAN-GP's second derivative through a BatchNorm'd critic: Keras' own BatchNormalization (tf.nn.moments puts
    a stop_gradient on the mean inside the variance) differentiates another function than PyTorch does; the TF
    backend's BatchNorm drops that stop_gradient and agrees with PyTorch at float32 rounding."""
    import keras
    import tensorflow as tf
    import torch

    from backend_tf import losses as tf_losses, models as tf_models
    from backend_torch import losses as torch_losses, models as torch_models

    spec = conv_parity_spec("wgan-gp")
    net = Network(spec.data_shape, tuple(l for l in spec.discriminator.layers if not isinstance(l, Dropout)))
    weights = init_weights(spec.replace(discriminator=net), 0)["discriminator"]
    rng = np.random.default_rng(2)
    real, fake = rng.uniform(-1, 1, (2, 16, spec.data_dim)).astype(np.float32)
    eps = rng.random(16).astype(np.float32)

    critic = torch_models.Net(net)
    torch_models.load_weights(critic, weights)
    penalty = torch_losses.gradient_penalty(lambda x: critic(x, True), *map(torch.from_numpy, (real, fake, eps)))
    grads = torch.autograd.grad(penalty, list(critic.parameters()), allow_unused=True)
    want = np.concatenate([torch_models.to_neutral([g], [kind])[0].ravel()
                           for g, kind in zip(grads, critic.layouts) if g is not None])

    class KerasOwn(tf_models.Norm):  # the same layer with Keras' own training branch (tf.nn.moments)
        def call(self, inputs, training=None, update_stats=True):
            return keras.layers.BatchNormalization.call(self, inputs, training=training)

    def tf_gradient(model):
        with tf.GradientTape() as tape:
            value = tf_losses.gradient_penalty(lambda x: model(x, training=True), *map(tf.constant, (real, fake, eps)))
        grads = tape.gradient(value, model.trainable_variables)
        return np.concatenate([tf_models.to_neutral([g.numpy()], [kind])[0].ravel()
                               for g, kind in zip(grads, model.layouts) if g is not None])

    gaps = {}
    for name in ("suite", "keras"):
        model = tf_models.Net(net, name=name)
        tf_models.load_weights(model, weights)
        if name == "keras":
            for unit in model.units:
                if isinstance(unit, tf_models.Norm):
                    unit.__class__ = KerasOwn
        gaps[name] = np.abs(tf_gradient(model) - want).max()
    assert gaps["suite"] <= tol.CONV_STEP_WEIGHT_ATOL
    assert gaps["keras"] > 100 * tol.CONV_STEP_WEIGHT_ATOL, gaps


@pytest.mark.parametrize("pack", [1, 4])
def test_pacgan_task_model_trains_together(pack):
    """The -pacgan tasks' own model (BatchNorm MLP G, maxout D, simultaneous updates on one fake batch, normal_0.02
    init) with D judging packs, at batch 16 packs for speed: 20 steps, PyTorch eager against TF eager, and TF's
    XLA step at pack 4 (the mode the long runs use)."""
    spec = pacgan_spec(pack).replace(batch_size=16)
    pt, tf, results = run_both(spec, tol.TRAJECTORY_STEPS)
    for step, (out_pt, out_tf) in enumerate(results):
        for key in out_pt:
            assert out_pt[key] == pytest.approx(out_tf[key], abs=tol.TRAJECTORY_LOSS_ATOL), (step, key)
    # BatchNorm in G: the bound (and the reason) of the BatchNorm'd convolutional GANs (common/tolerances.py)
    assert relative_distance(pt.get_weights(), tf.get_weights()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL
    # G's running statistics follow its weights: measured 1.4e-5 apart at most after 20 steps at pack 4 (loaded
    # machine, 2026-12-01), a relative distance of the same order as the weights'
    assert relative_distance(pt.get_statistics(), tf.get_statistics()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL
    noise = np.random.default_rng(3).standard_normal((8, spec.latent_dim)).astype(np.float32)
    crossed = tf_backend.build(spec, init_weights(spec, 0), device="cpu", mode="eager")
    crossed.load_state(pt.state())  # PyTorch's trained weights and statistics, sampled by TensorFlow
    np.testing.assert_allclose(crossed.generate(noise), pt.generate(noise), atol=tol.FORWARD_ATOL, rtol=0)
    if pack == 4:
        xla = tf_backend.build(spec, init_weights(spec, 0), device="cpu", mode="xla")
        inputs = Stream(spec, source_for(spec), seed=0).next().as_kwargs()
        want = build_pair(spec)[0].train_step(**inputs)
        got = xla.train_step(**inputs)
        assert got["d_loss"] == pytest.approx(want["d_loss"], abs=tol.LOSS_ATOL)
