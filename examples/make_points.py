"""The worked example's data: 5 000 points on a ring of radius 2 with a little noise, as examples/points.npy
(python examples/make_points.py). Any (N, 2) float array of your own takes its place."""
from pathlib import Path

import numpy as np

rng = np.random.default_rng(0)
angle = rng.uniform(0, 2 * np.pi, 5000)
points = np.c_[np.cos(angle), np.sin(angle)] * 2 + 0.05 * rng.standard_normal((5000, 2))
np.save(Path(__file__).with_name("points.npy"), points.astype(np.float32))
