"""Convert CustomResourceDefinition YAML files into JSON schemas that kubeconform reads.

The approach of kubeconform's `openapi2jsonschema.py`, written again: every served version
of a CRD becomes `<out>/<group>/<kind>_<version>.json` (lower case), with
`additionalProperties: false` on every object that lists its properties (unless the CRD
says `x-kubernetes-preserve-unknown-fields`), int-or-string fields as `oneOf`, and
`nullable` turned into a `null` type. Use it with kubeconform's
`-schema-location '<out>/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'`.

Usage: python scripts/crd_to_jsonschema.py OUT_DIR CRD.yaml [CRD.yaml ...]
Needs PyYAML (installed into .tools/py by scripts/install_chart_tools.sh).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]


def strict(schema: Any) -> Any:
    """Return a copy of an OpenAPI v3 schema fragment made strict for JSON Schema."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {key: strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        for key in ("type", "format"):
            out.pop(key, None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert(crd: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write one JSON schema per version of one CRD; return the files written."""
    spec = crd["spec"]
    group = spec["group"]
    kind = spec["names"]["kind"].lower()
    written: list[Path] = []
    for version in spec["versions"]:
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            continue
        target = out_dir / group / f"{kind}_{version['name']}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        document = {"$schema": "http://json-schema.org/draft-07/schema#", **strict(schema)}
        target.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[1])
    for path in argv[2:]:
        with open(path, encoding="utf-8") as handle:
            for document in yaml.safe_load_all(handle):
                if not document or document.get("kind") != "CustomResourceDefinition":
                    continue
                for target in convert(document, out_dir):
                    print(f"    {target.relative_to(out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
