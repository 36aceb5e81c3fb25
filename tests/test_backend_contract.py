"""The backend contract, once, over every backend: each test runs on PyTorch, TensorFlow and JAX against the one
numpy reference (tests/reference.py). Tolerances: common/tolerances.py. What only one framework has (exactness
against torch.optim, Keras' epsilon placement, compiled and XLA modes, settings) stays in test_backend_<name>.py.
"""
from __future__ import annotations

import dataclasses
import importlib
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import rounding  # noqa: E402
from common import tolerances as tol  # noqa: E402
from common.backend import STEP_KEYS, DeviceUnavailableError, get_backend  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.spec import GAN, GP_NORM_EPS, MLP, Loss, Optimizer  # noqa: E402
from conftest import DATA, HIDDEN, LATENT, small_spec, step_inputs  # noqa: E402  (shared with test_backend_tf.py)
from tests import reference  # noqa: E402

LOSSES = ["minimax", "nonsaturating", "wasserstein", "wgan-gp", "hinge", "least-squares"]


class Backend:
    """One backend as the tests drive it: its package, its modules, and numpy <-> its tensors."""

    def __init__(self, name: str):
        self.name = name
        self.module = get_backend(name)
        package = self.module.__name__
        self.losses = importlib.import_module(f"{package}.losses")
        self.optim = importlib.import_module(f"{package}.optim")
        self.models = importlib.import_module(f"{package}.models")
        if name == "torch":
            import torch
            self.tensor = lambda x: torch.from_numpy(np.asarray(x, np.float32).copy())
            self.variable = self.tensor
            self.numpy = lambda t: t.detach().cpu().numpy()
        elif name == "tf":
            import tensorflow as tf
            self.tensor = lambda x: tf.constant(np.asarray(x, np.float32))
            self.variable = lambda x: tf.Variable(np.asarray(x, np.float32))
            self.numpy = lambda t: t.numpy()
        else:  # jax: arrays are immutable; a JAX user's mutable weight is an nnx.Variable
            import jax.numpy as jnp
            from flax import nnx
            self.tensor = lambda x: jnp.asarray(np.asarray(x, np.float32))
            self.variable = lambda x: nnx.Variable(self.tensor(x))
            self.numpy = lambda t: np.asarray(t[...] if isinstance(t, nnx.Variable) else t)

    def build(self, spec: GAN, weights=None, seed: int = 0, mode: str = "eager"):
        return self.module.build(spec, weights if weights is not None else init_weights(spec, seed), "cpu", mode)


@pytest.fixture(params=["torch", "tf", "jax"], scope="module")
def backend(request) -> Backend:
    return Backend(request.param)


def at(inputs: dict, index) -> dict:
    return {key: None if value is None else value[index] for key, value in inputs.items()}


def assert_close(name: str, got, want, atol: float) -> None:
    """One helper for every comparison: names the output and its largest difference."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    worst = float(np.max(np.abs(got - want), initial=0.0))
    assert worst <= atol, f"{name}: largest difference {worst:.3g} > {atol:g}"


def assert_within_bound(name: str, got, want, bound) -> None:
    """A per-coordinate bound (common/rounding.py): names the output, its worst coordinate and the ratio."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    bound = np.broadcast_to(np.asarray(bound, np.float64).reshape(got.shape), got.shape)
    ratio = np.abs(got - want) / np.maximum(bound, np.finfo(np.float64).tiny)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
    assert not ratio.size or ratio[worst] <= 1.0, (f"{name}: at {worst} differs by {abs(got - want)[worst]:.3g}, "
                                                   f"{ratio[worst]:.3g}x its bound {bound[worst]:.3g}")


def assert_weights_close(got, want, atol: float = 0.0) -> None:
    for network in ("generator", "discriminator"):
        assert len(got[network]) == len(want[network]), network
        for i, (x, y) in enumerate(zip(got[network], want[network])):
            assert_close(f"{network}[{i}]", x, y, atol)


def optimizer_updates(trainer, network: str) -> int:
    return int(trainer.state()[f"opt/{network}/t"])


# ---- models -----------------------------------------------------------------------------------------
def test_weights_round_trip_exactly(backend):
    spec = small_spec()
    weights = init_weights(spec, 1)
    got = backend.build(spec, weights).get_weights()
    assert_weights_close(got, weights)
    assert all(a.dtype == np.float32 for a in got["generator"] + got["discriminator"])
    assert got["generator"][0].shape == (LATENT, HIDDEN)  # neutral kernel (in, out)


def test_forward_equals_reference(backend):
    gen = MLP((LATENT, 16, 16, DATA), hidden_activation="leaky_relu", output_activation="tanh", leaky_slope=0.2)
    disc = MLP((DATA, 16, 1), hidden_activation="leaky_relu", leaky_slope=0.2)
    spec = small_spec(loss="nonsaturating", generator=gen, discriminator=disc)
    weights = init_weights(spec, 2)
    trainer = backend.build(spec, weights)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((32, LATENT)).astype(np.float32) * 3
    x = rng.standard_normal((32, DATA)).astype(np.float32) * 3
    fake = trainer.generate(z)
    _, spread = rounding.generate_bound(spec, weights, {"generator": []}, z)
    assert_within_bound("G(z)", fake, reference.mlp_forward(weights["generator"], gen, z),
                        rounding.reference_bound(spread))
    assert np.abs(fake).max() <= 1 and (fake < 0).any()  # tanh applied, leaky slope kept negatives
    # The network outputs logits (the sigmoid lives in the loss); discriminate() reports the probability.
    logits = reference.mlp_forward(weights["discriminator"], spec.discriminator, x, apply_output=False)[:, 0]
    _, spread, _, _ = rounding.network_bound(spec.discriminator_network, weights["discriminator"], x)
    assert_within_bound("D logits", backend.numpy(trainer.discriminator(backend.tensor(x)))[:, 0], logits,
                        rounding.reference_bound(spread[:, 0]))
    _, spread = rounding.discriminate_bound(spec, weights, {"discriminator": []}, x)
    assert_within_bound("D(x)", trainer.discriminate(x), reference.sigmoid(logits), rounding.reference_bound(spread))


# ---- losses -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("d_average", [False, True])
@pytest.mark.parametrize("name", LOSSES)
def test_losses_equal_reference(backend, name, d_average):
    # Large logits too: softplus must stay finite and exact where exp(x) overflows float32.
    l_r = np.array([-95.0, -3.0, -0.7, 0.0, 0.4, 2.5, 12.0, 40.0], np.float32)
    l_f = np.array([60.0, 1.2, -0.3, 0.0, -2.0, 0.9, 0.05, -88.0], np.float32)
    loss = Loss(name, d_average=d_average, gp_weight=7.0)
    got_d = backend.losses.d_loss(loss, backend.tensor(l_r), backend.tensor(l_f), backend.tensor(np.float32(0.37)))
    want_d = reference.d_loss(name, l_r.astype(np.float64), l_f.astype(np.float64), d_average, 7.0, 0.37)
    # Relative as well: the large logits make some losses large (|L| ~ 50).
    assert_close(f"L_D {name}", backend.numpy(got_d), want_d, tol.LOSS_ATOL + 1e-6 * abs(want_d))
    want_g = reference.g_loss(name, l_f.astype(np.float64))
    got_g = backend.numpy(backend.losses.g_loss(loss, backend.tensor(l_f)))
    assert_close(f"L_G {name}", got_g, want_g, tol.LOSS_ATOL + 1e-6 * abs(want_g))


def test_gradient_penalty_is_per_example(backend):
    spec = small_spec(loss="wgan-gp", discriminator=MLP((DATA, HIDDEN, 1), "tanh", "linear"))
    weights = init_weights(spec, 5)
    trainer = backend.build(spec, weights)
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((2, 16, DATA)).astype(np.float32)
    eps = rng.random(16).astype(np.float32)

    def penalty(eps):
        value = backend.losses.gradient_penalty(trainer.discriminator, backend.tensor(real), backend.tensor(fake),
                                                backend.tensor(eps))
        return float(backend.numpy(value))

    def terms(eps):  # each example's own interpolate, with its own eps
        x_hat = eps[:, None] * real.astype(np.float64) + (1 - eps[:, None]) * fake
        grad = reference.tanh_critic_input_gradient(weights["discriminator"], x_hat)
        return (np.sqrt((grad ** 2).sum(axis=1) + GP_NORM_EPS) - 1) ** 2

    assert_close("gradient penalty", penalty(eps), terms(eps).mean(), 1e-5 * terms(eps).mean())
    changed = eps.copy()
    changed[3] = 1 - eps[3]
    assert np.count_nonzero(terms(eps) != terms(changed)) == 1
    shift = (penalty(changed) - penalty(eps)) * 16  # one example's eps moves only its own term of the mean
    assert_close("one example's term", shift, terms(changed)[3] - terms(eps)[3], 1e-5)
    assert abs(shift) > 1e-4  # the change was visible at all


def test_wgan_gp_gradient_differs_from_wasserstein(backend):
    inputs = step_inputs(small_spec("wgan-gp"), 2)
    grads = {}
    for name in ("wasserstein", "wgan-gp"):
        trainer = backend.build(small_spec(name))
        real, fake = (trainer.to_tensor(a) for a in (inputs["real"][0], trainer.generate(inputs["noise"][0])))
        *_, g = trainer.d_gradients(real, fake, trainer.to_tensor(inputs["gp_eps"][0]))
        grads[name] = np.concatenate([trainer.to_numpy(x).ravel() for x in g])
    assert np.abs(grads["wgan-gp"] - grads["wasserstein"]).max() > 1e-3


# ---- optimisers -------------------------------------------------------------------------------------
QUAD_SCALE = np.array([0.5, 1.0, 2.0, 4.0, 0.1, 3.0])
QUAD_CENTRE = np.array([1.0, -2.0, 0.5, 0.0, 3.0, -1.0])
W0 = np.array([0.3, 0.7, -1.2, 2.0, -0.5, 0.0])
UPDATES = 20


def quadratic_grad(w):  # f(w) = 0.5 sum a (w - c)^2
    return QUAD_SCALE * (w - QUAD_CENTRE)


@pytest.mark.parametrize("opt", [Optimizer("adam", lr=0.05, beta1=0.9), Optimizer("adam", lr=0.05, beta1=0.5),
                                 Optimizer("adam", lr=0.05, beta1=0.0, beta2=0.9),
                                 Optimizer("adam", lr=0.05, beta1=0.9, eps=0.5, eps_form="keras"),  # eps matters
                                 Optimizer("rmsprop", lr=0.01, alpha=0.99), Optimizer("rmsprop", lr=0.01, alpha=0.9)])
def test_spec_optimizers_equal_reference(backend, opt):
    variable = backend.variable(W0)
    optimizer = backend.optim.make_optimizer(opt, [variable])
    for _ in range(UPDATES):
        current = backend.numpy(variable).astype(np.float64)
        optimizer.apply([backend.tensor(quadratic_grad(current))])
    want = (reference.adam if opt.name == "adam" else reference.rmsprop)(opt, W0.copy(), quadratic_grad, UPDATES)
    assert_close(f"{opt.name} after {UPDATES} updates", backend.numpy(variable), want, tol.OPTIMIZER_REFERENCE_ATOL)
    assert np.abs(want - W0).min() > 1e-3  # the weights really moved


# ---- the step schedule against the float64 reference --------------------------------------------------
SCHEDULES = [(order, d_steps, reuse) for order in ("d_then_g", "g_then_d") for d_steps in (1, 2)
             for reuse in (False, True)] + [("simultaneous", 1, False), ("simultaneous", 1, True)]
# Adam with eps = 1: an update is about lr times the averaged gradient, so float32 rounding stays at its own
# size instead of being amplified by Adam's normalisation, and a wrong batch or order shows at ~lr * gradient.
LINEAR_ADAM = Optimizer("adam", lr=0.05, beta1=0.5, beta2=0.9, eps=1.0)
SCHEDULE_STEPS = 3


@pytest.mark.parametrize("loss", ["nonsaturating", "wasserstein"])
@pytest.mark.parametrize("order, d_steps, reuse_fake", SCHEDULES)
def test_schedule_equals_float64_reference(backend, order, d_steps, reuse_fake, loss):
    """Which batch each update sees, in which order, at which weights: the whole step against a numpy float64
    loop written from the spec's words (parity between backends cannot catch a bug the two share)."""
    spec = small_spec(loss, order=order, d_steps=d_steps, reuse_fake=reuse_fake, opt=LINEAR_ADAM,
                      generator=MLP((LATENT, HIDDEN, DATA), "tanh"), discriminator=MLP((DATA, HIDDEN, 1), "tanh"))
    if loss == "wasserstein":
        spec = spec.replace(loss=Loss("wasserstein", clip=0.3))  # clips some D weights, not all
    weights = init_weights(spec, 21)
    trainer, ref = backend.build(spec, weights), reference.ReferenceGAN(spec, weights)
    inputs = step_inputs(spec, 22, count=SCHEDULE_STEPS)
    for step in range(SCHEDULE_STEPS):
        got, want = trainer.train_step(**at(inputs, step)), ref.step(inputs["real"][step], inputs["noise"][step])
        for key in STEP_KEYS:
            assert_close(f"step {step} {key}", got[key], want[key], tol.SCHEDULE_REFERENCE_ATOL)
    assert_weights_close(trainer.get_weights(), ref.weights(), tol.SCHEDULE_REFERENCE_ATOL)
    assert optimizer_updates(trainer, "discriminator") == SCHEDULE_STEPS * d_steps
    assert optimizer_updates(trainer, "generator") == SCHEDULE_STEPS


# ---- update order: which weights and noise each update sees ------------------------------------------
def critic_on(backend, spec, gen_weights, disc_weights, noise):
    """D(G(z)) for the given weights, from a fresh trainer (least-squares: raw critic values)."""
    trainer = backend.build(spec, {"generator": gen_weights, "discriminator": disc_weights})
    return trainer.discriminate(trainer.generate(noise)).astype(np.float64)


def ls_g_loss(l_f):
    return 0.5 * np.mean((l_f - 1) ** 2)


@pytest.mark.parametrize("reuse_fake", [False, True])
@pytest.mark.parametrize("order", ["d_then_g", "g_then_d", "simultaneous"])
def test_update_order_uses_the_specified_weights_and_noise(backend, order, reuse_fake):
    spec = small_spec(order=order, reuse_fake=reuse_fake)
    w0 = init_weights(spec, 7)
    inputs = step_inputs(spec, 8)
    noise = inputs["noise"]
    trainer = backend.build(spec, w0)
    result = trainer.train_step(**inputs)
    w1 = trainer.get_weights()
    g0, d0, g1, d1 = w0["generator"], w0["discriminator"], w1["generator"], w1["discriminator"]
    g_noise = noise[0] if reuse_fake else noise[1]
    if order == "d_then_g":  # D first on G0; G then trained through the updated D
        want_fake = critic_on(backend, spec, g0, d0, noise[0])
        want_g = ls_g_loss(critic_on(backend, spec, g0, d1, g_noise))
    elif order == "g_then_d":  # G first through D0; D then sees the updated G unless it reuses G's batch
        want_fake = critic_on(backend, spec, g0 if reuse_fake else g1, d0, noise[0])
        want_g = ls_g_loss(critic_on(backend, spec, g0, d0, g_noise))
    else:  # both gradients at (G0, D0)
        want_fake = critic_on(backend, spec, g0, d0, noise[0])
        want_g = ls_g_loss(critic_on(backend, spec, g0, d0, g_noise))
    assert_close("d_fake", result["d_fake"], want_fake.mean(), tol.LOSS_ATOL)
    assert_close("g_loss", result["g_loss"], want_g, tol.LOSS_ATOL)
    want_real = backend.build(spec, w0).discriminate(inputs["real"][0]).mean()
    assert_close("d_real", result["d_real"], want_real, tol.LOSS_ATOL)
    # Both networks moved, each by exactly one update.
    assert not np.array_equal(g0[0], g1[0]) and not np.array_equal(d0[0], d1[0])
    assert optimizer_updates(trainer, "generator") == 1 and optimizer_updates(trainer, "discriminator") == 1


def moved(backend, spec, w0, inputs, **edit) -> dict[str, bool]:
    """Which networks end differently after one step when one slice of one input is changed."""
    base = backend.build(spec, w0)
    base.train_step(**inputs)
    (name, index), = edit.items()
    other = {k: (None if v is None else v.copy()) for k, v in inputs.items()}
    other[name][index] += 1.0
    edited = backend.build(spec, w0)
    edited.train_step(**other)
    a, b = base.get_weights(), edited.get_weights()
    return {net: not all(np.array_equal(x, y) for x, y in zip(a[net], b[net])) for net in a}


def test_update_order_dependencies_with_two_d_steps(backend):
    d_then_g = small_spec(order="d_then_g", d_steps=2)
    w0 = init_weights(d_then_g, 9)
    inputs = step_inputs(d_then_g, 10)
    # d_then_g: noise[2] feeds only G; the real data reach G through the updated D.
    assert moved(backend, d_then_g, w0, inputs, noise=2) == {"generator": True, "discriminator": False}
    assert moved(backend, d_then_g, w0, inputs, real=1) == {"generator": True, "discriminator": True}
    reuse = small_spec(order="d_then_g", d_steps=2, reuse_fake=True)
    assert moved(backend, reuse, w0, inputs, noise=2) == {"generator": False, "discriminator": False}
    # g_then_d: G moves before D sees any real data.
    g_then_d = small_spec(order="g_then_d", d_steps=2)
    assert moved(backend, g_then_d, w0, inputs, real=0) == {"generator": False, "discriminator": True}
    reuse = small_spec(order="g_then_d", d_steps=2, reuse_fake=True)
    assert moved(backend, reuse, w0, inputs, noise=2) == {"generator": False, "discriminator": False}
    trainer = backend.build(d_then_g, w0)
    trainer.train_step(**inputs)
    assert optimizer_updates(trainer, "discriminator") == 2 and optimizer_updates(trainer, "generator") == 1


def test_wasserstein_clips_every_discriminator_weight(backend):
    spec = small_spec(loss="wasserstein").replace(loss=Loss("wasserstein", clip=0.05))
    w0 = init_weights(spec, 11)  # torch_default bounds 1/sqrt(4) and 1/sqrt(8): well above the clip
    trainer = backend.build(spec, w0)
    trainer.train_step(**step_inputs(spec, 12))
    disc = trainer.get_weights()["discriminator"]
    assert all(np.abs(w).max() <= 0.05 for w in disc)
    assert all(np.isclose(np.abs(w), 0.05).any() for w in disc[0::2])  # clipping really happened (kernels)
    assert max(np.abs(w).max() for w in trainer.get_weights()["generator"]) > 0.05  # G is not clipped


# ---- K steps per call, checkpoints --------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["wgan-gp", "hinge"])
def test_train_steps_equals_repeated_train_step(backend, loss):
    """Step i of train_steps must see the i-th inputs and leave the very state of i single steps."""
    spec = small_spec(loss, order="g_then_d", d_steps=2, reuse_fake=True)
    inputs = step_inputs(spec, 13, count=4)
    one, many = backend.build(spec), backend.build(spec)
    singles = [one.train_step(**at(inputs, i)) for i in range(4)]
    stacked = many.train_steps(**inputs)
    for key in STEP_KEYS:
        assert stacked[key].shape == (4,)
        assert_close(key, stacked[key], np.float32([s[key] for s in singles]), 0.0)
    assert_weights_close(many.get_weights(), one.get_weights())
    assert len({float(v) for v in stacked["d_loss"]}) == 4  # the steps saw different inputs


@pytest.mark.parametrize("opt", [Optimizer("adam", lr=1e-2, beta1=0.5),
                                 Optimizer("adam", lr=1e-2, beta1=0.5, implementation="native"),
                                 Optimizer("rmsprop", lr=1e-3, implementation="native")])
def test_checkpoint_resume_is_exact(backend, tmp_path, opt):
    spec = small_spec(loss="nonsaturating", opt=opt)
    inputs = step_inputs(spec, 18, count=6)
    straight = backend.build(spec, seed=17)
    straight.train_steps(**inputs)
    interrupted = backend.build(spec, seed=17)
    interrupted.train_steps(**at(inputs, slice(0, 3)))
    path = tmp_path / "checkpoint.npz"
    interrupted.save(path)
    resumed = backend.build(spec, seed=99)  # a different start: everything must come from the checkpoint
    resumed.load(path)
    resumed.train_steps(**at(inputs, slice(3, 6)))
    assert_weights_close(resumed.get_weights(), straight.get_weights())
    with np.load(path) as data:
        keys = set(data.files)
        assert int(data["opt/generator/t"]) == 3 and data["opt/generator/t"].dtype == np.int64
        assert data["opt/generator/v/0"].shape == (LATENT, HIDDEN)
    assert {"spec", "generator/0", "discriminator/3", "opt/discriminator/v/0"} <= keys
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # no temporary left behind


def test_checkpoint_of_another_architecture_is_refused(backend, tmp_path):
    path = tmp_path / "checkpoint.npz"
    backend.build(small_spec()).save(path)
    wider = small_spec().replace(generator=MLP((LATENT, HIDDEN + 1, DATA)))
    with pytest.raises(ValueError, match="generator"):
        backend.build(wider).load(path)


# ---- devices and bad input ---------------------------------------------------------------------------
def test_cuda_without_gpu_raises(backend):
    if backend.module.device_name("auto") != "cpu":
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        backend.module.build(small_spec(), init_weights(small_spec(), 0), "cuda")


def test_bad_mode_and_shapes_raise(backend):
    spec = small_spec()
    with pytest.raises(ValueError, match="mode"):
        backend.build(spec, mode="jit")
    trainer = backend.build(spec)
    inputs = step_inputs(spec, 0)
    with pytest.raises(ValueError, match="noise has shape"):
        trainer.train_step(inputs["real"], inputs["noise"][:1])
    with pytest.raises(ValueError, match="wgan-gp needs gp_eps"):
        backend.build(small_spec("wgan-gp")).train_step(inputs["real"], inputs["noise"])
