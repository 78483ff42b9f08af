"""The driver the validate_*.py scripts share: one verdict line per file.

Each script checks files with one library and calls `run`. Output, which the Rust tests
parse: a first line naming the library and its version, then per file `valid PATH` (with
an optional ` (NOTE)`) or `INVALID PATH: WHY` (more lines of detail may follow, indented).
Exit 0: every file valid; 1: a file is invalid; 2: usage; 77: the library is not
installed (see `missing`; callers treat that as a skip, or a failure in CI).
"""
import sys
from importlib import metadata


class Invalid(Exception):
    """A document the library rejected; the message says why."""


def missing(what, error):
    """Exits 77: the library the script needs cannot be imported."""
    print(f"{what} is not installed: {error}", file=sys.stderr)
    sys.exit(77)


def run(usage, dist, check):
    """Calls `check(path)` on each file named on the command line: it returns a note (or
    None) for a valid file and raises for an invalid one; any exception is a rejection."""
    if len(sys.argv) < 2:
        print(usage, file=sys.stderr)
        sys.exit(2)
    print(f"{dist} {metadata.version(dist)}")
    status = 0
    for path in sys.argv[1:]:
        try:
            note = check(path)
        except Exception as e:  # noqa: BLE001 - any failure means invalid
            why = str(e) if isinstance(e, Invalid) else f"{type(e).__name__}: {e}"
            print(f"INVALID {path}: {why}")
            status = 1
        else:
            print(f"valid {path}" + (f" ({note})" if note else ""))
    sys.exit(status)
