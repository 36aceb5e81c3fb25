"""What only the PyTorch backend has: its modules, exactness against torch.optim, the seeds' own torch loops,
torch.compile, its settings. The contract both backends share is tests/test_backend_contract.py.

Every expected value is computed independently (plain torch written the way the seeds write it), never by the
backend under test.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

import backend_torch
from backend_torch import models, optim
from common.backend import ModeUnsupportedError
from common.init import init_weights
from common.spec import GAN, MLP, Loss, Optimizer, Updates
from common.tolerances import LOSS_ATOL, MODE_ATOL

BATCH = 8


def small_spec(loss="minimax", order="d_then_g", d_steps=1, reuse_fake=False, opt=None, **mlp):
    """A parabola-shaped GAN, narrower so the tests stay fast."""
    opt = opt or Optimizer(lr=1e-3)
    spec = GAN(latent_dim=5, generator=MLP((5, 16, 15), **mlp), discriminator=MLP((15, 16, 1), output_activation="sigmoid"),
               data_shape=(15,), batch_size=BATCH, d_optimizer=opt, g_optimizer=opt,
               updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse_fake),
               loss=Loss(name="nonsaturating"), init="torch_default")
    return spec.with_loss(Loss(name=loss))


def step_inputs(spec, steps=None, seed=1):
    """Random (real, noise, gp_eps) shaped for one train_step, or for train_steps with a leading axis."""
    rng = np.random.default_rng(seed)
    d, lead = spec.updates.d_steps, () if steps is None else (steps,)
    real = rng.standard_normal(lead + (d, BATCH, spec.data_dim)).astype(np.float32)
    noise = rng.standard_normal(lead + (d + 1, BATCH, spec.latent_dim)).astype(np.float32)
    gp_eps = rng.random(lead + (d, BATCH)).astype(np.float32) if spec.loss.name == "wgan-gp" else None
    return real, noise, gp_eps


def build(spec, mode="eager", seed=0):
    return backend_torch.build(spec, init_weights(spec, seed), device="cpu", mode=mode)


def assert_weights_equal(a, b, atol=0.0):
    for network in ("generator", "discriminator"):
        assert len(a[network]) == len(b[network])
        for x, y in zip(a[network], b[network]):
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ---- models -----------------------------------------------------------------------------------------
def test_leaky_slope_is_the_specs():
    net = models.Net(MLP((3, 4, 1), hidden_activation="leaky_relu", leaky_slope=0.2).network())
    assert [m.negative_slope for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)] == [0.2]


# ---- optimisers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", [Optimizer("adam", lr=1e-3), Optimizer("adam", lr=2e-4, beta1=0.5),
                                 Optimizer("adam", lr=1e-4, beta1=0.0, beta2=0.9), Optimizer("rmsprop", lr=5e-5)])
def test_spec_optimizer_equals_torch_optim_exactly(opt):
    """Tolerance: exact. The spec update is torch's single-tensor CPU update op for op."""
    rng = np.random.default_rng(0)
    start = [torch.from_numpy(rng.standard_normal(s).astype(np.float32)) for s in [(16, 5), (16,)]]
    mine = [p.clone() for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    spec_opt = optim.make_optimizer(opt, mine)
    native = optim.make_optimizer(Optimizer(**{**opt.__dict__, "implementation": "native"}), theirs)
    assert isinstance(spec_opt, (optim.SpecAdam, optim.SpecRMSprop)) and isinstance(native, optim.NativeOptimizer)
    for _ in range(20):
        # Gradients spanning magnitudes, some tiny, where eps matters.
        grads = [torch.from_numpy((rng.standard_normal(p.shape) * 10.0 ** rng.integers(-9, 1, p.shape))
                                  .astype(np.float32)) for p in start]
        spec_opt.apply(grads)
        native.apply(grads)
    assert spec_opt.t == native.t == 20
    for a, b in zip(mine, theirs):
        assert torch.equal(a, b.detach())
        assert not torch.equal(a, start[0] if a.shape == start[0].shape else start[1])
    for key in spec_opt.moments():
        for a, b in zip(spec_opt.moments()[key], native.moments()[key]):
            assert torch.equal(a, b)


def run_updates(opt, capturable=False, steps=20, seed=0):
    """``steps`` updates of one optimiser on gradients spanning magnitudes; its parameters, moments and t."""
    rng = np.random.default_rng(seed)
    params = [torch.from_numpy(rng.standard_normal(s).astype(np.float32)).requires_grad_(True) for s in [(16, 5), (16,)]]
    optimizer = optim.make_optimizer(opt, params, capturable)
    for _ in range(steps):
        grads = [torch.from_numpy((rng.standard_normal(p.shape) * 10.0 ** rng.integers(-9, 1, p.shape))
                                  .astype(np.float32)) for p in params]
        optimizer.apply(grads)
    return [p.detach() for p in params], optimizer


@pytest.mark.parametrize("opt", [Optimizer("adam", lr=1e-3, beta1=0.5), Optimizer("rmsprop", lr=1e-3)])
def test_capturable_spec_optimizer_keeps_t_as_a_tensor_and_the_same_math(opt):
    """The compiled step's optimiser: the count is a (1,) float64 tensor (no recompile per step), the update the
    op-by-op one up to where the Python scalar became a tensor factor (last bits)."""
    plain, plain_opt = run_updates(opt)
    graphable, graph_opt = run_updates(opt, capturable=True)
    assert graph_opt.t == plain_opt.t == 20
    assert graph_opt.steps.tensor.shape == (1,) and graph_opt.steps.tensor.dtype == torch.float64
    for a, b in zip(graphable, plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-7)
    graph_opt.set_state(7, graph_opt.moments())
    assert graph_opt.t == 7 and float(graph_opt.steps.tensor) == 7.0


@pytest.mark.parametrize("implementation", ["native-foreach", "native-fused"])
def test_foreach_and_fused_are_torch_optims_own_kernels(implementation):
    """Selectable torch.optim kernels: the flag reaches torch.optim, the math is Adam's (rounding apart)."""
    opt = Optimizer("adam", lr=1e-3, beta1=0.5, implementation=implementation)
    kernel, kernel_opt = run_updates(opt)
    default, _ = run_updates(dataclasses.replace(opt, implementation="native"))
    flag = implementation.split("-")[1]
    assert kernel_opt.torch.param_groups[0][flag] is True and kernel_opt.t == 20
    for a, b in zip(kernel, default):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)
    # state in and out keeps torch.optim's own layout of "step" (device, dtype), so resuming changes nothing
    moments = kernel_opt.moments()
    kernel_opt.set_state(20, moments)
    step = kernel_opt.torch.state[kernel_opt.params[0]]["step"]
    assert step.dtype == torch.float32 and float(step) == 20.0


def test_fused_rmsprop_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="no fused kernel"):
        optim.make_optimizer(Optimizer("rmsprop", implementation="native-fused"), [torch.zeros(2, requires_grad=True)])


# ---- update orders, against plain torch written the seeds' way -------------------------------------
def plain_torch(spec, weights):
    """G (with output activation) and D (with its sigmoid), torch.optim.Adam, losses written with logs."""
    def net(mlp, w):
        layers = []
        for i, (fan_in, fan_out) in enumerate(mlp.layer_shapes):
            linear = torch.nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w[2 * i].T.copy()))
                linear.bias.copy_(torch.from_numpy(w[2 * i + 1]))
            layers += [linear, torch.nn.ReLU()]
        layers[-1] = torch.nn.Sigmoid() if mlp.output_activation == "sigmoid" else torch.nn.Identity()
        return torch.nn.Sequential(*layers)
    g, d = net(spec.generator, weights["generator"]), net(spec.discriminator, weights["discriminator"])
    opt = spec.g_optimizer
    g_opt = torch.optim.Adam(g.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
    d_opt = torch.optim.Adam(d.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
    return g, d, g_opt, d_opt


def neutral(g, d):
    """Plain Linear stacks in the neutral layout: kernels (in, out)."""
    layouts = {2: "dense_kernel", 1: "vector"}
    return {name: models.to_neutral(list(net.parameters()), [layouts[p.ndim] for p in net.parameters()])
            for name, net in (("generator", g), ("discriminator", d))}


def d_loss_logs(d, real, fake):
    return -torch.mean(torch.log(d(real)) + torch.log(1.0 - d(fake)))


def test_g_then_d_reuse_fake_matches_seed_000_loop():
    spec = small_spec("minimax", order="g_then_d", reuse_fake=True)
    real, noise, _ = step_inputs(spec, steps=3)
    trainer = build(spec)
    G, D, opt_G, opt_D = plain_torch(spec, trainer.get_weights())
    for step in range(3):
        result = trainer.train_step(real[step], noise[step])
        artist_paintings = torch.from_numpy(real[step][0])
        G_paintings = G(torch.from_numpy(noise[step][0]))  # seed 000: G first, on the one noise batch
        G_loss = torch.mean(torch.log(1.0 - D(G_paintings)))
        opt_G.zero_grad()
        G_loss.backward()
        opt_G.step()
        prob_artist0, prob_artist1 = D(artist_paintings), D(G_paintings.detach())  # the fake made before G's step
        D_loss = -torch.mean(torch.log(prob_artist0) + torch.log(1.0 - prob_artist1))
        opt_D.zero_grad()
        D_loss.backward()
        opt_D.step()
        assert abs(result["g_loss"] - G_loss.item()) <= LOSS_ATOL
        assert abs(result["d_loss"] - D_loss.item()) <= LOSS_ATOL
        assert abs(result["d_real"] - prob_artist0.mean().item()) <= LOSS_ATOL
        assert abs(result["d_fake"] - prob_artist1.mean().item()) <= LOSS_ATOL
    # log(sigmoid) vs softplus differ in the last bits only; Adam keeps that at the last bits of a step.
    assert_weights_equal(trainer.get_weights(), neutral(G, D), atol=1e-6)


def test_d_then_g_matches_plain_loop():
    spec = small_spec("nonsaturating", order="d_then_g", d_steps=2)
    real, noise, _ = step_inputs(spec, steps=2)
    trainer = build(spec)
    G, D, opt_G, opt_D = plain_torch(spec, trainer.get_weights())
    for step in range(2):
        result = trainer.train_step(real[step], noise[step])
        for k in range(2):  # D update k on real[k] and G(noise[k])
            with torch.no_grad():
                fake = G(torch.from_numpy(noise[step][k]))
            D_loss = d_loss_logs(D, torch.from_numpy(real[step][k]), fake)
            opt_D.zero_grad()
            D_loss.backward()
            opt_D.step()
        G_loss = -torch.mean(torch.log(D(G(torch.from_numpy(noise[step][2])))))  # G on noise[d]
        opt_G.zero_grad()
        G_loss.backward()
        opt_G.step()
        assert abs(result["d_loss"] - D_loss.item()) <= LOSS_ATOL
        assert abs(result["g_loss"] - G_loss.item()) <= LOSS_ATOL
    assert_weights_equal(trainer.get_weights(), neutral(G, D), atol=1e-6)


def test_simultaneous_takes_both_gradients_at_the_same_weights():
    spec = small_spec("nonsaturating", order="simultaneous")
    real, noise, _ = step_inputs(spec, steps=2)
    trainer = build(spec)
    G, D, opt_G, opt_D = plain_torch(spec, trainer.get_weights())
    for step in range(2):
        result = trainer.train_step(real[step], noise[step])
        D_loss = d_loss_logs(D, torch.from_numpy(real[step][0]), G(torch.from_numpy(noise[step][0])).detach())
        G_loss = -torch.mean(torch.log(D(G(torch.from_numpy(noise[step][1])))))
        # Both gradients at the current weights, each only into its own network; then both applied.
        for params, loss in ((list(D.parameters()), D_loss), (list(G.parameters()), G_loss)):
            for p, grad in zip(params, torch.autograd.grad(loss, params)):
                p.grad = grad
        opt_D.step()
        opt_G.step()
        assert abs(result["d_loss"] - D_loss.item()) <= LOSS_ATOL
        assert abs(result["g_loss"] - G_loss.item()) <= LOSS_ATOL
    assert_weights_equal(trainer.get_weights(), neutral(G, D), atol=1e-6)


# ---- modes and devices ------------------------------------------------------------------------------
def compiled_against_eager(spec, steps=3):
    """``steps`` steps compiled and eager from one start: (compiled results, eager results, the two trainers,
    dynamo's graph count for the compiled one)."""
    torch._dynamo.reset()  # count this trainer's graphs only (dynamo caches compiled code per function)
    torch._dynamo.utils.counters.clear()
    real, noise, gp_eps = step_inputs(spec, steps=steps)
    eager, compiled = build(spec), build(spec, mode="compiled")
    started = time.perf_counter()
    first = compiled.train_step(real[0], noise[0], None if gp_eps is None else gp_eps[0])
    print(f"torch.compile first call: {time.perf_counter() - started:.1f} s")
    rest = compiled.train_steps(real[1:], noise[1:], None if gp_eps is None else gp_eps[1:])
    want = eager.train_steps(real, noise, gp_eps)
    got = {key: np.concatenate([[first[key]], rest[key]]) for key in want}
    return got, want, compiled, eager, torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_each_batch_size_compiles_a_static_graph(monkeypatch):
    """Trainers of three batch sizes in one process (a grid of tasks): each gets a graph of its own shape, as a
    process training only it would. Dynamo's default would recompile the second with symbolic sizes and run the
    third on that graph (2 graphs, not 3): a cell's speed then depended on the cells before it.

    The graphs are dynamo's (which shapes it traces, and whether it marks them dynamic): the trainer's own
    torch.compile call runs with its own arguments, on the aot_eager backend: AOTAutograd without Inductor's code generation
    (tens of seconds a graph on 2 cores; what Inductor computes is the subject of the tests below). Still fails if
    the step is compiled with dynamo's default (dynamic=None): measured 2 graphs."""
    from backend_torch import trainer as torch_trainer

    monkeypatch.setattr(torch_trainer, "COMPILE_OPTIONS",
                        dataclasses.replace(torch_trainer.COMPILE_OPTIONS, backend="aot_eager"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    rng = np.random.default_rng(0)
    for batch in (16, 24, 32):
        spec = small_spec().replace(batch_size=batch)
        real = rng.standard_normal((1, batch, spec.data_dim)).astype(np.float32)
        noise = rng.standard_normal((2, batch, spec.latent_dim)).astype(np.float32)
        build(spec, mode="compiled").train_step(real, noise)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 3
    torch._dynamo.reset()  # no later test runs these aot_eager graphs


def test_compiled_equals_eager():
    """The whole step is one graph, compiled once for every step (the step count is a tensor), and computes what
    eager does. Tolerance: MODE_ATOL on losses and weights after 3 steps."""
    spec = small_spec("minimax", order="g_then_d", reuse_fake=True)
    got, want, compiled, eager, graphs = compiled_against_eager(spec)
    assert graphs == 1 and compiled.compiled_as.startswith("whole step as one graph")
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=MODE_ATOL["torch"])
    assert_weights_equal(compiled.get_weights(), eager.get_weights(), atol=MODE_ATOL["torch"])
    assert compiled.g_opt.t == compiled.d_opt.t == 3
    # A second compiled trainer reuses the compiled graph (no recompile) but must train its own weights.
    real, noise, _ = step_inputs(spec, steps=3)
    other_eager, other_compiled = build(spec, seed=7), build(spec, mode="compiled", seed=7)
    want, got = other_eager.train_steps(real, noise), other_compiled.train_steps(real, noise)
    np.testing.assert_allclose(got["d_loss"], want["d_loss"], rtol=0, atol=MODE_ATOL["torch"])
    assert_weights_equal(other_compiled.get_weights(), other_eager.get_weights(), atol=MODE_ATOL["torch"])
    assert np.abs(other_compiled.get_weights()["generator"][0] - compiled.get_weights()["generator"][0]).max() > 0.01
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    # time_phases times compiled phases, then leaves exactly the state train_step leaves
    twin = build(spec, mode="compiled", seed=7)
    twin.train_steps(real, noise)
    phases = other_compiled.time_phases(real[0], noise[0])
    twin.train_step(real[0], noise[0])
    assert phases["d_update"] > 0 and phases["g_update"] > 0
    mine, theirs = other_compiled.state(), twin.state()
    assert mine.keys() == theirs.keys() and int(mine["opt/generator/t"]) == 4
    for key in mine:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)


def test_wgan_gp_double_backward_compiles_whole():
    """The gradient penalty's gradient of a gradient, with two critic steps, inside the one graph of the step."""
    spec = small_spec("wgan-gp", order="d_then_g", d_steps=2)
    got, want, compiled, eager, graphs = compiled_against_eager(spec)
    assert graphs == 1
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=MODE_ATOL["torch"])
    assert_weights_equal(compiled.get_weights(), eager.get_weights(), atol=MODE_ATOL["torch"])


def test_compiled_native_optimizer_runs_torch_optim_inside_the_step():
    """torch.optim breaks the graph around step() by design: a few graphs, the same results as eager torch.optim."""
    spec = small_spec("nonsaturating", opt=Optimizer(lr=1e-3, implementation="native"))
    got, want, compiled, eager, graphs = compiled_against_eager(spec)
    assert 1 < graphs <= 6 and "graph breaks around step()" in compiled.compiled_as
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=MODE_ATOL["torch"])
    assert_weights_equal(compiled.get_weights(), eager.get_weights(), atol=MODE_ATOL["torch"])
    assert compiled.g_opt.t == 3


def test_xla_mode_is_refused():
    with pytest.raises(ModeUnsupportedError, match="XLA"):
        backend_torch.build(small_spec(), init_weights(small_spec(), 0), device="cpu", mode="xla")


def test_configure_twice_and_versions():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    first = backend_torch.configure(threads=1, deterministic=True)
    second = backend_torch.configure(threads=2, deterministic=True)
    assert second["intra_op_threads"] == 2 and second["deterministic"] is True
    assert first["inter_op_threads"] == second["inter_op_threads"]
    assert backend_torch.configure(threads=None, deterministic=False)["deterministic"] is False
    backend_torch.configure(threads=threads, deterministic=deterministic)  # leave the process as it was
    assert backend_torch.versions()["torch"] == torch.__version__


# ---- the layer list: PyTorch's own layers ------------------------------------------------------------------
def test_norm_is_nn_batchnorm_bit_for_bit():
    """With an unbiased running variance (PyTorch's), the suite's BatchNorm is nn.BatchNorm2d's own forward:
    outputs and running statistics bit for bit, in training and in evaluation."""
    from common.spec import BatchNorm

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 5, 3, 4)).astype(np.float32) * 3 + 1)
    ours = models.Norm(BatchNorm(momentum=0.1, eps=1e-5), 5, image=True)
    theirs = torch.nn.BatchNorm2d(5)
    with torch.no_grad():
        for bn in (ours.bn, theirs):
            bn.weight.copy_(torch.linspace(0.5, 1.5, 5))
            bn.bias.copy_(torch.linspace(-1, 1, 5))
        for _ in range(2):
            assert torch.equal(ours(x, True, True), theirs.train()(x))
        assert torch.equal(ours.bn.running_mean, theirs.running_mean)
        assert torch.equal(ours.bn.running_var, theirs.running_var)
        assert torch.equal(ours(x, False, True), theirs.eval()(x))


def test_torch_dropout_scales_kept_units_as_the_suite_masks():
    """PyTorch's dropout keeps a unit as x * (1 / (1 - p)) in float32: exactly what the stream's mask holds."""
    from common.init import DTYPE
    from common.spec import Dropout

    x = torch.from_numpy(np.random.default_rng(1).standard_normal((64, 50)).astype(np.float32))
    out = torch.nn.functional.dropout(x, 0.3, training=True).numpy()
    kept = out != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_array_equal(out[kept], x.numpy()[kept] * DTYPE(Dropout(0.3).scale))


def test_conv_compiled_equals_eager():
    """torch.compile on a small GAN with every torch-specific path of the layer list (BatchNorm1d/2d with in-place
    statistics, a transposed convolution's crop slice, nn.ZeroPad2d for an uneven 'same', dropout masks, Reshape,
    Flatten): losses, weights and statistics after 3 steps. Small, because Inductor compiles each graph for tens
    of seconds on 2 cores."""
    from benchmarks.parity import source_for
    from common.spec import Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Network, Reshape
    from common.stream import Stream

    torch._dynamo.reset()
    gen = Network((3,), (Dense(2 * 4 * 4, bias=False), BatchNorm(), Reshape((2, 4, 4)),
                         ConvTranspose2D(2, 5, 2, "same"), Activation("tanh")))
    disc = Network((2, 8, 8), (Conv2D(2, 3, 2, "same"), Dropout(0.3), BatchNorm(running_variance="biased"), Flatten(),
                               Dense(1)))
    spec = GAN(latent_dim=3, generator=gen, discriminator=disc, data_shape=(2, 8, 8), batch_size=BATCH,
               updates=Updates("d_then_g", reuse_fake=True), init="dcgan")
    eager, compiled = build(spec), build(spec, mode="compiled")
    stream = Stream(spec, source_for(spec), seed=2)
    for _ in range(3):
        inputs = stream.next().as_kwargs()
        want, got = eager.train_step(**inputs), compiled.train_step(**inputs)
        for key in want:
            assert abs(got[key] - want[key]) <= MODE_ATOL["torch"], key
    assert_weights_equal(compiled.get_weights(), eager.get_weights(), atol=MODE_ATOL["torch"])
    assert_weights_equal(compiled.get_statistics(), eager.get_statistics(), atol=MODE_ATOL["torch"])


@pytest.mark.parametrize("eps_form", ["torch", "keras"])
def test_capturable_spec_adam_equals_op_by_op(eps_form):
    """The compiled step's Adam (step count as a tensor, dcgan-mnist's Keras form included) against op by op:
    20 updates of gradients near epsilon, where the form matters, equal to float32 rounding of the update."""
    from backend_torch import optim

    opt = Optimizer("adam", lr=1e-4, eps=1e-7, eps_form=eps_form)
    rng = np.random.default_rng(0)
    grads = [torch.from_numpy(np.float32(1e-7) * rng.standard_normal(4).astype(np.float32)) for _ in range(20)]
    out = {}
    for capturable in (False, True):
        w = torch.zeros(4)
        adam = optim.SpecAdam(opt, [w], capturable=capturable)
        for g in grads:
            adam.apply([g])
        out[capturable] = w.numpy()
    np.testing.assert_allclose(out[True], out[False], rtol=1e-6, atol=0)
