"""Build G and D as torch modules from the spec's layer lists; load and export neutral weights and statistics.

PyTorch is NCHW, the neutral activation layout, so data and activations cross as they are. Weights are converted
here and only here (common/spec.py's layout comment): nn.Linear stores (out, in), the transpose of the neutral
(in, out); Conv2d stores (out, in, kh, kw) and ConvTranspose2d (in, out, kh, kw), the neutral kernels being
(kh, kw, in, out). ``to_neutral`` / ``from_neutral`` convert weights and optimiser moments by each parameter's
layout kind (``Net.layouts``).

Layers are PyTorch's own: nn.Linear, nn.Conv2d, nn.ConvTranspose2d and the activation modules are called as
modules; BatchNorm keeps nn.BatchNorm1d/2d's parameters and buffers and calls what their forward calls,
F.batch_norm, with the running buffers left out on a recomputed pass (no update) and, for a biased running
variance (Keras' convention), updated by hand; Dropout multiplies by the mask it is handed (common/stream.py).
Padding PyTorch cannot express is added or cropped around the layer (nn.ZeroPad2d; a slice).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.spec import (GAN, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Maxout,
                         Network, Reshape)

DTYPES = {"float32": torch.float32, "float64": torch.float64}  # by common.spec.GAN.dtype
NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


def activation_layer(name: str, leaky_slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        # Explicit slope: PyTorch's LeakyReLU defaults to 0.01, Keras' to 0.3.
        return nn.LeakyReLU(negative_slope=leaky_slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "linear":
        return nn.Identity()
    raise ValueError(f"activation {name!r} has no layer")


class Crop(nn.Module):
    """Crop (top, bottom, left, right) pixels off an NCHW tensor: what ConvTranspose2d's padding cannot."""

    def __init__(self, top: int, bottom: int, left: int, right: int):
        super().__init__()
        self.top, self.bottom, self.left, self.right = top, bottom, left, right

    def forward(self, x):
        return x[:, :, self.top:x.shape[2] - self.bottom, self.left:x.shape[3] - self.right]


class Norm(nn.Module):
    """A spec BatchNorm over nn.BatchNorm1d/2d's own parameters and buffers (``bn``)."""

    def __init__(self, spec: BatchNorm, channels: int, image: bool, dtype: torch.dtype = torch.float32):
        super().__init__()
        kind = nn.BatchNorm2d if image else nn.BatchNorm1d
        self.bn = kind(channels, eps=spec.eps, momentum=spec.momentum, affine=spec.affine, dtype=dtype)
        self.unbiased = spec.running_variance == "unbiased"

    def forward(self, x, training: bool, update_stats: bool):
        bn = self.bn
        if not training:
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        if update_stats and self.unbiased:  # exactly nn.BatchNorm's training forward
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, bn.momentum, bn.eps)
        out = F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)  # batch statistics only
        if update_stats:  # biased running variance (Keras 3's): the update PyTorch does not offer
            with torch.no_grad():
                dims = [0] + list(range(2, x.dim()))
                var, mean = torch.var_mean(x, dim=dims, correction=0)
                bn.running_mean.mul_(1.0 - bn.momentum).add_(mean, alpha=bn.momentum)
                bn.running_var.mul_(1.0 - bn.momentum).add_(var, alpha=bn.momentum)
        return out


class MaxoutModule(nn.Module):
    """The spec's Maxout: (B, F) -> (B, F / pieces), the max of each run of ``pieces`` consecutive features."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        return x.reshape(x.shape[0], -1, self.pieces).amax(dim=2)


def layer_modules(info, dtype: torch.dtype = torch.float32) -> list[nn.Module]:
    """The torch module(s) of one resolved spec layer (common.spec.LayerInfo), its parameters in ``dtype``."""
    layer, shape = info.layer, info.in_shape
    if isinstance(layer, Dense):
        return [nn.Linear(shape[0], layer.units, bias=layer.bias, dtype=dtype)]
    if isinstance(layer, Conv2D):
        top, bottom, left, right = info.pads
        if top == bottom and left == right:
            return [nn.Conv2d(shape[0], layer.filters, layer.kernel, layer.stride, (top, left), bias=layer.bias,
                              dtype=dtype)]
        return [nn.ZeroPad2d((left, right, top, bottom)),  # PyTorch pads symmetrically only
                nn.Conv2d(shape[0], layer.filters, layer.kernel, layer.stride, 0, bias=layer.bias, dtype=dtype)]
    if isinstance(layer, ConvTranspose2D):
        top, bottom, left, right = info.pads
        ph, pw = min(top, bottom), min(left, right)
        conv = nn.ConvTranspose2d(shape[0], layer.filters, layer.kernel, layer.stride, (ph, pw), bias=layer.bias,
                                  dtype=dtype)
        if (top, bottom, left, right) == (ph, ph, pw, pw):
            return [conv]
        return [conv, Crop(top - ph, bottom - ph, left - pw, right - pw)]
    if isinstance(layer, BatchNorm):
        return [Norm(layer, shape[0], image=len(shape) == 3, dtype=dtype)]
    if isinstance(layer, Activation):
        return [activation_layer(layer.name, layer.slope)]
    if isinstance(layer, Maxout):
        return [MaxoutModule(layer.pieces)]
    if isinstance(layer, (Dropout, Reshape, Flatten)):
        return [nn.Identity()]  # applied in Net.forward (masks, shapes); kept so modules align with spec layers
    raise ValueError(f"layer {layer!r} has no torch module")


LAYOUT = {"dense_kernel": (1, 0), "conv_kernel": (3, 2, 0, 1), "conv_transpose_kernel": (2, 3, 0, 1)}  # torch from neutral


class Net(nn.Module):
    """A spec Network: ``forward(x, training=False, masks=None, update_stats=True)`` on flat (B, prod(input_shape))
    or shaped inputs, returning (B, prod(output_shape)). ``masks``: (B, dropout_units), D's dropout masks of this
    pass; ``update_stats`` False: a recomputed training pass, BatchNorm statistics left alone."""

    def __init__(self, network: Network, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.network = network
        self.infos = network.layer_info
        # One module per spec layer (a Sequential where PyTorch needs two: a pad or a crop around a convolution).
        self.stages = nn.ModuleList(_one(layer_modules(info, dtype)) for info in self.infos)
        self.layouts = [kind for _, kind, _ in network.parameters()]
        self.dropouts = [(i, int(np.prod(shape)), shape) for i, shape in network.dropout_layers()]

    def forward(self, x, training: bool = False, masks=None, update_stats: bool = True):
        batch = x.shape[0]
        if len(self.network.input_shape) > 1:
            x = x.reshape(batch, *self.network.input_shape)
        offset, dropouts = 0, {i: (n, shape) for i, n, shape in self.dropouts}
        for index, (info, stage) in enumerate(zip(self.infos, self.stages)):
            layer = info.layer
            if isinstance(layer, BatchNorm):
                x = stage(x, training, update_stats)
            elif isinstance(layer, Dropout):
                n, shape = dropouts[index]
                if training and masks is not None:
                    x = x * masks[:, offset:offset + n].reshape(batch, *shape)
                offset += n
            elif isinstance(layer, Reshape):
                x = x.reshape(batch, *layer.shape)
            elif isinstance(layer, Flatten):
                x = x.flatten(1)  # C, H, W order: the neutral one
            else:
                x = stage(x)
        return x.reshape(batch, -1) if x.dim() != 2 else x


def _one(modules: list[nn.Module]) -> nn.Module:
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


def build_generator(spec: GAN) -> Net:
    """G applies its output activation."""
    return Net(spec.generator_network, DTYPES[spec.dtype])


def build_discriminator(spec: GAN) -> Net:
    """D outputs logits: a sigmoid output is fused into the loss (losses.py)."""
    return Net(spec.discriminator_network, DTYPES[spec.dtype])


def to_neutral(tensors, layouts) -> list[np.ndarray]:
    """Numpy copies in the neutral layout and the tensors' own dtype, each converted by its layout kind."""
    out = []
    for t, kind in zip(tensors, layouts, strict=True):
        value = t.detach().cpu().numpy()
        if kind in LAYOUT:
            value = value.transpose(np.argsort(LAYOUT[kind]))
        out.append(np.array(value))
    return out


def from_neutral(arrays, like, layouts) -> list[torch.Tensor]:
    """Tensors shaped, placed and typed like ``like`` from neutral arrays (converted by layout kind)."""
    if len(arrays) != len(like):
        raise ValueError(f"{len(arrays)} arrays given, expected {len(like)}")
    tensors = []
    for index, (value, target, kind) in enumerate(zip(arrays, like, layouts)):
        value = np.asarray(value, dtype=NUMPY[target.dtype])
        order = LAYOUT.get(kind)
        expected = tuple(target.shape) if order is None else tuple(np.array(target.shape)[np.argsort(order)])
        if tuple(value.shape) != expected:
            raise ValueError(f"array {index} has shape {np.shape(arrays[index])}, expected {expected}")
        if order is not None:
            value = value.transpose(order)
        tensors.append(torch.tensor(np.ascontiguousarray(value), dtype=target.dtype, device=target.device))
    return tensors


def load_weights(model: Net, weights: list[np.ndarray]) -> None:
    """Set a model from its neutral weight list (common/init.py's layout)."""
    params = list(model.parameters())
    with torch.no_grad():
        for param, value in zip(params, from_neutral(weights, params, model.layouts)):
            param.copy_(value)


def export_weights(model: Net) -> list[np.ndarray]:
    """The neutral weight list of a model's current weights (copies in the model's dtype)."""
    return to_neutral(model.parameters(), model.layouts)


def statistics(model: Net) -> list[torch.Tensor]:
    """Every BatchNorm's running mean and running variance buffers, in layer order."""
    return [buffer for module in model.modules() if isinstance(module, Norm)
            for buffer in (module.bn.running_mean, module.bn.running_var)]


def export_statistics(model: Net) -> list[np.ndarray]:
    return [np.array(b.detach().cpu().numpy()) for b in statistics(model)]


def load_statistics(model: Net, arrays: list[np.ndarray]) -> None:
    buffers = statistics(model)
    with torch.no_grad():
        for buffer, value in zip(buffers, from_neutral(arrays, buffers, ["vector"] * len(buffers))):
            buffer.copy_(value)
