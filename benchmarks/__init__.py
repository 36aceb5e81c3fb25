"""The benchmark harness: ``python -m benchmarks.run`` (run.py), its clocks (timing.py) and results store
(store.py); the report (the report/ package) reads only what the store wrote. Imports the backends by name only."""
