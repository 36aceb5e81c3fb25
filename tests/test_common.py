"""The neutral core: common/ imports no framework, specs validate, initial weights and the stream are exact."""
import ast
import pathlib

import numpy as np
import pytest
from scipy import stats

from common.init import init_weights
from common.spec import GAN, MLP, Loss, Optimizer, Updates
from common.stream import Stream

COMMON = pathlib.Path(__file__).resolve().parents[1] / "common"
FRAMEWORKS = {"torch", "tensorflow", "keras", "jax"}


def small_gan(**changes) -> GAN:
    spec = GAN(latent_dim=3, generator=MLP((3, 8, 4)), discriminator=MLP((4, 8, 1), output_activation="sigmoid"),
               data_shape=(4,), loss=Loss("minimax"), batch_size=5)
    return spec.replace(**changes)


def test_common_imports_no_framework():
    offenders = []
    for path in sorted(COMMON.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FRAMEWORKS]
    assert offenders == []


@pytest.mark.parametrize("make, field", [
    (lambda: MLP((3, 0, 1)), "MLP.sizes"),
    (lambda: MLP((3, 4)), None),
    (lambda: MLP((3, 4), hidden_activation="gelu"), "MLP.hidden_activation"),
    (lambda: Loss("wgan"), "Loss.name"),
    (lambda: Optimizer(lr=0.0), "Optimizer.lr"),
    (lambda: Optimizer(lr=-1e-3), "Optimizer.lr"),
    (lambda: Optimizer(beta1=1.0), "Optimizer.beta1"),
    (lambda: Optimizer(beta2=-0.1), "Optimizer.beta2"),
    (lambda: Optimizer(name="sgd"), "Optimizer.name"),
    (lambda: Updates(d_steps=0), "Updates.d_steps"),
    (lambda: Updates(order="simultaneous", d_steps=2), "Updates.d_steps"),
    (lambda: small_gan(batch_size=0), "GAN.batch_size"),
    (lambda: small_gan(latent_dim=4), "GAN.generator.sizes[0]"),
    (lambda: small_gan(loss=Loss("hinge")), "GAN.discriminator.output_activation"),
])
def test_bad_values_raise_one_clear_error(make, field):
    if field is None:
        make()  # a valid spec builds
        return
    with pytest.raises(ValueError) as err:
        make()
    message = str(err.value)
    assert field in message and "allowed" in message


def test_error_lists_allowed_values():
    with pytest.raises(ValueError, match="relu, leaky_relu, tanh, sigmoid, linear"):
        MLP((2, 2), output_activation="softmax")


def test_with_loss_switches_discriminator_output():
    spec = small_gan().with_loss(Loss("wasserstein"))
    assert spec.discriminator.output_activation == "linear"
    assert spec.with_loss(Loss("nonsaturating")).discriminator.output_activation == "sigmoid"


def test_spec_round_trips_through_dict():
    spec = small_gan(updates=Updates(order="g_then_d", reuse_fake=True))
    assert GAN.from_dict(spec.to_dict()) == spec


def test_torch_default_init_matches_pytorch_bounds():
    spec = small_gan(generator=MLP((3, 400, 4)))
    weights = init_weights(spec, seed=0)
    kernel, bias = weights["generator"][0], weights["generator"][1]
    assert kernel.shape == (3, 400) and kernel.dtype == np.float32 and bias.shape == (400,)
    bound = 1 / np.sqrt(3)
    # nn.Linear's kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), +1/sqrt(fan_in)): a KS test on 1 200 draws.
    assert stats.kstest(kernel.ravel(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    # The bias has the kernel's bound, from fan_in (3), not fan_out (400): an upper bound alone would pass both.
    assert stats.kstest(bias, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


def test_glorot_init_has_zero_bias_and_keras_limit():
    spec = small_gan(init="glorot_uniform", generator=MLP((3, 400, 4)))
    kernel, bias = init_weights(spec, seed=1)["generator"][:2]
    limit = np.sqrt(6 / (3 + 400))
    assert np.all(bias == 0) and np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


def test_init_is_seeded():
    a, b, c = (init_weights(small_gan(), s) for s in (7, 7, 8))
    assert all(np.array_equal(x, y) for x, y in zip(a["generator"], b["generator"]))
    assert not np.array_equal(a["generator"][0], c["generator"][0])


class CountingSource:
    def next_batch(self, rng, batch_size):
        return rng.random((batch_size, 4), dtype=np.float32)


def test_stream_layout_and_determinism():
    spec = small_gan(updates=Updates(d_steps=3))
    inputs = Stream(spec, CountingSource(), seed=3).next()
    assert inputs.real.shape == (3, 5, 4) and inputs.noise.shape == (4, 5, 3) and inputs.gp_eps is None
    again = Stream(spec, CountingSource(), seed=3).next()
    assert np.array_equal(inputs.real, again.real) and np.array_equal(inputs.noise, again.noise)
    other = Stream(spec, CountingSource(), seed=4).next()
    assert not np.array_equal(inputs.noise, other.noise)


def test_packed_stream_draws_batch_times_pack_rows_and_pack_one_draws_as_before():
    """pack m: real and noise rows are batch * m (m examples per D example), GP coefficients one per pack; pack 1
    draws exactly what an unpacked spec draws, and the first rows of a packed draw are the unpacked draw's
    (the same child streams, more of them)."""
    plain = small_gan().with_loss(Loss("wgan-gp"))
    packed = plain.with_pack(3)
    assert packed.discriminator.sizes == (12, 8, 1) and packed.d_input_dim == 12 and packed.examples_per_batch == 15
    a, b = Stream(plain, CountingSource(), seed=9).next(), Stream(packed, CountingSource(), seed=9).next()
    assert b.real.shape == (1, 15, 4) and b.noise.shape == (2, 15, 3) and b.gp_eps.shape == (1, 5)
    assert np.array_equal(a.gp_eps, b.gp_eps) and np.array_equal(a.real, b.real[:, :5])
    one = Stream(plain.with_pack(1), CountingSource(), seed=9).next()
    assert all(np.array_equal(x, y) for x, y in zip((a.real, a.noise, a.gp_eps), (one.real, one.noise, one.gp_eps)))


def test_maxout_layer_shapes_and_flops():
    net = Network((6,), (Dense(10), Maxout(5), Dense(1)))
    assert [info.out_shape for info in net.layer_info] == [(10,), (2,), (1,)]
    assert net.parameter_count == 6 * 10 + 10 + 2 + 1
    assert Network.from_dict(net.to_dict()) == net


def test_gp_coefficients_are_one_per_example_and_leave_the_rest_alone():
    gp = small_gan().with_loss(Loss("wgan-gp"))
    plain = small_gan().with_loss(Loss("wasserstein"))
    a, b = Stream(gp, CountingSource(), 0).next(), Stream(plain, CountingSource(), 0).next()
    assert a.gp_eps.shape == (1, 5) and np.all((a.gp_eps >= 0) & (a.gp_eps < 1))
    # Switching loss adds coefficients without changing the data or the noise.
    assert np.array_equal(a.real, b.real) and np.array_equal(a.noise, b.noise)


# Spec changes that must leave the data and the noise alone, bit for bit (the seed, batch size, shapes,
# d_steps and the noise kind are what may change them).
SAME_DATA_AND_NOISE = {
    **{f"loss={name}": lambda spec, name=name: spec.with_loss(Loss(name))
       for name in ("nonsaturating", "wasserstein", "wgan-gp", "hinge", "least-squares")},
    "d_average": lambda spec: spec.with_loss(Loss("minimax", d_average=True)),
    "g_then_d": lambda spec: spec.replace(updates=Updates("g_then_d", d_steps=spec.updates.d_steps)),
    "reuse_fake": lambda spec: spec.replace(updates=Updates(d_steps=spec.updates.d_steps, reuse_fake=True)),
    "optimizer settings": lambda spec: spec.replace(d_optimizer=Optimizer("rmsprop", lr=5e-5, alpha=0.9),
                                                    g_optimizer=Optimizer(lr=1e-3, beta1=0.5, eps=1e-7)),
    "native optimizers": lambda spec: spec.replace(d_optimizer=Optimizer(implementation="native"),
                                                   g_optimizer=Optimizer("rmsprop", implementation="native")),
}


def draw(spec, seed, steps=3):
    stream = Stream(spec, CountingSource(), seed)
    return [stream.next() for _ in range(steps)]


@pytest.mark.parametrize("d_steps", [1, 2])
@pytest.mark.parametrize("change", SAME_DATA_AND_NOISE)
def test_data_and_noise_do_not_depend_on_loss_order_or_optimizer(change, d_steps):
    base = small_gan(updates=Updates(d_steps=d_steps))
    changed = SAME_DATA_AND_NOISE[change](base)
    assert changed != base
    # Several steps: a coefficient drawn from the data or noise generator would shift the steps after it.
    for a, b in zip(draw(base, 11), draw(changed, 11)):
        assert a.real.tobytes() == b.real.tobytes() and a.noise.tobytes() == b.noise.tobytes()


def test_each_stream_is_its_own_child_of_the_seed():
    """Real batches, noise and GP coefficients are the three children of SeedSequence(seed), in that order:
    each drawn from its own generator alone, so the noise size cannot move the data nor the data the noise."""
    spec = small_gan(updates=Updates(d_steps=2)).with_loss(Loss("wgan-gp"))
    data_seq, noise_seq, eps_seq = np.random.SeedSequence(4).spawn(3)
    data_rng, noise_rng, eps_rng = (np.random.default_rng(s) for s in (data_seq, noise_seq, eps_seq))
    source, batch = CountingSource(), spec.batch_size
    for got in draw(spec, 4):
        want_real = np.stack([source.next_batch(data_rng, batch) for _ in range(2)])
        assert np.array_equal(got.real, want_real)
        assert np.array_equal(got.noise, noise_rng.standard_normal((3, batch, spec.latent_dim), dtype=np.float32))
        assert np.array_equal(got.gp_eps, eps_rng.random((2, batch), dtype=np.float32))
    wider = spec.replace(latent_dim=7, generator=MLP((7,) + spec.generator.sizes[1:]))
    for a, b in zip(draw(spec, 4), draw(wider, 4)):  # more noise per step, the same real batches
        assert np.array_equal(a.real, b.real)


def test_simultaneous_order_draws_the_same_data_and_noise():
    base = small_gan()
    for a, b in zip(draw(base, 12), draw(base.replace(updates=Updates("simultaneous")), 12)):
        assert a.real.tobytes() == b.real.tobytes() and a.noise.tobytes() == b.noise.tobytes()


def test_different_seeds_give_different_batches_noise_and_coefficients():
    spec = small_gan(updates=Updates(d_steps=2)).with_loss(Loss("wgan-gp"))
    a, b = draw(spec, 5, steps=1)[0], draw(spec, 6, steps=1)[0]
    assert not np.array_equal(a.real, b.real)
    assert not np.array_equal(a.noise, b.noise)
    assert not np.array_equal(a.gp_eps, b.gp_eps)


# ---- the layer list ------------------------------------------------------------------------------------------
from common.flops import forward_flops, train_step_flops  # noqa: E402
from common.init import init_mlp, init_network  # noqa: E402
from common.spec import (Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Maxout,  # noqa: E402
                         Network, Reshape, dropout_pass)


@pytest.mark.parametrize("make, field", [
    (lambda: Dense(0), "Dense.units"),
    (lambda: Conv2D(4, 0), "Conv2D.kernel"),
    (lambda: Conv2D(4, 3, padding="full"), "Conv2D.padding"),
    (lambda: Conv2D(4, 3, padding=-1), "Conv2D.padding"),
    (lambda: ConvTranspose2D(4, 3, 2, 1, output_padding=2), "ConvTranspose2D.output_padding"),
    (lambda: ConvTranspose2D(4, 3, 2, "same", output_padding=1), "ConvTranspose2D.output_padding"),
    (lambda: BatchNorm(momentum=1.5), "BatchNorm.momentum"),
    (lambda: BatchNorm(running_variance="sample"), "BatchNorm.running_variance"),
    (lambda: Dropout(1.0), "Dropout.rate"),
    (lambda: Activation("gelu"), "Activation.name"),
    (lambda: Network((3, 8, 8), (Dense(4),)), "Network.layers[0]"),  # Dense on an image: Flatten first
    (lambda: Network((12,), (Conv2D(4, 3),)), "Network.layers[0]"),
    (lambda: Network((12,), (Reshape((2, 2, 2)),)), "Network.layers[0].shape"),
    (lambda: Network((1, 4, 4), (Conv2D(1, 5),)), "Network.layers[0]"),  # no output pixel left
    (lambda: Network((1, 4, 4), (ConvTranspose2D(1, 1, 2, "same"),)), "Network.layers[0].padding"),
    (lambda: Network((1, 2), ()), "Network.input_shape"),
    (lambda: small_gan(generator=Network((3,), (Dense(4), Dropout(0.5)))), "GAN.generator.layers"),
    (lambda: small_gan(generator=Network((2,), (Dense(4),))), "GAN.generator.input_shape"),
    (lambda: small_gan(discriminator=Network((4,), (Dense(2),))), "GAN.discriminator output shape"),
    (lambda: small_gan(discriminator=Network((4,), (Dense(1), Activation("sigmoid")))), "GAN.discriminator.layers[-1]"),
    (lambda: Maxout(0), "Maxout.pieces"),
    (lambda: Network((4,), (Dense(7), Maxout(2))), "Network.layers[1]"),  # 7 features are not pairs
    (lambda: Network((1, 2, 2), (Maxout(2),)), "Network.layers[0]"),  # flat inputs only
    (lambda: small_gan(pack=0), "GAN.pack"),
    (lambda: small_gan(pack=2), "GAN.discriminator.sizes[0]"),  # D still 4 wide: with_pack widens it
    (lambda: small_gan(discriminator=Network((4,), (Dense(1),)), pack=2), "GAN.discriminator.input_shape"),
])
def test_bad_layers_raise_one_clear_error(make, field):
    with pytest.raises(ValueError) as err:
        make()
    assert field in str(err.value) and "allowed" in str(err.value)


@pytest.mark.parametrize("size, kernel, stride, want", [
    (28, 5, 2, (1, 2)), (14, 5, 2, (1, 2)), (64, 4, 2, (1, 1)), (7, 5, 1, (2, 2)), (8, 3, 2, (0, 1)), (9, 3, 2, (1, 1)),
])
def test_same_padding_puts_the_odd_pixel_at_the_end(size, kernel, stride, want):
    """TensorFlow's 'same': total = max((ceil(n / s) - 1) s + k - n, 0), top = total // 2, the rest at the bottom."""
    info = Network((1, size, size), (Conv2D(1, kernel, stride, "same"),)).layer_info[0]
    assert info.pads == want * 2 and info.out_shape[1] == -(-size // stride)


@pytest.mark.parametrize("layer, size, out, crops", [
    (ConvTranspose2D(1, 5, 2, "same"), 7, 14, (1, 2)),  # the tutorial: full 17, cropped (1, 2)
    (ConvTranspose2D(1, 5, 1, "same"), 7, 7, (2, 2)),
    (ConvTranspose2D(1, 4, 2, 1), 4, 8, (1, 1)),  # PyTorch's (in - 1) s - 2p + k + op
    (ConvTranspose2D(1, 3, 2, 1, output_padding=1), 4, 8, (1, 0)),
    (ConvTranspose2D(1, 4, 1, 0), 1, 4, (0, 0)),
])
def test_transposed_convolution_crops(layer, size, out, crops):
    info = Network((1, size, size), (layer,)).layer_info[0]
    assert info.out_shape == (1, out, out) and info.pads == crops * 2


def test_mlp_expands_to_the_same_layers_and_weights():
    mlp = MLP((3, 5, 4), "leaky_relu", "tanh", leaky_slope=0.3)
    assert mlp.network().layers == (Dense(5), Activation("leaky_relu", 0.3), Dense(4), Activation("tanh", 0.3))
    assert mlp.network(logits=True).layers[-1] == Dense(4) and mlp.parameter_count == mlp.network().parameter_count
    for scheme in ("torch_default", "glorot_uniform"):  # the layer-list draws are the MLP's, in the same order
        a = init_mlp(mlp, scheme, np.random.default_rng(0))
        b = init_network(mlp.network(), scheme, np.random.default_rng(0))
        assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b)) and len(a) == len(b)


def test_network_specs_round_trip_through_dict():
    net = Network((1, 8, 8), (Conv2D(4, 3, 2, "same"), BatchNorm(momentum=0.01, running_variance="biased"),
                              Activation("leaky_relu", 0.3), Dropout(0.3), Flatten(), Dense(1)))
    spec = small_gan(discriminator=Network((4,), (Dense(1),)), generator=Network((3,), (Dense(4),)))
    assert GAN.from_dict(spec.to_dict()) == spec
    assert Network.from_dict(net.to_dict()) == net and net.to_dict()["layers"][0]["type"] == "Conv2D"


def test_conv_init_schemes():
    """torch_default: U(+-1/sqrt(fan_in)) with ConvTranspose2d's fan_in = OUT channels x kh x kw (PyTorch reads
    size(1) of its (in, out, kh, kw) weight); dcgan: N(0, 0.02) kernels, gamma N(1, 0.02), beta 0; glorot_uniform:
    Keras' limit from (in + out) x kh x kw."""
    net = Network((40, 4, 4), (ConvTranspose2D(10, 4, 2, 1), BatchNorm(), Conv2D(30, 3, 1, 1)))
    rng = np.random.default_rng(0)
    convt, convt_bias, gamma, beta, conv, conv_bias = init_network(net, "torch_default", rng)
    assert convt.shape == (4, 4, 40, 10) and conv.shape == (3, 3, 10, 30)
    bound = 1 / np.sqrt(10 * 16)  # out channels, not in (40)
    assert stats.kstest(convt.ravel(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    assert stats.kstest(convt_bias, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-4
    assert np.all(gamma == 1) and np.all(beta == 0)
    bound = 1 / np.sqrt(10 * 9)
    assert stats.kstest(conv.ravel(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    convt, convt_bias, gamma, beta, conv, _ = init_network(net, "dcgan", rng)
    assert stats.kstest(convt.ravel(), stats.norm(0, 0.02).cdf).pvalue > 1e-3
    assert stats.kstest(gamma, stats.norm(1, 0.02).cdf).pvalue > 1e-4 and np.all(beta == 0)
    convt, convt_bias, *_ = init_network(net, "glorot_uniform", rng)
    limit = np.sqrt(6 / ((40 + 10) * 16))
    assert np.all(convt_bias == 0) and limit * 0.9 < np.abs(convt).max() <= limit


def conv_gan(loss="nonsaturating"):
    gen = Network((3,), (Dense(2 * 4 * 4), Reshape((2, 4, 4)), ConvTranspose2D(1, 4, 2, 1), Activation("tanh")))
    disc = Network((1, 8, 8), (Conv2D(2, 3, 2, "same"), Dropout(0.25), Flatten(), Dropout(0.5), Dense(1)))
    return GAN(latent_dim=3, generator=gen, discriminator=disc, data_shape=(1, 8, 8), batch_size=5,
               loss=Loss(loss), updates=Updates(d_steps=2))


class ImageSource:
    def next_batch(self, rng, batch_size):
        return rng.random((batch_size, 64), dtype=np.float32)


def test_dropout_masks_come_from_their_own_streams():
    spec = conv_gan()
    assert spec.dropout_passes == 5 and spec.discriminator_network.dropout_units == 32 + 32
    stream = Stream(spec, ImageSource(), seed=9)
    masks = stream.next().dropout
    assert masks.shape == (5, 5, 64) and masks.dtype == np.float32
    first, second = masks[..., :32], masks[..., 32:]  # the two layers' rates and scales
    assert set(np.unique(first)) == {0.0, np.float32(1 / 0.75)} and set(np.unique(second)) == {0.0, np.float32(2.0)}
    many = np.concatenate([stream.next().dropout for _ in range(20)])
    assert abs((many[..., :32] == 0).mean() - 0.25) < 0.02 and abs((many[..., 32:] == 0).mean() - 0.5) < 0.02
    # Data and noise are the very draws of a D without Dropout; wgan-gp adds the interpolates' masks from a
    # stream of their own: every other pass keeps its mask.
    plain = spec.replace(discriminator=Network((1, 8, 8), (Conv2D(2, 3, 2, "same"), Flatten(), Dense(1))))
    for a, b in zip(draw_from(spec, 3), draw_from(plain, 3)):
        assert a.real.tobytes() == b.real.tobytes() and a.noise.tobytes() == b.noise.tobytes() and b.dropout is None
    gp = conv_gan("wgan-gp").replace(updates=Updates(d_steps=2))
    assert gp.dropout_passes == 7
    for a, b in zip(draw_from(spec, 3), draw_from(gp, 3)):
        kept = [dropout_pass(gp, k, which) for k in range(2) for which in ("real", "fake")] + [dropout_pass(gp, 0, "g")]
        assert b.dropout[kept].tobytes() == a.dropout.tobytes()


def draw_from(spec, steps):
    stream = Stream(spec, ImageSource(), 4)
    return [stream.next() for _ in range(steps)]


def test_dropout_pass_layout():
    spec = conv_gan()
    assert [dropout_pass(spec, k, w) for k in (0, 1) for w in ("real", "fake")] == [0, 1, 2, 3]
    assert dropout_pass(spec, 0, "g") == 4
    simultaneous = spec.replace(updates=Updates("simultaneous", reuse_fake=True))
    assert dropout_pass(simultaneous, 0, "g") == 1  # G's loss shares D's pass on the fake batch


def test_conv_flops_by_hand():
    """Conv2D: 2 B Ho Wo Cout Cin kh kw; ConvTranspose2D: 2 B Hi Wi Cin Cout kh kw (every input pixel scatters)."""
    spec = conv_gan()
    # G: Dense 3 -> 32: 2*3*32 = 192; ConvTranspose 2x4x4 -> 1x8x8, k4: 2*16*2*1*16 = 1024
    assert forward_flops(spec.generator, 1) == 192 + 1024
    # D: Conv 1x8x8 -> 2x4x4, k3: 2*16*2*1*9 = 576; Dense 32 -> 1: 64
    assert forward_flops(spec.discriminator, 2) == 2 * (576 + 64)
    flops = train_step_flops(spec.replace(batch_size=1))
    fg, fd, f1g, f1d = 1216, 640, 192, 576
    assert flops["d_update"] == 2 * (fg + 2 * fd + 2 * (2 * fd - f1d))
    assert flops["g_update"] == fg + 2 * fd + 2 * fg - f1g
