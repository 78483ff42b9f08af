#!/usr/bin/env python3
"""Validate SPDX 2.3 JSON files with pyspdxtools (PyPI `spdx-tools`).

Usage: validate_spdx.py FILE...
Runs the `pyspdxtools -i FILE` command-line entry point on each file, in this process (the
same click command the console script calls, so PATH does not matter). Output and exit
status: see validator.py.
"""
from validator import Invalid, missing, run

try:
    from spdx_tools.spdx.clitools.pyspdxtools import main as pyspdxtools
except ImportError as e:
    missing("spdx-tools", e)


def check(path):
    try:
        pyspdxtools.main(args=["-i", path], prog_name="pyspdxtools", standalone_mode=False)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if code != 0:
            raise Invalid(f"pyspdxtools exit {code}") from None


run(__doc__, "spdx-tools", check)
