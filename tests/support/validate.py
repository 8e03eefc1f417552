#!/usr/bin/env python3
"""Offline schema checks for berth's exports (run by tests/it/export_validate.rs).

  validate.py crd CRD.yaml MANIFEST.yaml...   objects of the CRD's kind against its schema
  validate.py devcontainer SCHEMA.json FILE... devcontainer.json (JSONC: `//` lines dropped)

A CRD's openAPIV3Schema is made strict the way the API server's strict field validation is:
`additionalProperties: false` wherever `properties` are listed (unless the schema preserves
unknown fields), `x-kubernetes-int-or-string` as integer-or-string, `nullable` as null allowed.
CEL rules and admission webhooks are not covered. Exit 1 with one line per problem.
"""
import json
import sys

import jsonschema
import yaml


def strict(node):
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()
           if k not in ("format",) and not k.startswith("x-kubernetes-validations")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def check_crd(crd_file, manifests):
    crd = yaml.safe_load(open(crd_file))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schemas = {f"{group}/{v['name']}": strict(v["schema"]["openAPIV3Schema"]) for v in crd["spec"]["versions"]}
    problems, checked = [], 0
    for path in manifests:
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != kind:
                continue
            schema = schemas.get(doc.get("apiVersion"))
            if schema is None:
                problems.append(f"{path}: {kind} apiVersion {doc.get('apiVersion')} is not served by {crd_file}")
                continue
            schema["properties"]["metadata"] = {"type": "object"}
            for err in jsonschema.Draft7Validator(schema).iter_errors(doc):
                where = "/".join(str(p) for p in err.absolute_path)
                problems.append(f"{path}: {where}: {err.message}")
            checked += 1
    if checked == 0:
        problems.append(f"no {kind} object found in {manifests}")
    return problems


def check_devcontainer(schema_file, files):
    schema = json.load(open(schema_file))
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for path in files:
        text = "".join(l for l in open(path) if not l.lstrip().startswith("//"))
        doc = json.loads(text)
        for err in validator.iter_errors(doc):
            where = "/".join(str(p) for p in err.absolute_path)
            problems.append(f"{path}: {where}: {err.message}")
    return problems


def main(argv):
    if len(argv) < 3 or argv[0] not in ("crd", "devcontainer"):
        print(__doc__, file=sys.stderr)
        return 2
    check = check_crd if argv[0] == "crd" else check_devcontainer
    problems = check(argv[1], argv[2:])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
