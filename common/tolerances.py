"""How close PyTorch and TensorFlow must be, in float32 on CPU, and why. The parity tests read these; nowhere else
states a tolerance. Values were measured with `python -m pytest tests/test_parity.py` (see the README table).

float32 has a unit roundoff of 6e-8. The two frameworks sum matmul products in different orders (different BLAS
blocking), so a layer's outputs differ by a few units in the last place of each partial sum.
"""

# G(z) and D(x) of the same weights on the same inputs: outputs of order 1, a few layers deep. Measured: 1.2e-7.
# The aim the issue sets (Keras' own tests use 1e-6; Hugging Face's PT/TF equivalence tests 1e-5).
FORWARD_ATOL = 1e-6

# Losses reported by one training step (values of order 1, means over the batch). Measured: 4.8e-7 (wgan-gp).
LOSS_ATOL = 1e-6

# Every weight after one step (lr 1e-3). Adam and RMSprop normalise each gradient coordinate by its own magnitude,
# so where a gradient is tiny its rounding difference is amplified towards an lr-sized step; measured worst case
# 7.5e-7 (least-squares, RMSprop), the rest at or below 3e-7.
STEP_WEIGHT_ATOL = 1e-6

# Twenty steps: differences compound through the game (each side trains on the other's output). Measured worst
# cases over the six losses x two spec optimisers (`python -m benchmarks.parity`, 2026-11-23): losses 4.8e-7,
# relative weight distance 1.5e-7. The bounds leave about a 10x margin for other CPUs' BLAS blocking, and stay far
# below what the frameworks' native optimisers drift by on the same run (Adam 1.7e-4, RMSprop 1e-1).
TRAJECTORY_STEPS = 20
TRAJECTORY_LOSS_ATOL = 5e-6
# Relative L2 distance between the two backends' full weight vectors after TRAJECTORY_STEPS steps.
TRAJECTORY_WEIGHT_RTOL = 1e-6

# ---- one backend against the float64 numpy reference of tests/reference.py (not across frameworks) -----------
# A spec optimiser after 20 float32 updates of size <= lr on a quadratic, against float64: rounding only.
OPTIMIZER_REFERENCE_ATOL = 2e-6
# Whole training steps of a tiny tanh GAN with Adam(eps=1), whose updates are about lr x gradient, so float32
# rounding is not amplified: losses and weights after 3 steps. Measured worst case 1.4e-7 (torch), 1.2e-7 (TF),
# 2026-11-24, every order x d_steps x reuse_fake. A wrong batch, order or clip moves values by ~lr x gradient.
SCHEDULE_REFERENCE_ATOL = 1e-6
# A compiled mode against eager in the same backend after 3 steps (tests/test_backend_<name>.py): torch.compile's
# Inductor and TF's grappler/XLA may fuse to FMA and reorder sums. TF's figure covers wgan-gp's second-order graph.
MODE_ATOL = {"torch": 1e-6, "tf": 1e-5}
# train_steps(K) against K train_step calls in one backend and mode. PyTorch runs both through the same (compiled)
# step: identical. TensorFlow's compiled modes trace a one-step graph and a K-step tf.range graph, which grappler
# and XLA optimise separately (another fusion or summation order): they may differ in the last bits of a step, and
# the game amplifies that over the K steps. Measured (2026-12-01): 2.8e-9 on the WGAN-GP test GAN (second-order
# graph, 3 steps, tests/test_backend_tf.py), 0 (bit-identical) for K = 20 on parabola, gmm2 and mnist-small with
# spec and Keras optimisers in tf.function and XLA (benchmarks/perf.py check_k_steps). The bound is MODE_ATOL's.
K_STEPS_ATOL = 1e-6

# ---- convolutional GANs (the layer list: convolutions, transposed convolutions, BatchNorm, dropout) -----------
# Measured with `python -m benchmarks.parity` (the "conv" rows: benchmarks/parity.py conv_parity_spec, a tiny GAN
# with every layer kind) and tests/test_parity.py, 2026-12-01 on this 2-core CPU. The frameworks' convolution
# kernels sum the kh x kw x C_in products in different orders (PyTorch: oneDNN; TensorFlow without oneDNN: Eigen's
# spatial convolution), and BatchNorm divides by a batch standard deviation that carries those differences on.
# Forward passes of every layer kind, train and evaluation mode, statistics included (tests/test_backend_layers.py,
# against float64; weights perturbed off the init): worst 4.6e-7 (BatchNorm2d after a 3x3 convolution). Between
# the frameworks on the parity GAN: 6e-8. The full-size task models (tests/test_parity.py's forward test, which
# uses FORWARD_ATOL): see the README table.
CONV_FORWARD_ATOL = 1e-6
# One step's losses: worst 4.8e-7 (wgan-gp, whose penalty is a first derivative through the convolutions).
CONV_LOSS_ATOL = 1e-6
# Every weight and running statistic after one step: worst 6.9e-7 (nonsaturating, RMSprop: RMSprop's normalised
# step amplifies the rounding of small gradient coordinates, as for the MLPs); 2x margin over the MLPs' bound for
# the deeper chains of sums.
CONV_STEP_WEIGHT_ATOL = 2e-6
# Twenty steps. Losses: worst 9.5e-7 (wgan-gp). Relative weight distance: worst 1.07e-5 (wasserstein, RMSprop), the
# rest at or below 1.8e-7. Why that one: BatchNorm removes each channel's mean from the gradient that reaches the
# layer before it, so that layer's weight gradient is a difference of near-equal sums whose relative rounding error
# is large; a clipped critic makes G's gradients small everywhere, and RMSprop's normalised update turns a relative
# gradient error into up to lr (1e-3) of weight per step (G's weights differ by up to 1.6e-5 while every loss agrees
# to 4e-8). The bound is 10x the worst case; the loss bound stays the MLPs'. The PacGAN model (a BatchNorm'd MLP
# G, a maxout D, Adam on N(0, 0.02) weights: tests/test_parity.py test_pacgan_task_model_trains_together) drifts by
# the same mechanism: 3.6e-6 at pack 1 (2026-12-01, loaded machine), within this bound.
CONV_TRAJECTORY_LOSS_ATOL = 5e-6
CONV_TRAJECTORY_WEIGHT_RTOL = 1e-4
