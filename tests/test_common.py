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
