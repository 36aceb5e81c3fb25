"""The framework-neutral GAN spec: plain frozen dataclasses, validated on construction.

Every backend builds exactly what a spec says; nothing here knows about torch or TensorFlow.
A bad value raises one ``ValueError`` that names the field and the allowed values.

Update semantics (``Updates``), which the seeds and their ports disagree on, are explicit:

* ``order="d_then_g"``: ``d_steps`` discriminator updates, then one generator update (seeds 002/003/004).
* ``order="g_then_d"``: one generator update, then ``d_steps`` discriminator updates (seed 000).
* ``order="simultaneous"``: both gradients taken at the same weights on one fake batch, then both
  applied (the TensorFlow port of seed 000's parabola toy). Needs ``d_steps == 1``.

``reuse_fake`` says whether the generator's update and the discriminator update next to it share one
noise draw (seed 000: D is trained on the very fake batch G was just trained on, produced before G's update).
Noise for a step is always drawn as ``d_steps + 1`` batches: ``noise[k]`` feeds D step ``k`` and
``noise[d_steps]`` feeds G; with ``reuse_fake`` G uses the noise of the adjacent D step instead and
``noise[d_steps]`` is drawn but unused, so the random stream is the same whatever the flag.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
NOISES = ("normal", "uniform")
# Losses whose D output is a probability (sigmoid) that the backends fuse into the loss, from logits.
SIGMOID_LOSSES = ("minimax", "nonsaturating")
# Losses whose D is a critic with a linear output.
CRITIC_LOSSES = ("wasserstein", "wgan-gp", "hinge", "least-squares")
LOSSES = SIGMOID_LOSSES + CRITIC_LOSSES
OPTIMIZERS = ("adam", "rmsprop")
# spec: the suite's own formulas, identical in both backends. native: the framework's own optimiser as users run
# it by default. native-foreach / native-fused: torch.optim's foreach=True / fused=True kernels (PyTorch only:
# Keras has one implementation of each optimiser; a backend lists what it supports in OPTIMIZER_IMPLEMENTATIONS).
IMPLEMENTATIONS = ("spec", "native", "native-foreach", "native-fused")
ORDERS = ("d_then_g", "g_then_d", "simultaneous")
INIT_SCHEMES = ("torch_default", "glorot_uniform")
# WGAN-GP's gradient norm is sqrt(sum(g^2) + GP_NORM_EPS) in both backends: finite gradient at g = 0,
# where torch's norm gives 0 and tf.norm gives NaN.
GP_NORM_EPS = 1e-12


def _fail(owner: str, name: str, value, allowed: str) -> None:
    raise ValueError(f"{owner}.{name}={value!r} is invalid; allowed: {allowed}")


def _check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        _fail(owner, name, value, ", ".join(map(str, choices)))


def _check_positive_int(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(owner, name, value, "an integer > 0")


def _check_positive_float(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        _fail(owner, name, value, "a finite number > 0")


@dataclass(frozen=True)
class MLP:
    """A fully connected net: ``sizes = (input, hidden..., output)``."""

    sizes: tuple[int, ...]
    hidden_activation: str = "relu"
    output_activation: str = "linear"
    leaky_slope: float = 0.2  # used only by leaky_relu; PyTorch's default is 0.01, Keras' layer 0.3

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(self.sizes))
        if len(self.sizes) < 2:
            _fail("MLP", "sizes", self.sizes, "at least (input, output)")
        for size in self.sizes:
            _check_positive_int("MLP", "sizes", size)
        _check_choice("MLP", "hidden_activation", self.hidden_activation, ACTIVATIONS)
        _check_choice("MLP", "output_activation", self.output_activation, ACTIVATIONS)
        if not (isinstance(self.leaky_slope, (int, float)) and 0 <= self.leaky_slope < 1):
            _fail("MLP", "leaky_slope", self.leaky_slope, "a number in [0, 1)")

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each Linear/Dense layer, in order."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))


@dataclass(frozen=True)
class Loss:
    name: str = "nonsaturating"
    clip: float = 0.01  # wasserstein: D weights clipped to [-clip, clip] after each D update (WGAN paper)
    gp_weight: float = 10.0  # wgan-gp: lambda (WGAN-GP paper)
    d_average: bool = False  # D loss = (real + fake) / 2 instead of real + fake (seed 002)

    def __post_init__(self):
        _check_choice("Loss", "name", self.name, LOSSES)
        _check_positive_float("Loss", "clip", self.clip)
        _check_positive_float("Loss", "gp_weight", self.gp_weight)

    @property
    def d_output(self) -> str:
        """The discriminator's output activation that this loss implies."""
        return "sigmoid" if self.name in SIGMOID_LOSSES else "linear"


@dataclass(frozen=True)
class Optimizer:
    """One optimiser's exact settings.

    ``implementation="spec"``: the update below, identical in both backends (PyTorch's formulas):
      Adam:    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
               w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
      RMSprop: v = alpha v + (1-alpha) g^2;  w -= lr * g / (sqrt(v) + eps)
    ``implementation="native"``: the framework's own optimiser with these numbers passed as they are
    (torch.optim.Adam/RMSprop, keras.optimizers.Adam/RMSprop): what users run; the two then differ in
    where eps goes (see the README's table). ``"native-foreach"`` / ``"native-fused"``: torch.optim's
    multi-tensor and fused kernels (PyTorch only).
    """

    name: str = "adam"
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    alpha: float = 0.99  # RMSprop's decay: PyTorch's alpha, Keras' rho
    eps: float = 1e-8
    implementation: str = "spec"

    def __post_init__(self):
        _check_choice("Optimizer", "name", self.name, OPTIMIZERS)
        _check_positive_float("Optimizer", "lr", self.lr)
        for name in ("beta1", "beta2", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                _fail("Optimizer", name, value, "a number in [0, 1)")
        _check_positive_float("Optimizer", "eps", self.eps)
        _check_choice("Optimizer", "implementation", self.implementation, IMPLEMENTATIONS)

    @property
    def kind(self) -> str:
        """Which optimiser class a backend builds: "native" (the framework's own), or the spec's "adam" / "rmsprop"."""
        return "native" if self.implementation.startswith("native") else self.name


@dataclass(frozen=True)
class Updates:
    order: str = "d_then_g"
    d_steps: int = 1
    reuse_fake: bool = False

    def __post_init__(self):
        _check_choice("Updates", "order", self.order, ORDERS)
        _check_positive_int("Updates", "d_steps", self.d_steps)
        if self.order == "simultaneous" and self.d_steps != 1:
            _fail("Updates", "d_steps", self.d_steps, "1 when order='simultaneous'")
        if not isinstance(self.reuse_fake, bool):
            _fail("Updates", "reuse_fake", self.reuse_fake, "True, False")

    @property
    def noise_batches(self) -> int:
        """How many noise batches one training step consumes (see the module docstring)."""
        return self.d_steps + 1


@dataclass(frozen=True)
class GAN:
    """A whole GAN. Data are flat vectors of ``prod(data_shape)`` floats; ``data_shape`` is for viewing."""

    latent_dim: int
    generator: MLP
    discriminator: MLP
    data_shape: tuple[int, ...]
    noise: str = "normal"
    loss: Loss = field(default_factory=Loss)
    d_optimizer: Optimizer = field(default_factory=Optimizer)
    g_optimizer: Optimizer = field(default_factory=Optimizer)
    batch_size: int = 64
    updates: Updates = field(default_factory=Updates)
    init: str = "torch_default"

    def __post_init__(self):
        object.__setattr__(self, "data_shape", tuple(self.data_shape))
        _check_positive_int("GAN", "latent_dim", self.latent_dim)
        _check_positive_int("GAN", "batch_size", self.batch_size)
        _check_choice("GAN", "noise", self.noise, NOISES)
        _check_choice("GAN", "init", self.init, INIT_SCHEMES)
        for size in self.data_shape:
            _check_positive_int("GAN", "data_shape", size)
        if self.generator.sizes[0] != self.latent_dim:
            _fail("GAN", "generator.sizes[0]", self.generator.sizes[0], f"latent_dim = {self.latent_dim}")
        if self.generator.sizes[-1] != self.data_dim:
            _fail("GAN", "generator.sizes[-1]", self.generator.sizes[-1], f"prod(data_shape) = {self.data_dim}")
        if self.discriminator.sizes[0] != self.data_dim:
            _fail("GAN", "discriminator.sizes[0]", self.discriminator.sizes[0], f"prod(data_shape) = {self.data_dim}")
        if self.discriminator.sizes[-1] != 1:
            _fail("GAN", "discriminator.sizes[-1]", self.discriminator.sizes[-1], "1")
        if self.discriminator.output_activation != self.loss.d_output:
            _fail("GAN", "discriminator.output_activation", self.discriminator.output_activation,
                  f"{self.loss.d_output!r} for loss {self.loss.name!r} (use GAN.with_loss to switch losses)")

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    def replace(self, **changes) -> "GAN":
        return dataclasses.replace(self, **changes)

    def with_loss(self, loss: Loss) -> "GAN":
        """Switch the loss, and with it the discriminator's output activation it implies."""
        disc = dataclasses.replace(self.discriminator, output_activation=loss.d_output)
        return dataclasses.replace(self, loss=loss, discriminator=disc)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GAN":
        d = dict(d)
        d["generator"] = MLP(**d["generator"])
        d["discriminator"] = MLP(**d["discriminator"])
        d["loss"] = Loss(**d["loss"])
        d["d_optimizer"] = Optimizer(**d["d_optimizer"])
        d["g_optimizer"] = Optimizer(**d["g_optimizer"])
        d["updates"] = Updates(**d["updates"])
        return cls(**d)
