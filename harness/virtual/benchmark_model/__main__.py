"""``python -m harness.virtual.benchmark_model``: the emulated tool, as the phone's launcher runs it."""

import sys

from harness.virtual.benchmark_model.tool import main

sys.exit(main())
