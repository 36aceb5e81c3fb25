"""``python -m benchmarks`` is ``python -m benchmarks.run`` (run as the main module, as the console script
``gan-parity`` runs its main())."""
import runpy

runpy.run_module("benchmarks.run", run_name="__main__", alter_sys=True)
