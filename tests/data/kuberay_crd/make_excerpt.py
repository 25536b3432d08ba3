"""Write ``schemas.v1.json``: the v1 OpenAPI schemas of KubeRay's RayCluster and RayJob CRDs.

    python tests/data/kuberay_crd/make_excerpt.py [CRD_DIR]

CRD_DIR (default: ``../shared/data/kuberay_crd`` beside the repository) holds the two CRD files
named in SOURCE.md; their sha256 must match. The excerpt keeps, for each kind, the schema of
``spec.versions[name == "v1"].schema.openAPIV3Schema`` without its ``status`` (a manifest has
none), and stores each subtree that occurs more than once (the pod template, the container, the
RayCluster spec inside a RayJob) once, under ``definitions``, referenced by ``$ref``. Nothing
else changes: ``expand`` undoes the factoring exactly, and the tests check that it does against
the CRD files when they are there.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXCERPT = HERE / "schemas.v1.json"
DEFAULT_CRD_DIR = HERE.parents[3] / "shared" / "data" / "kuberay_crd"
SOURCES = {  # kind: (file, sha256), as listed in SOURCE.md
    "RayCluster": (
        "ray.io_rayclusters.yaml",
        "c44704442eef0c6721ad40c1d66782c8bd3fdab9d3344306a5820910a679baa1",
    ),
    "RayJob": (
        "ray.io_rayjobs.yaml",
        "01a5cf3b17c1769fda44af7e82debcd98722f0c27b9ab84d084681c6649121f5",
    ),
}
MIN_FACTOR_CHARS = 2000  # smaller repeated subtrees stay inline


def extract_v1(crd: dict) -> dict:
    """The v1 openAPIV3Schema of a CRD document, without ``status``."""
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    schema["properties"].pop("status", None)
    return schema


def load_crd_schemas(crd_dir: Path) -> dict[str, dict]:
    """{kind: v1 schema} from the CRD files in ``crd_dir``, after checking their sha256."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = {}
    for kind, (name, sha256) in SOURCES.items():
        raw = (crd_dir / name).read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise ValueError(f"{name}: sha256 {digest} is not the one in SOURCE.md")
        out[kind] = extract_v1(yaml.load(raw, Loader=loader))
    return out


def _schema_children(node: dict):
    """(container, key) of every sub-schema of a schema node (JSON Schema draft 4 positions)."""
    for key in ("properties", "definitions", "patternProperties"):
        for name in node.get(key, {}) or {}:
            yield node[key], name
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            yield node, key
    for key in ("anyOf", "allOf", "oneOf"):
        for i in range(len(node.get(key, []))):
            yield node[key], i


def _canonical(node) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def factor(schemas: dict[str, dict]) -> dict:
    """{"definitions": {...}, kind: schema, ...} with repeated subtrees stored once."""
    doc = {"definitions": {}, **copy.deepcopy(schemas)}
    while True:
        seen: dict[str, list[tuple[object, object, str]]] = {}

        def visit(container, key, name, seen=seen):
            node = container[key]
            if "$ref" in node:
                return
            text = _canonical(node)
            if len(text) >= MIN_FACTOR_CHARS:
                seen.setdefault(text, []).append((container, key, name))
            for sub_container, sub_key in _schema_children(node):
                label = sub_key if isinstance(sub_key, str) else name
                if sub_key == "items":
                    label = f"{name}Item"
                visit(sub_container, sub_key, label)

        for kind in schemas:
            visit(doc, kind, kind)
        for name in list(doc["definitions"]):
            visit(doc["definitions"], name, name)
        repeated = [(len(text), text, places) for text, places in seen.items() if len(places) > 1]
        if not repeated:
            return doc
        _, text, places = max(repeated, key=lambda item: item[:2])
        labels = [label for _, _, label in places]  # named by its most common property name
        base = max(labels, key=lambda label: (labels.count(label), len(label), label))
        name, i = base, 1
        while name in doc["definitions"]:
            i += 1
            name = f"{base}{i}"
        doc["definitions"][name] = json.loads(text)
        for container, key, _ in places:
            container[key] = {"$ref": f"#/definitions/{name}"}


def expand(doc: dict, kind: str) -> dict:
    """The schema of ``kind`` with every ``$ref`` of the excerpt replaced by its definition."""

    def resolve(node):
        if isinstance(node, dict):
            if set(node) == {"$ref"}:
                return resolve(doc["definitions"][node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(doc[kind])


def render(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, indent=1) + "\n"


def main(argv: list[str]) -> int:
    crd_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_CRD_DIR
    schemas = load_crd_schemas(crd_dir)
    doc = factor(schemas)
    for kind, schema in schemas.items():
        assert expand(doc, kind) == schema, kind
    EXCERPT.write_text(render(doc))
    print(f"{EXCERPT}: {EXCERPT.stat().st_size:,} bytes, definitions {sorted(doc['definitions'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
