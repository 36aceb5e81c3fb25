"""The benchmark harness: ``python -m benchmarks.run`` (run.py), its clocks (timing.py) and results store
(store.py); the report (the report/ package) reads only what the store wrote. Imports the backends by name only."""


def exit_on_early_interrupt() -> None:
    """Ctrl-C before a command's main() takes over (its libraries still importing): one line and exit 130, not a
    KeyboardInterrupt traceback. main()'s own handlers replace this one once it runs."""
    import os
    import signal
    import sys

    def interrupted(signum, frame):
        print("interrupted while starting: nothing was run or written", file=sys.stderr)
        os._exit(130)

    signal.signal(signal.SIGINT, interrupted)
