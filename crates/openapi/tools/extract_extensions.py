#!/usr/bin/env python3
"""Regenerate src/extensions.tsv: the x-kubernetes-* schema extensions
(strategic-merge and list/map topology metadata) that upstream's OpenAPI
carries but k8s-openapi's schemars output does not.

Usage: extract_extensions.py <definitions.json> > ../src/extensions.tsv
The input is a JSON Schema export of upstream's v1.33 OpenAPI definitions
(`$defs`). Only run by hand when moving to a new Kubernetes version; neither
the build nor the tests read the input.

Output: one line per extension, tab separated:
  definition  field-path ('' for the definition itself)  extension  JSON value
"""
import json
import sys

SKIP = {"x-kubernetes-group-version-kind"}


def walk(definition, schema, path, out):
    if not isinstance(schema, dict):
        return
    for key in sorted(schema):
        if key.startswith("x-kubernetes-") and key not in SKIP:
            out.append((definition, path, key, json.dumps(schema[key], separators=(",", ":"), sort_keys=True)))
    for prop, sub in sorted(schema.get("properties", {}).items()):
        walk(definition, sub, (path + "." if path else "") + prop, out)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            walk(definition, schema[key], (path + "/" if path else "/") + key, out)


def main():
    doc = json.load(open(sys.argv[1]))
    out = []
    for name, schema in sorted(doc["$defs"].items()):
        walk(name, schema, "", out)
    for row in out:
        print("\t".join(row))


main()
