"""common/tasks.py: every seed task has the seed's values and a valid spec, loads its real data, and
configure() applies overrides and loss defaults, rejecting bad values."""
import dataclasses

import numpy as np
import pytest
from PIL import Image

from common import data, metrics, tasks
from common.data import DataError
from common.init import init_weights
from common.spec import (GAN, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Loss,
                         Maxout, Optimizer, Reshape, Updates)
from common.stream import Stream

NAMES = ["parabola", "gmm2", "ring8", "grid25", "mnist", "mnist-small", "faces", "dcgan-faces", "dcgan-mnist",
         "ring8-pacgan", "grid25-pacgan"]
MLP_TASKS = NAMES[:7]


def test_registry_lists_every_task_in_order():
    assert list(tasks.TASKS) == NAMES
    rows = tasks.describe_tasks()
    assert [row["name"] for row in rows] == NAMES
    for row in rows:
        assert set(row) == {"name", "seed", "data", "sizes", "loss", "batch", "steps"}
    assert rows[0]["steps"] == 10_000 and rows[4]["steps"] == "30 epochs"
    by_name = {row["name"]: row for row in rows}
    # PacGAN's discriminator is maxout: each Dense(1000) is pooled to 200 units, which --list must say
    assert by_name["ring8-pacgan"]["sizes"].endswith(
        "D 2 -> 1000 (maxout 5) -> 200 -> 1000 (maxout 5) -> 200 -> 1000 (maxout 5) -> 200 -> 1")
    with pytest.raises(ValueError, match="task 'cifar' is invalid; allowed: parabola, gmm2"):
        tasks.get_task("cifar")


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_is_valid_and_round_trips(name):
    task = tasks.get_task(name)
    assert GAN.from_dict(task.spec.to_dict()) == task.spec
    assert task.spec.noise == "normal"
    assert (task.steps is None) != (task.epochs is None)
    weights = init_weights(task.spec, seed=0)
    if name in MLP_TASKS:
        assert task.spec.init == "torch_default"
        assert weights["generator"][-2].shape == (task.spec.generator.sizes[-2], task.spec.data_dim)
    assert sum(w.size for w in weights["generator"] + weights["discriminator"]) == task.spec.parameter_count
    assert task.spec.generator_network.output_shape in (task.spec.data_shape, (task.spec.data_dim,))


def test_dcgan_faces_is_pytorchs_example():
    """Every value against examples/dcgan/main.py (the task docstring cites the lines)."""
    task = tasks.get_task("dcgan-faces")
    spec = task.spec
    assert (spec.latent_dim, spec.batch_size, spec.data_shape, task.epochs) == (100, 64, (3, 64, 64), 25)
    assert task.needs_data_dir and task.data == "faces" and task.family == "faces"
    assert spec.init == "dcgan" and spec.loss == Loss("nonsaturating")
    assert spec.updates == Updates("d_then_g", d_steps=1, reuse_fake=True)
    assert spec.d_optimizer == spec.g_optimizer == Optimizer("adam", lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8)
    g = [layer for layer in spec.generator.layers if isinstance(layer, ConvTranspose2D)]
    assert [(c.filters, c.kernel, c.stride, c.padding, c.bias) for c in g] == \
        [(512, (4, 4), (1, 1), (0, 0), False)] + [(f, (4, 4), (2, 2), (1, 1), False) for f in (256, 128, 64, 3)]
    d = [layer for layer in spec.discriminator.layers if isinstance(layer, Conv2D)]
    assert [(c.filters, c.stride, c.padding, c.bias) for c in d] == \
        [(f, (2, 2), (1, 1), False) for f in (64, 128, 256, 512)] + [(1, (1, 1), (0, 0), False)]
    norms = [layer for net in (spec.generator, spec.discriminator) for layer in net.layers if isinstance(layer, BatchNorm)]
    assert len(norms) == 7 and set(norms) == {BatchNorm(momentum=0.1, eps=1e-5, affine=True, running_variance="unbiased")}
    assert [i for i, layer in enumerate(spec.discriminator.layers) if isinstance(layer, BatchNorm)] == [3, 6, 9]
    assert spec.discriminator.layers[1] == Activation("leaky_relu", 0.2)
    assert spec.generator_network.output_shape == (3, 64, 64) and spec.discriminator_network.output_shape == (1, 1, 1)


def test_dcgan_mnist_is_tensorflows_tutorial():
    """Every value against dcgan.ipynb and the Keras defaults it relies on (the task docstring cites them)."""
    task = tasks.get_task("dcgan-mnist")
    spec = task.spec
    assert (spec.latent_dim, spec.batch_size, spec.data_shape, task.epochs) == (100, 256, (1, 28, 28), 50)
    assert task.data == "mnist" and task.family == "digits" and task.quick_batch_size < spec.batch_size
    assert spec.init == "glorot_uniform" and spec.updates == Updates("simultaneous", d_steps=1, reuse_fake=True)
    # Keras' Adam: epsilon on the raw sqrt(v) (tests/test_backend_tf.py checks it against keras.optimizers.Adam)
    assert spec.d_optimizer == spec.g_optimizer == Optimizer("adam", lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-7,
                                                             eps_form="keras")
    g, d = spec.generator.layers, spec.discriminator.layers
    assert g[0] == Dense(7 * 7 * 256, bias=False) and g[3] == Reshape((256, 7, 7))
    assert [(c.filters, c.kernel, c.stride, c.padding, c.bias) for c in g if isinstance(c, ConvTranspose2D)] == \
        [(128, (5, 5), (1, 1), "same", False), (64, (5, 5), (2, 2), "same", False), (1, (5, 5), (2, 2), "same", False)]
    assert {layer for layer in g if isinstance(layer, BatchNorm)} == \
        {BatchNorm(momentum=0.01, eps=1e-3, running_variance="biased")}  # Keras' momentum 0.99
    assert {layer for layer in g + d if isinstance(layer, Activation) and layer.name == "leaky_relu"} == \
        {Activation("leaky_relu", 0.3)}  # Keras' LeakyReLU() default
    assert [layer for layer in d if isinstance(layer, Dropout)] == [Dropout(0.3)] * 2
    assert [(c.filters, c.stride, c.padding, c.bias) for c in d if isinstance(c, Conv2D)] == \
        [(64, (2, 2), "same", True), (128, (2, 2), "same", True)]
    assert isinstance(d[-2], Flatten) and d[-1] == Dense(1)
    assert spec.discriminator_network.layer_info[0].pads == (1, 2, 1, 2)  # 'same', k5 s2 on 28: extra at the end
    assert spec.generator_network.layer_info[7].pads == (1, 2, 1, 2)  # the transposed one crops the same way


def test_seed_values():
    parabola = tasks.get_task("parabola").spec
    assert parabola.updates.order == "g_then_d" and parabola.updates.reuse_fake
    assert parabola.loss.name == "minimax" and parabola.batch_size == 64
    assert (parabola.g_optimizer.lr, parabola.g_optimizer.beta1, parabola.g_optimizer.beta2) == (1e-4, 0.9, 0.999)
    assert tasks.get_task("parabola").log_every == 50 and tasks.get_task("parabola").steps == 10_000
    gmm2 = tasks.get_task("gmm2").spec
    assert gmm2.updates.order == "d_then_g" and gmm2.d_optimizer.beta1 == 0.5 and gmm2.d_optimizer.beta2 == 0.999
    assert gmm2.loss.name == "nonsaturating"
    faces = tasks.get_task("faces")
    assert faces.spec.loss.d_average and faces.needs_data_dir and faces.spec.data_dim == 3 * 64 * 64
    assert faces.spec.discriminator.sizes == (12288, 1024, 512, 256, 1) and faces.spec.batch_size == 128
    mnist = tasks.get_task("mnist").spec
    assert mnist.generator.sizes == (100, 128, 256, 512, 1024, 784) and mnist.generator.output_activation == "tanh"
    assert (mnist.d_optimizer.beta1, mnist.d_optimizer.lr) == (0.5, 2e-4)
    small = tasks.get_task("mnist-small").spec
    assert small.latent_dim == 64 and small.d_optimizer.beta1 == 0.9 and small.updates.order == "d_then_g"


@pytest.mark.parametrize("name", ["parabola", "gmm2", "ring8", "grid25"])
def test_toy_tasks_load_a_sampler_and_a_fixed_reference(name):
    task = tasks.get_task(name)
    loaded = task.load(allow_download=False)
    assert loaded.n_train is None and loaded.info.n_examples is None
    assert loaded.reference.shape == (tasks.TOY_REFERENCE_EXAMPLES, task.spec.data_dim)
    assert loaded.reference.dtype == np.float32
    np.testing.assert_array_equal(task.load().reference, loaded.reference)  # every run judged alike
    step = Stream(task.spec, loaded.source, seed=1).next()
    assert step.real.shape == (1, task.spec.batch_size, task.spec.data_dim)


def test_mnist_task_trains_on_train_and_judges_on_test(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (130, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, x_test=x_test)
    loaded = tasks.get_task("mnist").load(tmp_path, allow_download=False)
    assert loaded.n_train == 130
    np.testing.assert_allclose(loaded.reference, x_test.reshape(20, 784) / 127.5 - 1, atol=1e-6)
    real = Stream(tasks.get_task("mnist").spec, loaded.source, seed=0).next().real
    assert real.shape == (1, 64, 784) and real.min() >= -1 and real.max() <= 1
    spec, steps = tasks.configure("mnist", loaded.n_train)
    assert steps == 30 * (130 // 64)


def test_faces_task(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_SUITE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="need data_dir"):
        tasks.get_task("faces").load()
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (80, 66, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")
    loaded = tasks.get_task("faces").load(folder)
    assert loaded.n_train == 5 and loaded.reference.shape == (5, data.FACE_DIM)
    assert loaded.reference.dtype == np.float32 and -1 <= loaded.reference.min() and loaded.reference.max() <= 1


def test_configure_defaults_and_steps():
    spec, steps = tasks.configure("parabola")
    assert spec == tasks.get_task("parabola").spec and steps == 10_000
    _, steps = tasks.configure(tasks.get_task("faces"), 1000)
    assert steps == 5 * (1000 // 128)
    _, steps = tasks.configure("faces", 1000, batch_size=100, steps=7)
    assert steps == 7
    with pytest.raises(ValueError, match="n_examples"):
        tasks.configure("mnist")
    with pytest.raises(ValueError, match="batch_size=64 is invalid for 10 examples"):
        tasks.configure("mnist", 10)


def test_configure_loss_switch_applies_published_defaults():
    spec, _ = tasks.configure("gmm2", loss="wasserstein")
    assert spec.loss.name == "wasserstein" and spec.loss.clip == 0.01
    assert spec.discriminator.output_activation == "linear"
    assert spec.d_optimizer.name == spec.g_optimizer.name == "rmsprop" and spec.d_optimizer.lr == 5e-5
    assert spec.updates.d_steps == 5
    spec, _ = tasks.configure("faces", 1000, loss="wgan-gp")
    assert spec.loss.gp_weight == 10 and not spec.loss.d_average
    assert (spec.d_optimizer.name, spec.d_optimizer.lr, spec.d_optimizer.beta1, spec.d_optimizer.beta2) == \
        ("adam", 1e-4, 0.0, 0.9)
    spec, _ = tasks.configure("faces", 1000, loss="hinge")  # no published optimiser: the task's stays
    assert spec.discriminator.output_activation == "linear" and spec.loss.d_average
    assert spec.d_optimizer == tasks.get_task("faces").spec.d_optimizer and spec.updates.d_steps == 1
    spec, _ = tasks.configure("parabola", loss="nonsaturating")
    assert spec.discriminator.output_activation == "sigmoid" and spec.updates.order == "g_then_d"


def test_configure_explicit_overrides_win():
    spec, _ = tasks.configure("gmm2", loss="wasserstein", lr=1e-3, d_steps=2, optimizer_impl="native")
    assert spec.d_optimizer.lr == spec.g_optimizer.lr == 1e-3 and spec.updates.d_steps == 2
    assert spec.d_optimizer.implementation == spec.g_optimizer.implementation == "native"
    spec, _ = tasks.configure("gmm2", lr=1e-3, g_lr=5e-4)
    assert spec.d_optimizer.lr == 1e-3 and spec.g_optimizer.lr == 5e-4 and spec.d_optimizer.beta1 == 0.5
    spec, _ = tasks.configure("gmm2", d_lr=3e-4, batch_size=32)
    assert spec.d_optimizer.lr == 3e-4 and spec.g_optimizer.lr == 2e-4 and spec.batch_size == 32


@pytest.mark.parametrize("overrides, field", [
    ({"loss": "wgan"}, "loss='wgan' is invalid; allowed: minimax"),
    ({"steps": 0}, "steps=0"),
    ({"steps": 2.5}, "steps=2.5"),
    ({"batch_size": -1}, "batch_size=-1"),
    ({"lr": 0.0}, "lr=0.0"),
    ({"d_lr": float("nan")}, "d_lr=nan"),
    ({"g_lr": "fast"}, "g_lr='fast'"),
    ({"optimizer_impl": "fused"}, "optimizer_impl='fused' is invalid; allowed: spec, native"),
    ({"d_steps": True}, "d_steps=True"),
])
def test_configure_rejects_bad_values(overrides, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(").replace(")", r"\)")):
        tasks.configure("gmm2", **overrides)


def test_a_task_carries_every_fact_the_harness_needs():
    assert tasks.QUICK_SUITE == ["parabola", "gmm2", "ring8", "grid25", "mnist", "dcgan-mnist"]  # in this order
    assert {name: task.eval_samples for name, task in tasks.TASKS.items()} == {
        "parabola": 2000, "gmm2": 2000, "ring8": 2000, "grid25": 2000, "mnist": 1000, "mnist-small": 1000,
        "faces": 512, "dcgan-faces": 512, "dcgan-mnist": 1000, "ring8-pacgan": 2500, "grid25-pacgan": 2500}
    assert {task.family for task in tasks.TASKS.values()} | {"generic"} == set(metrics.FAMILIES)  # generic: spec files'
    assert [name for name, task in tasks.TASKS.items() if task.log_gauges] == ["parabola"]
    with pytest.raises(ValueError, match="family 'cifar' is invalid"):
        dataclasses.replace(tasks.get_task("gmm2"), family="cifar")


def test_a_task_scores_its_samples_with_its_own_family():
    rng = np.random.default_rng(3)
    ring8 = tasks.get_task("ring8")
    ring_data = ring8.load()
    real = ring_data.source.next_batch(rng, 2000)
    scores = ring8.score(real, ring_data, history={})
    assert scores["modes_covered"] == 8 and scores["high_quality_pct"] > 99  # the sampler's own 8 modes
    one_mode = np.repeat(ring_data.source.means[:1], 2000, axis=0).astype(np.float32)
    assert ring8.score(one_mode, ring_data, history={})["modes_covered"] == 1
    parabola = tasks.get_task("parabola")
    curves = parabola.load().source.next_batch(rng, 500)
    history = {"d_real": [0.5] * 10, "d_loss": [1.0] * 10}
    scores = parabola.score(curves, parabola.load(), history)
    assert scores["in_band"] == 1.0 and scores["d_real_gap"] == 0.0 and scores["d_score"] == -1.0


def test_pacgan_tasks_are_the_papers_setup():
    """Every value against the PacGAN code (fjxmlzn/PacGAN synthetic_data_experiments; the docstring cites lines)."""
    for name, means_radius, std in (("grid25-pacgan", None, 0.05), ("ring8-pacgan", 1.0, 0.01)):
        task = tasks.get_task(name)
        spec = task.spec
        assert (spec.latent_dim, spec.noise, spec.batch_size, spec.pack, task.steps) == (2, "normal", 100, 1, 400_000)
        assert spec.init == "normal_0.02" and spec.loss == Loss("nonsaturating")
        assert spec.updates == Updates("simultaneous", d_steps=1, reuse_fake=True)
        assert spec.d_optimizer == spec.g_optimizer == Optimizer("adam", lr=1e-4, beta1=0.8, beta2=0.999, eps=1e-8)
        g = spec.generator.layers
        assert [layer for layer in g if isinstance(layer, Dense)] == [Dense(400, bias=False)] * 4 + [Dense(2)]
        assert [layer for layer in g if isinstance(layer, BatchNorm)] == \
            [BatchNorm(momentum=0.05, eps=1e-4, running_variance="biased")] * 4
        assert g[1:3] == (BatchNorm(momentum=0.05, eps=1e-4, running_variance="biased"), Activation("relu"))
        assert spec.discriminator.layers == (Dense(1000), Maxout(5)) * 3 + (Dense(1),)
        assert task.eval_samples == 2500 and task.family == "mixture"
        source = task.load().source
        assert np.all(source.stds == std)
        if means_radius is None:
            assert sorted(set(source.means.ravel())) == [-4, -2, 0, 2, 4] and len(source.means) == 25
        else:
            np.testing.assert_allclose(np.hypot(*source.means.T), means_radius)
            assert len(source.means) == 8
        assert [(p.label, p.pack) for p in task.published] == [("GAN", 1), ("PacGAN2", 2), ("PacGAN3", 3),
                                                                ("PacGAN4", 4)]
        assert all(p.trials == 10 and p.spread == "standard error" for p in task.published)
    grid = tasks.get_task("grid25-pacgan").published
    assert grid[0].metrics[:2] == (("modes_covered", 17.3, 0.8), ("high_quality_pct", 94.8, 0.7))
    assert [p.metrics[0][1] for p in grid[1:]] == [23.8, 24.6, 24.8]
    assert grid[0].std("modes_covered") == pytest.approx(0.8 * 10 ** 0.5)  # a standard error times sqrt(trials)
    ring = tasks.get_task("ring8-pacgan").published
    assert ring[0].metrics[:2] == (("modes_covered", 6.3, 0.5), ("high_quality_pct", 98.2, 0.2))


def test_configure_pack_widens_only_the_discriminators_input():
    spec, steps = tasks.configure("grid25-pacgan", pack=4, steps=10)
    assert spec.pack == 4 and spec.discriminator.input_shape == (8,) and steps == 10
    assert spec.discriminator.layers == tasks.get_task("grid25-pacgan").spec.discriminator.layers
    assert spec.examples_per_batch == 400 and spec.generator == tasks.get_task("grid25-pacgan").spec.generator
    assert GAN.from_dict(spec.to_dict()) == spec
    weights = init_weights(spec, 0)
    assert weights["discriminator"][0].shape == (8, 1000)
    assert np.all(weights["discriminator"][1] == 0) and abs(weights["discriminator"][0].std() - 0.02) < 0.002
    mlp, _ = tasks.configure("gmm2", pack=3)  # an MLP discriminator: its first size
    assert mlp.discriminator.sizes == (6, 128, 128, 1)
    with pytest.raises(ValueError, match="pack=0 is invalid"):
        tasks.configure("gmm2", pack=0)
    with pytest.raises(ValueError, match="GAN.pack=2 is invalid; allowed: 1 for a discriminator on images"):
        tasks.configure("dcgan-mnist", pack=2)
    spec, steps = tasks.configure("mnist-small", 1000, pack=2)  # epochs count examples: batch 100 packs of 2
    assert steps == 30 * 5


def test_unpacked_specs_keep_their_dict():
    """pack 1 adds nothing to a spec's dict: records and checkpoints written before packing read as before."""
    spec = tasks.get_task("gmm2").spec
    assert "pack" not in spec.to_dict() and GAN.from_dict(spec.to_dict()).pack == 1
    assert spec.with_pack(2).to_dict()["pack"] == 2


def test_eps_form_is_an_adam_setting_and_the_default_leaves_records_as_they_were():
    with pytest.raises(ValueError, match="eps_form"):
        Optimizer("rmsprop", eps_form="keras")
    with pytest.raises(ValueError, match="eps_form"):
        Optimizer("adam", eps_form="tf")
    parabola, mnist = tasks.get_task("parabola").spec, tasks.get_task("dcgan-mnist").spec
    assert "eps_form" not in parabola.to_dict()["d_optimizer"]
    assert mnist.to_dict()["d_optimizer"]["eps_form"] == "keras"
    assert GAN.from_dict(mnist.to_dict()) == mnist and GAN.from_dict(parabola.to_dict()) == parabola
    adam = mnist.d_optimizer
    assert adam.eps_at(1) == pytest.approx(1e-7 / (1 - 0.999) ** 0.5) and adam.eps_at(10 ** 6) == pytest.approx(1e-7)


def test_a_learning_rate_must_fit_float32_through_the_update():
    """An lr whose update scalar overflows float32 ended in the optimiser's RuntimeError; a subnormal one lost its
    precision silently: both are refused when the spec is made, naming the range."""
    for lr in (1e39, 1e-45, 3e38):  # 3e38 fits float32, but Adam's first step multiplies by lr / (1 - beta1)
        with pytest.raises(ValueError, match=r"Optimizer.lr=.*\(float32's normal range"):
            Optimizer("adam", lr=lr)
    assert Optimizer("rmsprop", lr=3e38).lr == 3e38 and Optimizer("adam", lr=3e37, beta1=0.5).lr == 3e37
