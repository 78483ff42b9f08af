#!/usr/bin/env python3
"""Validate CycloneDX 1.6 JSON files against the 1.6 schema, strictly.

Usage: validate_cyclonedx.py FILE...
Uses cyclonedx-python-lib's JsonStrictValidator (PyPI `cyclonedx-python-lib[json-validation]`,
schemas bundled, works offline). Output and exit status: see validator.py.
"""
import json

from validator import Invalid, missing, run

try:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    import jsonschema  # noqa: F401  (the json-validation extra)
except ImportError as e:
    missing("cyclonedx-python-lib[json-validation]", e)

validator = JsonStrictValidator(SchemaVersion.V1_6)


def check(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if json.loads(text).get("specVersion") != "1.6":
        raise Invalid("specVersion is not 1.6")
    errors = validator.validate_str(text, all_errors=True)
    if errors:
        raise Invalid("\n".join(f"  {e}" for e in errors))


run(__doc__, "cyclonedx-python-lib", check)
