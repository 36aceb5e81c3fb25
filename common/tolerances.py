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

CONV_FORWARD_ATOL = 1e-6  # provisional
CONV_LOSS_ATOL = 1e-6
CONV_STEP_WEIGHT_ATOL = 1e-6
CONV_TRAJECTORY_LOSS_ATOL = 5e-6
CONV_TRAJECTORY_WEIGHT_RTOL = 1e-6
