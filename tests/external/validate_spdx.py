#!/usr/bin/env python3
"""Validate SPDX 2.3 JSON files with pyspdxtools (PyPI `spdx-tools`).

Usage: validate_spdx.py FILE...
Runs the `pyspdxtools -i FILE` command-line entry point on each file (through this
interpreter, so PATH does not matter). Exit 0: all valid; 1: a file is invalid;
77: spdx-tools is not installed (callers treat that as a skip).
"""
import subprocess
import sys
from importlib import metadata

try:
    import spdx_tools.spdx.clitools.pyspdxtools  # noqa: F401
except ImportError as e:
    print(f"spdx-tools is not installed: {e}", file=sys.stderr)
    sys.exit(77)

if len(sys.argv) < 2:
    print(__doc__, file=sys.stderr)
    sys.exit(2)

print(f"spdx-tools {metadata.version('spdx-tools')}")
status = 0
for path in sys.argv[1:]:
    # Same code as the `pyspdxtools` console script.
    run = subprocess.run(
        [sys.executable, "-c",
         "import sys; from spdx_tools.spdx.clitools.pyspdxtools import main; "
         "sys.argv[0] = 'pyspdxtools'; main()",
         "-i", path],
        capture_output=True, text=True,
    )
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        print(f"INVALID {path} (pyspdxtools exit {run.returncode})")
        status = 1
    else:
        print(f"valid {path}")
sys.exit(status)
