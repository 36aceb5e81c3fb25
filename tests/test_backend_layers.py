"""The layer-list part of the backend contract, over every backend, against the numpy float64 reference
(tests/reference.py): each layer kind's forward pass in training and evaluation mode (padding splits for odd and
even sizes, transposed-convolution crops, NCHW flatten order), BatchNorm statistics in both conventions,
dropout masks, the neutral kernel layouts, the whole step's pass rules (which pass moves which statistics, which
mask goes where) and checkpoints with statistics. Tiny shapes: each test takes well under a second.
"""
from __future__ import annotations

import numpy as np
import pytest

from common import rounding
from common import tolerances as tol
from common.backend import STEP_KEYS
from common.init import init_network, init_statistics, init_weights
from common.spec import (GAN, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Loss,
                         Maxout, Network, Reshape, Updates)
from common.stream import Stream
from tests import reference
from tests.test_backend_contract import (LINEAR_ADAM, Backend, assert_close, assert_weights_close,  # noqa: F401
                                        assert_within_bound)
from tests.test_backend_contract import backend  # noqa: F401  (the fixture)

BATCH = 6
# (name, network): every layer kind, and the shapes where the frameworks' conventions part.
CASES = [
    ("conv-same-odd", Network((2, 7, 6), (Conv2D(3, 5, 2, "same"),))),  # pads (1, 2) rows, (1, 2) columns
    ("conv-padding-1", Network((2, 8, 8), (Conv2D(3, 4, 2, 1, bias=False),))),
    ("conv-same-rect", Network((2, 9, 8), (Conv2D(3, (3, 2), (2, 1), "same"),))),
    ("convT-same-k5s2", Network((3, 4, 5), (ConvTranspose2D(2, 5, 2, "same"),))),  # crops (1, 2): PyTorch can't
    ("convT-same-k4s2", Network((3, 4, 4), (ConvTranspose2D(2, 4, 2, "same", bias=False),))),
    ("convT-padding-1", Network((3, 4, 4), (ConvTranspose2D(2, 4, 2, 1),))),
    ("convT-output-padding", Network((3, 4, 4), (ConvTranspose2D(2, 3, 2, 1, output_padding=1),))),
    ("convT-1x1-input", Network((3, 1, 1), (ConvTranspose2D(2, 4, 1, 0),))),
    ("convT-kernel<stride", Network((3, 3, 3), (ConvTranspose2D(2, 1, 2, 0),))),
    ("flatten-order", Network((2, 3, 4), (Conv2D(3, 1), Flatten(), Dense(5)))),
    ("reshape-order", Network((24,), (Dense(24), Reshape((2, 3, 4)), Conv2D(2, 3, 1, "same"), Flatten()))),
    ("batchnorm2d", Network((2, 4, 4), (Conv2D(3, 3, 1, 1), BatchNorm(momentum=0.3), Activation("leaky_relu", 0.3)))),
    ("batchnorm1d-biased", Network((5,), (Dense(6, bias=False),
                                          BatchNorm(momentum=0.2, eps=1e-3, running_variance="biased")))),
    ("batchnorm-no-affine", Network((5,), (Dense(6), BatchNorm(affine=False), Activation("relu")))),
    ("dropout", Network((2, 4, 4), (Conv2D(3, 3, 2, "same"), Dropout(0.3), Flatten(), Dropout(0.5), Dense(1)))),
    ("maxout", Network((4,), (Dense(12), Maxout(3), Dense(6), Maxout(2), Dense(1)))),  # PacGAN's D layer
]


def net_call(backend, model, x, training, masks=None, update_stats=True):
    if backend.name == "torch":
        import torch
        with torch.no_grad():
            return model(torch.from_numpy(x), training, None if masks is None else torch.from_numpy(masks),
                         update_stats).numpy()
    if backend.name == "jax":
        import jax.numpy as jnp
        return np.asarray(model(jnp.asarray(x), training, None if masks is None else jnp.asarray(masks), update_stats))
    import tensorflow as tf
    return model(tf.constant(x), training=training, masks=None if masks is None else tf.constant(masks),
                 update_stats=update_stats).numpy()


def make_net(backend, net, weights):
    models = backend.models
    model = {"torch": lambda: models.Net(net), "tf": lambda: models.Net(net, name="net"),
             "jax": lambda: models.Model(net)}[backend.name]()
    models.load_weights(model, weights)
    return model


def case_inputs(net, seed):
    rng = np.random.default_rng(seed)
    weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in init_network(net, "dcgan", rng)]
    x = rng.standard_normal((BATCH, int(np.prod(net.input_shape)))).astype(np.float32)
    masks = None
    if net.dropout_units:
        masks = ((rng.random((BATCH, net.dropout_units)) >= 0.4) * np.float32(2.0)).astype(np.float32)
    return weights, x, masks


@pytest.mark.parametrize("name, net", CASES, ids=[name for name, _ in CASES])
def test_layer_forward_equals_reference(backend, name, net):
    weights, x, masks = case_inputs(net, 1)
    stats = [np.full(s, 0.5 if j % 2 == 0 else 2.0, np.float32) for j, (_, s) in enumerate(net.statistics())]
    model = make_net(backend, net, weights)
    backend.models.load_statistics(model, stats)
    want_eval, _ = reference.network_forward(net, weights, x, False, None, stats)
    _, spread, _, _ = rounding.network_bound(net, weights, x, False, None, stats)
    assert_within_bound(f"{name} evaluation", net_call(backend, model, x, False), want_eval, rounding.reference_bound(spread))
    assert_weights_unchanged = backend.models.export_statistics(model)
    assert all(np.array_equal(a, b) for a, b in zip(assert_weights_unchanged, stats))  # evaluation moves nothing
    want_train, want_stats = reference.network_forward(net, weights, x, True, masks, stats)
    _, spread, _, stats_spread = rounding.network_bound(net, weights, x, True, masks, stats)
    got = net_call(backend, model, x, True, masks)
    assert got.shape == (BATCH, int(np.prod(net.output_shape)))
    assert_within_bound(f"{name} training", got, want_train, rounding.reference_bound(spread))
    for i, (a, b, c) in enumerate(zip(backend.models.export_statistics(model), want_stats, stats_spread)):
        assert_within_bound(f"{name} statistic {i}", a, b, rounding.reference_bound(c))
    if net.statistics():
        assert not np.allclose(want_stats[1], stats[1])  # the update was visible at all


def test_recomputed_pass_leaves_statistics_alone(backend):
    _, net = CASES[11]  # batchnorm2d
    weights, x, _ = case_inputs(net, 2)
    model = make_net(backend, net, weights)
    before = backend.models.export_statistics(model)
    first = net_call(backend, model, x, True, update_stats=False)
    assert all(np.array_equal(a, b) for a, b in zip(backend.models.export_statistics(model), before))
    second = net_call(backend, model, x, True)  # the same values, now moving the statistics
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(backend.models.export_statistics(model)[0], before[0])


def test_flatten_order_is_channels_first(backend):
    """A Dense after Flatten sees C, H, W order: a kernel that reads one input unit picks the neutral one."""
    net = Network((2, 3, 4), (Flatten(), Dense(1, bias=False)))
    x = np.arange(24, dtype=np.float32)[None]  # flat C, H, W
    for unit in (0, 5, 13, 23):
        kernel = np.zeros((24, 1), np.float32)
        kernel[unit] = 1.0
        assert net_call(backend, make_net(backend, net, [kernel]), x, False)[0, 0] == unit


def test_neutral_kernel_layouts_and_round_trip(backend):
    net = Network((3, 4, 4), (Conv2D(5, (2, 3), 1, 0), ConvTranspose2D(6, (3, 2), 2, 0), Flatten(), Dense(4),
                              BatchNorm()))
    shapes = [shape for _, _, shape in net.parameters()]
    assert shapes == [(2, 3, 3, 5), (5,), (3, 2, 5, 6), (6,), (6 * 7 * 4, 4), (4,), (4,), (4,)]
    weights, _, _ = case_inputs(net, 3)
    model = make_net(backend, net, weights)
    assert all(np.array_equal(a, b) for a, b in zip(backend.models.export_weights(model), weights))
    native = [tuple(p.shape) for p in {"torch": lambda: model.parameters(), "tf": lambda: model.trainable_variables,
                                        "jax": lambda: model.params}[backend.name]()]
    if backend.name == "torch":  # Conv2d (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw), Linear (out, in)
        assert native[0] == (5, 3, 2, 3) and native[2] == (5, 6, 3, 2) and native[4] == (4, 168)
    else:  # Keras and Flax (transpose_kernel=True): Conv (kh, kw, in, out), ConvTranspose (kh, kw, out, in), Dense (in, out)
        assert native[0] == (2, 3, 3, 5) and native[2] == (3, 2, 6, 5) and native[4] == (168, 4)
    with pytest.raises(ValueError, match="shape"):
        backend.models.load_weights(model, [w.T if w.ndim == 4 else w for w in weights])


# ---- whole steps: the pass rules of common/spec.py against the float64 reference --------------------------
LATENT, DATA, HIDDEN = 3, 4, 6


def bn_spec(order, d_steps, reuse_fake) -> GAN:
    """G and D with BatchNorm in both conventions and D with Dropout: every rule of a step is visible."""
    gen = Network((LATENT,), (Dense(HIDDEN), BatchNorm(momentum=0.3), Activation("tanh"), Dense(DATA)))
    disc = Network((DATA,), (Dense(HIDDEN), BatchNorm(momentum=0.4, eps=1e-3, running_variance="biased"),
                             Activation("tanh"), Dropout(0.25), Dense(1)))
    return GAN(latent_dim=LATENT, generator=gen, discriminator=disc, data_shape=(DATA,), loss=Loss("nonsaturating"),
               d_optimizer=LINEAR_ADAM, g_optimizer=LINEAR_ADAM, batch_size=BATCH,
               updates=Updates(order, d_steps, reuse_fake), init="dcgan")


class RandomSource:
    def next_batch(self, rng, batch_size):
        return rng.standard_normal((batch_size, DATA)).astype(np.float32)


SCHEDULES = [(order, d_steps, reuse) for order in ("d_then_g", "g_then_d") for d_steps in (1, 2)
             for reuse in (False, True)] + [("simultaneous", 1, False), ("simultaneous", 1, True)]


@pytest.mark.parametrize("order, d_steps, reuse_fake", SCHEDULES)
def test_schedule_with_batchnorm_and_dropout_equals_reference(backend, order, d_steps, reuse_fake):
    """Which passes move which running statistics, which mask each D pass takes: three steps against a float64
    loop written from common/spec.py's words (a pass counted twice, or a mask given to the wrong pass, moves the
    statistics or the losses by far more than the tolerance)."""
    spec = bn_spec(order, d_steps, reuse_fake)
    weights = init_weights(spec, 31)
    trainer = backend.build(spec, weights)
    ref = reference.ReferenceBatchNormGAN(spec, weights, init_statistics(spec))
    stream = Stream(spec, RandomSource(), seed=32)
    for step in range(3):
        inputs = stream.next()
        assert inputs.dropout.shape == (spec.dropout_passes, BATCH, HIDDEN)
        got = trainer.train_step(**inputs.as_kwargs())
        want = ref.step(inputs.real, inputs.noise, inputs.dropout)
        for key in STEP_KEYS:
            assert_close(f"step {step} {key}", got[key], want[key], tol.SCHEDULE_REFERENCE_ATOL)
    assert_weights_close(trainer.get_weights(), ref.weights(), tol.SCHEDULE_REFERENCE_ATOL)
    assert_weights_close(trainer.get_statistics(), ref.statistics(), tol.SCHEDULE_REFERENCE_ATOL)


def test_dropout_masks_are_required_and_checked(backend):
    spec = bn_spec("d_then_g", 1, False)
    trainer = backend.build(spec, seed=0)
    inputs = Stream(spec, RandomSource(), seed=0).next()
    with pytest.raises(ValueError, match="dropout masks"):
        trainer.train_step(inputs.real, inputs.noise)
    with pytest.raises(ValueError, match="dropout has shape"):
        trainer.train_step(inputs.real, inputs.noise, dropout=inputs.dropout[:1])


def test_checkpoint_with_statistics_resumes_exactly(backend, tmp_path):
    spec = bn_spec("d_then_g", 1, True)
    stream = Stream(spec, RandomSource(), seed=40)
    steps = [stream.next().as_kwargs() for _ in range(4)]
    straight = backend.build(spec, seed=41)
    for inputs in steps:
        straight.train_step(**inputs)
    interrupted = backend.build(spec, seed=41)
    for inputs in steps[:2]:
        interrupted.train_step(**inputs)
    interrupted.save(tmp_path / "ckpt.npz")
    resumed = backend.build(spec, seed=5)
    resumed.load(tmp_path / "ckpt.npz")
    for inputs in steps[2:]:
        resumed.train_step(**inputs)
    assert_weights_close(resumed.get_weights(), straight.get_weights())
    assert_weights_close(resumed.get_statistics(), straight.get_statistics())
    with np.load(tmp_path / "ckpt.npz") as data:
        assert data["stats/generator/1"].shape == (HIDDEN,) and "stats/discriminator/1" in data.files


def test_generate_uses_running_statistics_and_changes_nothing(backend):
    spec = bn_spec("d_then_g", 1, False)
    trainer = backend.build(spec, seed=3)
    trainer.train_step(**Stream(spec, RandomSource(), seed=4).next().as_kwargs())
    state = trainer.state()
    noise = np.random.default_rng(5).standard_normal((5, LATENT)).astype(np.float32)
    samples = trainer.generate(noise)
    one_by_one = np.concatenate([trainer.generate(noise[i:i + 1]) for i in range(5)])
    weights, stats = state_list(state, "generator/"), state_list(state, "stats/generator/")
    want, spread, _, _ = rounding.network_bound(spec.generator_network, weights, noise, False, None, stats)
    # each sample on its own noise: another batch size may take another kernel, so the pair bound
    assert_within_bound("generate one by one", samples, one_by_one, rounding.pair_bound(spread))
    assert_within_bound("generate", samples, want, rounding.reference_bound(spread))
    after = trainer.state()
    assert all(np.array_equal(after[key], state[key]) for key in state)


def state_list(state, prefix):
    values = []
    while f"{prefix}{len(values)}" in state:
        values.append(state[f"{prefix}{len(values)}"])
    return values


# ---- packing (PacGAN): D judges packs of consecutive rows ------------------------------------------------------
def pacgan_like_spec(pack: int) -> GAN:
    """The -pacgan tasks' structure in miniature: G Dense(no bias)/BatchNorm/ReLU, D Dense + Maxout, simultaneous
    updates on one fake batch, the normal_0.02 init, D judging packs of ``pack`` examples."""
    gen = Network((LATENT,), (Dense(HIDDEN, bias=False), BatchNorm(momentum=0.05, eps=1e-4, running_variance="biased"),
                              Activation("relu"), Dense(DATA)))
    disc = Network((DATA,), (Dense(3 * HIDDEN), Maxout(3), Dense(2 * HIDDEN), Maxout(2), Dense(1)))
    spec = GAN(latent_dim=LATENT, generator=gen, discriminator=disc, data_shape=(DATA,), loss=Loss("nonsaturating"),
               d_optimizer=LINEAR_ADAM, g_optimizer=LINEAR_ADAM, batch_size=BATCH,
               updates=Updates("simultaneous", 1, reuse_fake=True), init="normal_0.02")
    return spec.with_pack(pack)


@pytest.mark.parametrize("pack", [1, 3])
def test_packed_maxout_schedule_equals_reference(backend, pack):
    """Three PacGAN-shaped steps against the float64 loop: D's input is pack * data_dim wide, each batch holds
    batch * pack rows, packs are consecutive rows (a wrong grouping or a pack missed in G's update moves the
    gradients by far more than the tolerance). JAX runs its jitted step (the same schedule code, traced): these
    shapes and maxout are this test's alone, and op by op eager JAX compiles each op of them on its own (4.6 s for
    pack 1 against about 1 s a compiled step)."""
    spec = pacgan_like_spec(pack)
    assert spec.discriminator_network.input_shape == (pack * DATA,) and spec.examples_per_batch == BATCH * pack
    weights = init_weights(spec, 51)
    weights = {k: [w + np.float32(0.05) * np.random.default_rng(52).standard_normal(w.shape).astype(np.float32)
                   for w in v] for k, v in weights.items()}  # off N(0, 0.02): visible gradients
    trainer = backend.build(spec, weights, mode="compiled" if backend.name == "jax" else "eager")
    ref = reference.ReferenceBatchNormGAN(spec, weights, init_statistics(spec))
    stream = Stream(spec, RandomSource(), seed=53)
    for step in range(3):
        inputs = stream.next()
        assert inputs.real.shape == (1, BATCH * pack, DATA) and inputs.noise.shape == (2, BATCH * pack, LATENT)
        got = trainer.train_step(**inputs.as_kwargs())
        want = ref.step(inputs.real, inputs.noise, None)
        for key in STEP_KEYS:
            assert_close(f"pack {pack} step {step} {key}", got[key], want[key], tol.SCHEDULE_REFERENCE_ATOL)
    assert_weights_close(trainer.get_weights(), ref.weights(), tol.SCHEDULE_REFERENCE_ATOL)
    assert_weights_close(trainer.get_statistics(), ref.statistics(), tol.SCHEDULE_REFERENCE_ATOL)
    x = stream.next().real[0]
    want, spread = rounding.discriminate_bound(spec, ref.weights(), {"discriminator": []}, x)
    assert_within_bound("discriminate on packs", trainer.discriminate(x), want, rounding.reference_bound(spread))
    if pack > 1:  # a batch of batch_size rows is one pack short of each: refused, not reshaped to fewer packs
        with pytest.raises(ValueError, match="real has shape"):
            trainer.train_step(inputs.real[:, :BATCH], inputs.noise[:, :BATCH])
