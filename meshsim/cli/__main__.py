"""`python -m meshsim.cli ...`: the `meshsim` command."""

import sys

from meshsim.cli import main

sys.exit(main())
