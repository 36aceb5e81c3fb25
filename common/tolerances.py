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
