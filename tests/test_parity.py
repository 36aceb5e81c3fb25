"""PyTorch and TensorFlow (and JAX) compute the same GAN: same weights, same inputs, outputs compared with stated
tolerances.

In the manner of Hugging Face's PT/TF equivalence tests, but through the whole training step: forward passes,
one step of every loss with both spec optimisers over PARITY_SEEDS, 20-step trajectories, compiled modes and
checkpoints. The bounds on weights are derived per coordinate from what each update can amplify (learning rate,
the optimiser's normalisation by sqrt(v), the number of updates: common/tolerances.py, benchmarks/parity.py's
WeightBound), so they hold for any seed, not for the one they were tuned on.

Every pair is PyTorch against another framework (``other``), checked at the same derived bounds: the bounds are
pairwise against the reference side, so a third framework needs no new tolerance. JAX runs a subset of each sweep
(every loss and optimiser at step 1, two of them over 20 steps and two seeds, one convolutional GAN): each of its
compiled steps compiles on its own, about 2 s on 2 cores per loss x optimiser, and its op-by-op eager pays per op,
so the full cross product would add minutes to the suite; `python -m benchmarks.parity --other jax` measures all.
"""
import dataclasses
import types

import numpy as np
import pytest

from common import rounding
from common import tolerances as tol
from common.backend import get_backend
from common.init import init_weights
from benchmarks.parity import (GradientShift, SeededPair, UniformSource, WeightBound, build_pair, conv_parity_spec,
                               measure_seed, parity_spec, relative_distance, run_both, source_for, step1_gradients,
                               step1_loss_bounds)
from common.spec import LOSSES, Activation, Dropout, Network, Updates
from common.stream import Stream
from common.tasks import TASKS, dcgan_faces_spec, dcgan_mnist_spec, pacgan_spec
from tests.test_backend_contract import assert_within_bound

torch_backend = get_backend("torch")
tf_backend = get_backend("tf")
OTHERS = ["tf", "jax"]  # the frameworks paired with PyTorch
# (other, loss, optimizer) of the seeded 20-step sweep: TensorFlow every pair, JAX two over JAX_SEEDS
SWEEP = [("tf", loss, opt) for loss in LOSSES for opt in ("adam", "rmsprop")] + \
    [("jax", "nonsaturating", "adam"), ("jax", "wgan-gp", "rmsprop")]
JAX_SEEDS = tol.PARITY_SEEDS[:2]


# The parity GANs are tiny: with torch's default threads their ops wait on OpenMP workers, which on a loaded 2-core
# machine made one seed's 20 steps 7.6x slower (10.8 s against 1.4 s, measured). Parity is a property of the
# arithmetic, which these tests check whatever the thread count; one thread keeps the seed sweeps fast.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seeds_of(index: int, ways: int) -> tuple[int, ...]:
    """Case ``index`` of ``ways`` parametrised cases: every ``ways``-th of PARITY_SEEDS, from the ``index % ways``-th.
    The bounds are derived per coordinate, not tuned on seeds: a few seeds a case suffice, and the cases together
    still run every one of PARITY_SEEDS."""
    return tol.PARITY_SEEDS[index % ways::ways]


@pytest.mark.parametrize("task", list(TASKS))
def test_forward_outputs_agree_on_every_task_model(task):
    spec = TASKS[task].spec
    pt, tf = build_pair(spec, seed=1)
    rng = np.random.default_rng(0)
    rows = 8 if spec.data_dim < 4096 else 2  # the 64x64 faces' float64 bound costs ~0.5 s a row
    noise = rng.standard_normal((rows, spec.latent_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, (rows, spec.data_dim)).astype(np.float32)
    assert_forward_within(spec, pt, tf, noise, x)


def assert_forward_within(spec, pt, tf, noise, x=None, where=""):
    """generate (and discriminate) of two trainers holding the same weights, within the derived pair bound."""
    weights, stats = pt.get_weights(), pt.get_statistics()
    _, spread = rounding.generate_bound(spec, weights, stats, noise)
    assert_within_bound(f"{where}generate", pt.generate(noise), tf.generate(noise), rounding.pair_bound(spread))
    if x is not None:
        _, spread = rounding.discriminate_bound(spec, weights, stats, x)
        assert_within_bound(f"{where}discriminate", pt.discriminate(x), tf.discriminate(x), rounding.pair_bound(spread))


def weight_gaps(a: dict, b: dict) -> dict:
    return {net: [np.abs(x.astype(np.float64) - y) for x, y in zip(a[net], b[net])] for net in a}


def assert_losses_close(out_pt, out_tf, weight_rel_bound=0.0, where=""):
    for key in out_pt:
        assert abs(out_pt[key] - out_tf[key]) <= tol.loss_bound(out_pt[key], weight_rel_bound), (where, key)


def step_both(pt, tf, bound, inputs, where=""):
    """One train_step of each, their losses checked against the bound at the weights' current gap."""
    before = bound.relative(pt.get_weights()) if bound.bound else 0.0
    out_pt, out_tf = pt.train_step(**inputs), tf.train_step(**inputs)
    assert_losses_close(out_pt, out_tf, before, where)
    bound.after_step(pt, tf)
    return out_pt, out_tf


def assert_within(bound, pt, tf, where=""):
    ratio = bound.ratio(pt.get_weights(), tf.get_weights())
    assert ratio <= 1.0, f"{where}: weights differ by {ratio:.3g}x their derived bound"


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("other", OTHERS)
def test_one_step_agrees_eager(other, loss, optimizer):
    """Eager against eager, seed 0: losses, the gradients (read back from the optimiser state) and every weight."""
    spec = parity_spec(loss, optimizer)
    pt, tf = build_pair(spec, other=other)
    bound = WeightBound(spec)
    before, inputs = pt.state(), Stream(spec, UniformSource(), seed=0).next().as_kwargs()
    step_both(pt, tf, bound, inputs)
    assert step1_gradients(GradientShift(spec), before, inputs, pt, tf)["gradient_ratio"] <= 1.0
    assert_within(bound, pt, tf)


@pytest.mark.parametrize("other, loss, optimizer", SWEEP)
def test_one_step_and_twenty_steps_agree_for_every_seed(other, loss, optimizer):
    """Over 5 of PARITY_SEEDS against TF (init weights and data from each; the 12 loss x optimizer cases together run
    each of PARITY_SEEDS 3 times, each optimiser all of them, each loss half of them) and JAX_SEEDS against JAX:
    step 1's gradients, losses and weights, and the 20-step trajectory's losses and weights, within the derived
    bounds (torch eager vs tf.function, or jax.jit)."""
    pair = SeededPair(parity_spec(loss, optimizer), other=other)
    seeds = seeds_of(LOSSES.index(loss) + 2 * ("adam", "rmsprop").index(optimizer), 4) if other == "tf" else JAX_SEEDS
    for seed in seeds:
        got = measure_seed(pair, seed, tol.TRAJECTORY_STEPS)
        assert got["gradient_ratio"] <= 1.0, (seed, got)
        assert got["loss_ratio"] <= 1.0, (seed, got)
        assert got["step1_weight_ratio"] <= 1.0, (seed, got)
        assert got[f"step{tol.TRAJECTORY_STEPS}_weight_ratio"] <= 1.0, (seed, got)


def test_g_gradients_at_identical_critic_weights_jax_seed_17(monkeypatch):
    """The case the old check failed (`python -m benchmarks.parity --other jax`): hinge with RMSprop, seed 17. One D
    weight's gradient is at rounding level, RMSprop's first step amplifies its 4.7e-10 gap between the frameworks
    ~9e3-fold (within D's own derived bound), and G's gradients, taken through the two updated critics, differ by
    6.2e-6 of the largest, over GRADIENT_RTOL (measured on this 2-core Xeon: the gap is this CPU's rounding). With
    the float64 shift between the two critics taken out (GradientShift) they agree to rounding; a JAX whose G
    gradient is 1 + 1e-4 times the right one stays far outside."""
    spec = parity_spec("hinge", "rmsprop")
    pair = SeededPair(spec, tf_mode="eager", other="jax")  # eager: as jax.jit (6.2e-6), and patched below in place
    got = measure_seed(pair, 17, 1)
    # The old check (gradient_gap_unshifted against GRADIENT_RTOL) failed here on one CPU and need not on another:
    # the D gap behind it is that CPU's rounding. What must hold anywhere is below.
    assert got["step1_weight_ratio"] <= 1.0, got  # D's gap that moved G's gradient is within its own bound
    assert got["gradient_ratio"] <= 1.0, got  # the new check

    import backend_jax.trainer

    original = backend_jax.trainer.Trainer.g_gradients

    def scaled(self, *args, **kwargs):
        loss, grads, fake = original(self, *args, **kwargs)
        return loss, [g * (1 + 1e-4) for g in grads], fake

    monkeypatch.setattr(backend_jax.trainer.Trainer, "g_gradients", scaled)  # eager calls it at every step
    got = measure_seed(pair, 17, 1)
    assert got["gradient_ratio"] > 10, got


def test_a_changed_init_constant_is_covered(monkeypatch):
    """The issue's case: another constant seeding the initial weights (0x1A18 instead of 0x1A17) made one
    nonsaturating-Adam step differ by 1.4e-6 on one machine, over the old constant bound of 1e-6 (2.3e-7 on
    another: the gap depends on the CPU's summation order). The derived bound allows such a gap where Adam's
    normalisation can make one, and holds."""
    import common.init

    def other_constant(spec, seed):
        rng = np.random.default_rng([seed, 0x1A18])
        return {"generator": common.init.init_mlp(spec.generator, spec.init, rng),
                "discriminator": common.init.init_mlp(spec.discriminator, spec.init, rng)}

    monkeypatch.setattr("benchmarks.parity.init_weights", other_constant)
    spec = parity_spec("nonsaturating", "adam")
    pt, tf = build_pair(spec)
    bound = WeightBound(spec)
    step_both(pt, tf, bound, Stream(spec, UniformSource(), seed=0).next().as_kwargs())
    allowed = max(float(np.max(b)) for net in bound.bound.values() for b in net)
    assert allowed > 1e-6  # the old constant would not have allowed what this init's first step can do ...
    assert_within(bound, pt, tf)  # ... the derived bound holds


def test_a_moved_epsilon_breaks_the_bound(monkeypatch):
    """The bound is not loose enough to hide a semantic difference: TF's Adam with epsilon 1e-4 instead of 1e-8."""
    import backend_tf.optim

    original = backend_tf.optim.SpecAdam.__init__

    def moved(self, opt, params):
        original(self, opt, params)
        self.eps = 1e-4

    monkeypatch.setattr(backend_tf.optim.SpecAdam, "__init__", moved)
    spec = parity_spec("nonsaturating", "adam")
    pt, tf = build_pair(spec)
    bound = WeightBound(spec)
    pt.train_step(**Stream(spec, UniformSource(), seed=0).next().as_kwargs())
    tf.train_step(**Stream(spec, UniformSource(), seed=0).next().as_kwargs())
    bound.after_step(pt)
    assert bound.ratio(pt.get_weights(), tf.get_weights()) > 10


@pytest.mark.parametrize("order, reuse", [("g_then_d", True), ("g_then_d", False), ("simultaneous", True),
                                          ("d_then_g", True)])
@pytest.mark.parametrize("other", OTHERS)
def test_update_orders_agree(other, order, reuse):
    """Three steps of each order; step 1's gradients (the network updated second taken through the first one's
    update where it is: GradientShift) within their bound."""
    spec = parity_spec("minimax", order=order, reuse=reuse)
    pt, tf = build_pair(spec, other=other)
    bound = WeightBound(spec)
    stream = Stream(spec, UniformSource(), seed=2)
    for step in range(3):
        before, inputs = pt.state(), stream.next().as_kwargs()
        step_both(pt, tf, bound, inputs, step)
        if step == 0:
            assert step1_gradients(GradientShift(spec), before, inputs, pt, tf)["gradient_ratio"] <= 1.0
    assert_within(bound, pt, tf)


@pytest.mark.parametrize("other", OTHERS)
def test_critic_steps_agree(other):
    spec = parity_spec("wgan-gp").replace(updates=Updates(d_steps=3))
    pt, tf = build_pair(spec, other=other)
    bound = WeightBound(spec)
    step_both(pt, tf, bound, Stream(spec, UniformSource(), seed=5).next().as_kwargs())
    assert bound.t["discriminator"] == 3  # three D updates, each adding its own bound
    assert_within(bound, pt, tf)


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_compiled_modes_agree_with_eager_across_frameworks(loss):
    """tf.function and XLA against PyTorch eager: compiling changes no result beyond the stated tolerance."""
    spec = parity_spec(loss)
    weights = init_weights(spec, 0)
    reference = torch_backend.build(spec, weights, device="cpu", mode="eager")
    compiled = [tf_backend.build(spec, weights, device="cpu", mode=m) for m in ("compiled", "xla")]
    bound = WeightBound(spec)
    stream = Stream(spec, UniformSource(), seed=0)
    for step in range(5):
        inputs = stream.next().as_kwargs()
        before = bound.relative(reference.get_weights()) if bound.bound else 0.0
        expected = reference.train_step(**inputs)
        for trainer in compiled:
            assert_losses_close(expected, trainer.train_step(**inputs), before, (step, trainer.mode))
        bound.after_step(reference)
    for trainer in compiled:
        assert_within(bound, reference, trainer, trainer.mode)


@pytest.mark.parametrize("source, target", [("torch", "tf"), ("tf", "torch"), ("torch", "jax"), ("jax", "tf")])
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
    bound = WeightBound(spec, start=first)  # both hold the very same state: the bound starts at zero there
    step_both(first, second, bound, stream.next().as_kwargs())
    assert_within(bound, first, second)


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


def assert_weights_close(a, b, atol, rtol=0.0):
    for net in ("generator", "discriminator"):
        for i, (x, y) in enumerate(zip(a[net], b[net])):
            np.testing.assert_allclose(x, y, atol=atol, rtol=rtol, err_msg=f"{net}[{i}]")


def assert_statistics_close(a, b, atol):
    for net in ("generator", "discriminator"):
        for i, (x, y) in enumerate(zip(a[net], b[net])):
            np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"{net} statistic {i}")


@pytest.mark.parametrize("other, loss, optimizer", [("tf", loss, opt) for loss in LOSSES for opt in ("adam", "rmsprop")]
                         + [("jax", "wgan-gp", "adam")])
def test_conv_one_step_and_twenty_steps_agree(other, loss, optimizer):
    """Every loss with both spec optimisers, WGAN-GP's double backward through convolutions, dropout and a
    BatchNorm'd critic included: the first step's losses, weights and statistics, then the 20-step trajectory (one
    run: eager steps of even a tiny conv GAN cost ~0.1 s in each framework). JAX: WGAN-GP with Adam, the hardest of
    them, as one jax.jit step (its eager conv step costs ~0.3 s)."""
    spec = conv_parity_spec(loss, optimizer)
    pt, tf = build_pair(spec, mode_tf="eager" if other == "tf" else "compiled", other=other)
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
    # The two trained generators hold weights and statistics that differ by the trajectory's gap: the samples may
    # differ by what those gaps move (carried like rounding, common/rounding.py) plus both forward passes' rounding.
    noise = np.random.default_rng(3).standard_normal((8, spec.latent_dim)).astype(np.float32)
    _, spread = rounding.generate_bound(spec, pt.get_weights(), pt.get_statistics(), noise,
                                        weight_gaps(pt.get_weights(), tf.get_weights()),
                                        weight_gaps(pt.get_statistics(), tf.get_statistics()))
    assert_within_bound("generate after training", pt.generate(noise), tf.generate(noise), rounding.pair_bound(spread))


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
    assert_forward_within(spec, first, second, noise)
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
    # BatchNorm in G: the bounds (and the reason) of the BatchNorm'd convolutional GANs (common/tolerances.py)
    for step, (out_pt, out_tf) in enumerate(results):
        for key in out_pt:
            assert out_pt[key] == pytest.approx(out_tf[key], abs=tol.CONV_TRAJECTORY_LOSS_ATOL), (step, key)
    assert relative_distance(pt.get_weights(), tf.get_weights()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL
    # G's running statistics follow its weights: measured 1.4e-5 apart at most after 20 steps at pack 4 (loaded
    # machine, 2026-12-01), a relative distance of the same order as the weights'
    assert relative_distance(pt.get_statistics(), tf.get_statistics()) < tol.CONV_TRAJECTORY_WEIGHT_RTOL
    noise = np.random.default_rng(3).standard_normal((8, spec.latent_dim)).astype(np.float32)
    crossed = tf_backend.build(spec, init_weights(spec, 0), device="cpu", mode="eager")
    crossed.load_state(pt.state())  # PyTorch's trained weights and statistics, sampled by TensorFlow
    assert_forward_within(spec, pt, crossed, noise)
    if pack == 4:
        xla = tf_backend.build(spec, init_weights(spec, 0), device="cpu", mode="xla")
        inputs = Stream(spec, source_for(spec), seed=0).next().as_kwargs()
        want = torch_backend.build(spec, init_weights(spec, 0), device="cpu", mode="eager").train_step(**inputs)
        got = xla.train_step(**inputs)
        assert got["d_loss"] == pytest.approx(want["d_loss"], abs=tol.LOSS_ATOL)


# ---- the derived forward bound: loose enough for every seed and thread count, tight enough for a real error --------
def off_init(spec, seed: int) -> dict:
    """The init weights moved by N(0, 0.05): biases and BatchNorm's gamma, beta away from 0 and 1, as after training."""
    rng = np.random.default_rng([seed, 7])
    return {net: [w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in ws]
            for net, ws in init_weights(spec, seed).items()}


def test_forward_bound_holds_for_every_seed_and_thread_count():
    """generate and discriminate of both DCGAN task models at test size, at init and off it, with PyTorch on 1 and 2
    threads (TensorFlow's thread pools are fixed at start-up: its side runs as configured), over PARITY_SEEDS: each
    of the 4 (model, thread count) cases on every 4th seed, so that together they run every seed once."""
    import torch

    rng = np.random.default_rng(0)
    for i, (task, make) in enumerate(TINY_TASKS.items()):
        spec = make()
        pt, tf = build_pair(spec)
        noise = rng.standard_normal((8, spec.latent_dim)).astype(np.float32)
        x = rng.uniform(-1, 1, (8, spec.data_dim)).astype(np.float32)
        for j, threads in enumerate((1, 2)):
            torch.set_num_threads(threads)
            for seed in seeds_of(2 * i + j, 4):
                for weights in (init_weights(spec, seed), off_init(spec, seed)):
                    pt.set_weights(weights)
                    tf.set_weights(weights)
                    assert_forward_within(spec, pt, tf, noise, x, where=f"{task} seed {seed} {threads} threads: ")
    torch.set_num_threads(1)


def planted(net: Network, index: int, **changes) -> Network:
    """``net`` with layer ``index`` computed otherwise: a resolved-layer field (pads) or a layer field (eps)."""
    infos = list(net.layer_info)
    info = infos[index]
    if "pads" in changes:
        infos[index] = dataclasses.replace(info, pads=changes["pads"])
    else:
        infos[index] = dataclasses.replace(info, layer=dataclasses.replace(info.layer, **changes))
    return types.SimpleNamespace(input_shape=net.input_shape, layer_info=tuple(infos))


def test_forward_bound_catches_a_planted_error():
    """Each of three real mistakes, on the dcgan-mnist model at test size with weights off the init, puts PyTorch's
    correct output outside the pair bound: D's first 'same' convolution padded (2, 1) instead of (1, 2) on each
    axis, that convolution's bias left out, G's BatchNorm epsilon 1e-5 (PyTorch's default) instead of 1e-3."""
    spec = TINY_TASKS["dcgan-mnist"]()
    weights = off_init(spec, 0)
    pt = torch_backend.build(spec, weights, device="cpu", mode="eager")
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((8, spec.latent_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, (8, spec.data_dim)).astype(np.float32)
    stats = pt.get_statistics()
    d, g = spec.discriminator_network, spec.generator_network
    first = d.layer_info[0]
    assert first.pads == (1, 2, 1, 2)
    no_bias = [w.copy() for w in weights["discriminator"]]
    no_bias[1][:] = 0.0  # the first convolution's bias
    cases = {"padding side": (d, planted(d, 0, pads=(2, 1, 2, 1)), weights["discriminator"]),
             "missing bias": (d, d, no_bias),
             "BatchNorm eps": (g, planted(g, 1, eps=1e-5), weights["generator"])}
    sigmoid = Activation("sigmoid")
    for name, (net, wrong, wrong_weights) in cases.items():
        if net is g:
            got, inputs, net_stats = pt.generate(noise), noise, stats["generator"]
        else:
            got, inputs, net_stats = pt.discriminate(x), x, stats["discriminator"]
        right, spread, _, _ = rounding.network_bound(net, weights["generator" if net is g else "discriminator"],
                                                     inputs, False, None, net_stats)
        other, _, _, _ = rounding.network_bound(wrong, wrong_weights, inputs, False, None, net_stats)
        if net is d:  # discriminate reports the probability
            right, spread = rounding.activation_bound(sigmoid, right, spread)
            other = rounding.ACTIVATIONS["sigmoid"](other, 0.0)
            right, spread, other = right[:, 0], spread[:, 0], other[:, 0]
        assert_within_bound(f"{name}: the right computation", got, right, rounding.reference_bound(spread))
        with pytest.raises(AssertionError, match="its bound"):
            assert_within_bound(f"{name}: planted", got, other, rounding.pair_bound(spread))


def step1_loss_ratios(spec, pt, tf, inputs) -> dict:
    before = pt.state()
    out_pt, out_tf = pt.train_step(**inputs), tf.train_step(**inputs)
    bounds = step1_loss_bounds(spec, before, inputs, (pt.get_weights()["discriminator"], tf.get_weights()["discriminator"]))
    return {key: abs(out_pt[key] - out_tf[key]) / float(rounding.pair_bound(spread))
            for key, (_, spread) in bounds.items()}


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("loss", LOSSES)
def test_first_step_losses_within_the_derived_bound(loss, optimizer):
    """Step 1's reported losses and D outputs, torch eager vs tf.function, within the bound derived from D's logits
    (common/rounding.py, benchmarks/parity.py step1_loss_bounds): the MLP parity GAN over 5 of PARITY_SEEDS, the
    convolutional one (BatchNorm, dropout) at seed 0. G's loss goes through the updated D, whose two copies then
    differ by the step's weight gap; WGAN-GP's d_loss (the penalty) is out of reach and checked by loss_bound."""
    pair = SeededPair(parity_spec(loss, optimizer))
    for seed in tol.PARITY_SEEDS[:5]:
        inputs = pair.reset(seed).next().as_kwargs()
        ratios = step1_loss_ratios(pair.spec, pair.pt, pair.tf, inputs)
        assert max(ratios.values()) <= 1.0, (seed, ratios)
    spec = conv_parity_spec(loss, optimizer)
    pt, tf = build_pair(spec)
    ratios = step1_loss_ratios(spec, pt, tf, Stream(spec, source_for(spec), seed=0).next().as_kwargs())
    assert max(ratios.values()) <= 1.0, ("conv", ratios)


def test_first_step_loss_bound_catches_a_term_off_by_ten_ppm(monkeypatch):
    """The derived loss bound is tight: TensorFlow's real term of L_D 10 parts per million too large (a constant
    rounded to another value, a mean over one example too many) is outside it, on every seed."""
    import backend_tf.losses

    original = backend_tf.losses.d_loss_terms
    monkeypatch.setattr(backend_tf.losses, "d_loss_terms",
                        lambda loss, l_r, l_f: (lambda r, f: (r * (1 + 1e-5), f))(*original(loss, l_r, l_f)))
    pair = SeededPair(parity_spec("nonsaturating", "adam"))
    for seed in tol.PARITY_SEEDS[:5]:
        ratios = step1_loss_ratios(pair.spec, pair.pt, pair.tf, pair.reset(seed).next().as_kwargs())
        assert ratios["d_loss"] > 1.0, (seed, ratios)
