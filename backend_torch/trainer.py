"""The PyTorch primitives of the neutral trainer (common/trainer.py), in eager or compiled mode.

Each update is split in two: a function that computes the loss, the reported D outputs and the gradients at the
current weights (``d_gradients`` / ``g_gradients``), and the optimiser's in-place update. The modes differ only
in how the gradient functions run: op by op (eager) or as one torch.compile'd graph each (compiled: forward, loss
and ``torch.autograd.grad`` traced together, with dynamo's trace_autograd_ops). The optimiser updates and fake
batches for D (a no-grad G forward) stay op by op in both modes, so the optimisers are the very same code whatever
the mode.
"""
from __future__ import annotations

import numpy as np
import torch

from backend_torch import losses, models, optim
from common import trainer
from common.spec import GAN


class Trainer(trainer.Trainer):
    models = models  # build, load and export weights in the neutral layout

    def __init__(self, spec: GAN, weights: dict, device: torch.device, mode: str):
        super().__init__(spec, mode)
        self.device = device
        self.generator = models.build_generator(spec).to(device)
        self.discriminator = models.build_discriminator(spec).to(device)
        self.set_weights(weights)
        self.g_params = list(self.generator.parameters())
        self.d_params = list(self.discriminator.parameters())
        self.g_opt = optim.make_optimizer(spec.g_optimizer, self.g_params)
        self.d_opt = optim.make_optimizer(spec.d_optimizer, self.d_params)
        if mode == "compiled":
            self.d_gradients = _compiled(self.d_gradients)
            self.g_gradients = _compiled(self.g_gradients)

    # ---- primitives of the step ---------------------------------------------------------------------
    def d_gradients(self, real, fake, eps, masks=None):
        loss_spec = self.spec.loss
        fake = fake.detach()
        m_real, m_fake, m_gp = masks if masks is not None else (None, None, None)
        l_r = self.discriminator(real, True, m_real)[:, 0]
        l_f = self.discriminator(fake, True, m_fake)[:, 0]
        penalty = None
        if self.uses_gp:
            penalty = losses.gradient_penalty(lambda x: self.discriminator(x, True, m_gp), real, fake, eps)
        loss = losses.d_loss(loss_spec, l_r, l_f, penalty)
        grads = torch.autograd.grad(loss, self.d_params)
        d_real = losses.d_output(loss_spec, l_r).mean()
        d_fake = losses.d_output(loss_spec, l_f).mean()
        return loss.detach(), d_real.detach(), d_fake.detach(), grads

    def g_gradients(self, noise, mask=None, g_stats=True, d_stats=True):
        fake = self.generator(noise, True, None, g_stats)
        loss = losses.g_loss(self.spec.loss, self.discriminator(fake, True, mask, d_stats)[:, 0])
        grads = torch.autograd.grad(loss, self.g_params)
        return loss.detach(), grads, fake.detach()

    def fake(self, noise):
        with torch.no_grad():
            return self.generator(noise, True)

    def sample(self, noise):
        with torch.no_grad():
            return self.generator(noise)

    def apply_d(self, grads):
        self.d_opt.apply(grads)

    def apply_g(self, grads):
        self.g_opt.apply(grads)

    @torch.no_grad()
    def clip_d(self, clip: float):
        for param in self.d_params:
            param.clamp_(-clip, clip)

    def stack(self, values):
        return torch.stack(values)

    def discriminator_output(self, x):
        with torch.no_grad():
            return losses.d_output(self.spec.loss, self.discriminator(x)[:, 0])  # evaluation mode

    # ---- tensors, device, how the mode runs the schedule -----------------------------------------------
    def to_tensor(self, array) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.cpu().numpy()

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run_step(self, tensors) -> np.ndarray:
        return self.schedule(*tensors).cpu().numpy()

    def run_steps(self, tensors) -> np.ndarray:
        real, noise, gp_eps, dropout = tensors
        # A Python loop over the same step: results stay on the device until the one conversion at the end.
        results = [self.schedule(real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                 None if dropout is None else dropout[i]) for i in range(real.shape[0])]
        return torch.stack(results).cpu().numpy() if results else np.zeros((0, 4), np.float32)

    # ---- weights and optimiser state, neutral layout ------------------------------------------------
    def _optimizer(self, network: str):
        return (self.g_opt, self.g_params) if network == "generator" else (self.d_opt, self.d_params)

    def optimizer_state(self, network: str) -> tuple[int, dict[str, list[np.ndarray]]]:
        opt, _ = self._optimizer(network)
        layouts = getattr(self, network).layouts
        return opt.t, {key: models.to_neutral(tensors, layouts) for key, tensors in opt.moments().items()}

    def load_optimizer_state(self, network: str, t: int, moments: dict[str, list[np.ndarray]]) -> None:
        opt, params = self._optimizer(network)
        layouts = getattr(self, network).layouts
        opt.set_state(t, {key: models.from_neutral(arrays, params, layouts) for key, arrays in moments.items()})


def _compiled(function):
    """torch.compile'd ``function`` as one graph: forward, loss and autograd.grad traced together.

    Dynamo breaks the graph at torch.autograd.grad unless trace_autograd_ops is on; it is switched on
    only around these calls (it is read while tracing, which happens on the first call).
    """
    compiled = torch.compile(function, fullgraph=True)

    def call(*args, **kwargs):
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return compiled(*args, **kwargs)
    return call
