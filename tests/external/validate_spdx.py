#!/usr/bin/env python3
"""Validate SPDX 2.3 JSON files with pyspdxtools (PyPI `spdx-tools`).

Usage: validate_spdx.py FILE...
Runs the `pyspdxtools -i FILE` command-line entry point on each file, in this process (the
same click command the console script calls, so PATH does not matter). Exit 0: all valid; 1: a file is invalid;
77: spdx-tools is not installed (callers treat that as a skip).
"""
import sys
from importlib import metadata

try:
    from spdx_tools.spdx.clitools.pyspdxtools import main as pyspdxtools
except ImportError as e:
    print(f"spdx-tools is not installed: {e}", file=sys.stderr)
    sys.exit(77)

if len(sys.argv) < 2:
    print(__doc__, file=sys.stderr)
    sys.exit(2)

print(f"spdx-tools {metadata.version('spdx-tools')}")
status = 0
for path in sys.argv[1:]:
    try:
        pyspdxtools.main(args=["-i", path], prog_name="pyspdxtools", standalone_mode=False)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001 - a crash on a document is a rejection
        print(f"pyspdxtools crashed: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    if code != 0:
        print(f"INVALID {path} (pyspdxtools exit {code})")
        status = 1
    else:
        print(f"valid {path}")
sys.exit(status)
