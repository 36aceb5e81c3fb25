"""The framework-neutral spec of the suite: imports numpy/scipy only, never torch, tensorflow or keras."""
