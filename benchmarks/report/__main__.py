"""``python -m benchmarks.report DIR``: rebuild the report from the results in DIR."""
import sys

from benchmarks.report import main

sys.exit(main())
