"""`python -m bench_harness ...` is the same as `bench ...`."""

import sys

from ._cli.main import main

sys.exit(main())
