#!/usr/bin/env python3
"""Validate CycloneDX 1.6 JSON files against the 1.6 schema, strictly.

Usage: validate_cyclonedx.py FILE...
Uses cyclonedx-python-lib's JsonStrictValidator (PyPI `cyclonedx-python-lib[json-validation]`,
schemas bundled, works offline). Exit 0: all valid; 1: a file is invalid; 77: the library
or its json-validation extra is not installed (callers treat that as a skip).
"""
import json
import sys
from importlib import metadata

try:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    import jsonschema  # noqa: F401  (the json-validation extra)
except ImportError as e:
    print(f"cyclonedx-python-lib[json-validation] is not installed: {e}", file=sys.stderr)
    sys.exit(77)

if len(sys.argv) < 2:
    print(__doc__, file=sys.stderr)
    sys.exit(2)

print(f"cyclonedx-python-lib {metadata.version('cyclonedx-python-lib')}")
validator = JsonStrictValidator(SchemaVersion.V1_6)
status = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if json.loads(text).get("specVersion") != "1.6":
            raise ValueError("specVersion is not 1.6")
        errors = validator.validate_str(text, all_errors=True)
    except ValueError as e:
        errors = [e]
    if errors:
        print(f"INVALID {path}:")
        for e in errors:
            print(f"  {e}")
        status = 1
    else:
        print(f"valid {path}")
sys.exit(status)
