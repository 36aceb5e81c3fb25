"""``python -m benchmarks`` is ``python -m benchmarks.run``."""
import sys

from benchmarks import exit_on_early_interrupt

exit_on_early_interrupt()
from benchmarks.run import main  # noqa: E402

sys.exit(main())
