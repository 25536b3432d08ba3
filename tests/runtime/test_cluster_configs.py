"""Every file of ``cluster_configs/`` and the ``Dockerfile``, checked offline.

- Launcher YAML (``cluster_configs/launcher/``) goes through Ray's own ``prepare_config`` and
  ``validate_config`` (``ray.autoscaler._private.util``), the two steps ``ray up`` starts with.
  Both are offline: ``prepare_config`` merges the provider's ``defaults.yaml`` shipped in the
  wheel (``prepare_local`` for on-premises machines), ``validate_config`` checks the result
  against the wheel's ``ray-schema.json``. The step after them in ``ray up``
  (``commands._bootstrap_config``: the provider's ``bootstrap_config`` and node-type
  resource detection) calls AWS/GCP and is not run here.
- KubeRay manifests (``cluster_configs/kuberay/``) are validated against the v1 OpenAPI schemas
  of the RayCluster and RayJob CRDs (``tests/data/kuberay_crd/schemas.v1.json``, see its
  SOURCE.md), made strict: an object whose schema lists its properties accepts no other key
  (Kubernetes would drop or ignore it), unless the schema says
  ``x-kubernetes-preserve-unknown-fields``.
- On top of both, the project's own rules: the nodes run this project's image at this
  version, token authentication is on with the token from a file or a Secret, checkpoints and
  sweep results go to shared storage, a RayJob's entrypoint is a valid ``librex-alloc run`` or
  ``librex-alloc sweep`` command line.

Broken copies (a typo'd key, a wrong type, a missing or foreign image, ...) must fail.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fnmatch
import importlib.util
import io
import json
import os
import re
import shlex
import tomllib
from functools import cache, lru_cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "cluster_configs"
LAUNCHER_FILES = sorted((CONFIGS / "launcher").glob("*.yaml"))
KUBERAY_FILES = sorted((CONFIGS / "kuberay").glob("*.yaml"))
CRD_DATA = REPO / "tests" / "data" / "kuberay_crd"
# The CRD files themselves (only to check the committed excerpt): beside the clone, as in CI.
CRD_DIR = Path(os.environ.get("KUBERAY_CRD_DIR", REPO.parent / "shared/data/kuberay_crd"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
IMAGE = re.compile(rf"^(?:[a-z0-9.-]+(?::[0-9]+)?/)*librex-alloc:{re.escape(VERSION)}$")
TOKEN_SECRET_KEY = "auth_token"  # the key KubeRay reads from authOptions.secretName


class ConfigError(Exception):
    """A cluster config that would not work as documented."""


def _ray_version() -> str:
    import ray

    return ray.__version__


def _load_excerpt_module():
    spec = importlib.util.spec_from_file_location("make_excerpt", CRD_DATA / "make_excerpt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --------------------------------------------------------------------------- launcher YAML

@lru_cache(maxsize=1)
def _ray_schema_validator():
    """The validator of the wheel's ``ray-schema.json`` (the one ``validate_config`` uses)."""
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def _start_commands(config: dict) -> list[str]:
    return [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"]
            if re.search(r"\bray start\b", c)]


def check_launcher(config: dict) -> dict:
    """Ray's prepare_config + validate_config, then the project's rules; the prepared config.

    Raises ConfigError naming what is wrong.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        # Ray's schema on the file as written first, so that an error names the key the file
        # has wrong (prepare_config's own checks, e.g. of docker, would otherwise speak first).
        _ray_schema_validator().validate(config)
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    except Exception as exc:  # Ray raises ValueError, ValidationError, ClickException, ...
        raise ConfigError(f"Ray rejects it: {type(exc).__name__}: {exc}") from exc

    docker = prepared.get("docker") or {}
    images = {docker.get("head_image", docker.get("image")),
              docker.get("worker_image", docker.get("image"))}
    for image in sorted(images, key=str):
        if not isinstance(image, str) or not IMAGE.match(image):
            raise ConfigError(f"docker image {image!r} is not this project's image "
                              f"(<registry>/librex-alloc:{VERSION}, see the Dockerfile)")
    starts = _start_commands(prepared)
    if len(starts) < 2:
        raise ConfigError("no `ray start` for the head and the workers")
    for command in starts:
        if not re.search(r"(^|[;&\s])RAY_AUTH_MODE=token\s+ray start\b", command):
            raise ConfigError(f"token authentication is off in {command!r} "
                              "(run `RAY_AUTH_MODE=token ray start ...`)")
    mounts = prepared.get("file_mounts") or {}
    if "~/.ray/auth_token" not in mounts:
        raise ConfigError("the token file ~/.ray/auth_token is not in file_mounts")
    if not any(re.fullmatch(r"--volume[ =](/[^:]+):\1", o) for o in docker.get("run_options", [])):
        raise ConfigError("no shared storage volume in docker.run_options "
                          "(--volume /mnt/librex:/mnt/librex)")
    merged = prepared["head_setup_commands"] + prepared["worker_setup_commands"]
    for command in merged:
        if re.search(r"pip3? install\b.*\bray\b", command):
            raise ConfigError(f"a setup command installs another Ray: {command!r}")
    return prepared


def _launcher(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_yaml_passes_rays_checks(path):
    prepared = check_launcher(_launcher(path))
    # What ray up would start: the head type and at least one worker type, our image only.
    assert prepared["head_node_type"] in prepared["available_node_types"]
    assert prepared["max_workers"] >= 1
    assert prepared["setup_commands"] == []


def test_every_provider_has_a_launcher_yaml():
    providers = {_launcher(p)["provider"]["type"] for p in LAUNCHER_FILES}
    assert providers == {"local", "aws", "gcp"}


def _key_paths(node, prefix=()):
    """Every (path to a mapping, key) in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix, key
            yield from _key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _key_paths(value, (*prefix, i))


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _rename(doc, path, key, new):
    doc = copy.deepcopy(doc)
    parent = _get(doc, path)
    parent[new] = parent.pop(key)
    return doc


# Maps whose keys the launcher schema leaves to the cloud provider (checked at launch by AWS/GCP,
# not offline): provider settings, a node's node_config and resources, file_mounts' paths.
LAUNCHER_FREE_FORM = ("provider", "node_config", "resources", "file_mounts")


def _launcher_typo_cases():
    for path in LAUNCHER_FILES:
        config = _launcher(path)
        for where, key in _key_paths(config):
            if where[:1] == ("available_node_types",) and len(where) == 1:
                continue  # a node type's name is the user's choice
            if any(part in LAUNCHER_FREE_FORM for part in (*where, key)):
                continue
            label = ".".join(map(str, (*where, key)))
            yield pytest.param(path, where, key, id=f"{path.stem}:{label}")


@pytest.mark.parametrize(("path", "where", "key"), list(_launcher_typo_cases()))
def test_launcher_typod_key_fails(path, where, key):
    broken = _rename(_launcher(path), where, key, key + "x")
    with pytest.raises(ConfigError, match=re.escape(key + "x")):
        check_launcher(broken)


def _set(path, value):
    def mutate(doc):
        _get(doc, path[:-1])[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(doc):
        del _get(doc, path[:-1])[path[-1]]
    return mutate


def _edit_start_commands(doc):
    doc["worker_start_ray_commands"] = [c.replace("RAY_AUTH_MODE=token ", "")
                                        for c in doc["worker_start_ray_commands"]]


LAUNCHER_BREAKS = {
    # name: (mutation, what the error must say)
    "wrong type (pull_before_run)": (_set(("docker", "pull_before_run"), "yes"),
                                     "'yes' is not of type 'boolean'"),
    "wrong type (idle_timeout_minutes)": (_set(("idle_timeout_minutes",), "ten"),
                                          "'ten' is not of type 'number'"),
    "wrong type (setup_commands)": (_set(("setup_commands",), "pip install ."),
                                    "is not of type 'array'"),
    "missing image": (_delete(("docker", "image")), "Must provide a container & image name"),
    "foreign image": (_set(("docker", "image"), "rayproject/ray:2.60.0-py311"),
                      "is not this project's image"),
    "old image": (_set(("docker", "image"), "registry.example.com/librex-alloc:0.0.9"),
                  "is not this project's image"),
    "token auth off": (_edit_start_commands, "token authentication is off"),
    "no token file": (_set(("file_mounts",), {}), "auth_token is not in file_mounts"),
    "no shared volume": (_set(("docker", "run_options"), ["--ulimit nofile=65536:65536"]),
                         "no shared storage volume"),
}
# Cloud providers' defaults.yaml install another Ray wheel in setup_commands: a file that drops
# its own (empty) list gets them back. (The on-premises defaults have none.)
CLOUD_BREAKS = {
    "provider defaults back": (_delete(("setup_commands",)), "installs another Ray"),
}


def _launcher_break_cases():
    for path in LAUNCHER_FILES:
        cloud = _launcher(path)["provider"]["type"] != "local"
        for name, case in {**LAUNCHER_BREAKS, **(CLOUD_BREAKS if cloud else {})}.items():
            yield pytest.param(path, name, case, id=f"{path.stem}:{name}")


@pytest.mark.parametrize(("path", "name", "case"), list(_launcher_break_cases()))
def test_launcher_broken_copy_fails(path, name, case):
    mutate, message = case
    config = _launcher(path)
    check_launcher(config)  # the file itself passes: the failure is the mutation's
    broken = copy.deepcopy(config)
    mutate(broken)
    if broken == config:
        pytest.fail(f"{name}: the mutation changed nothing in {path.name}")
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_launcher(broken)


def test_launcher_check_uses_rays_schema():
    """A key Ray's schema does not know fails in Ray's own step, before the project rules."""
    config = _launcher(CONFIGS / "launcher" / "aws.yaml")
    config["docker"]["imagee"] = config["docker"]["image"]
    with pytest.raises(ConfigError, match=r"^Ray rejects it: ValidationError: .*imagee"):
        check_launcher(config)


# --------------------------------------------------------------------------- KubeRay manifests

@lru_cache(maxsize=1)
def _excerpt() -> dict:
    return json.loads((CRD_DATA / "schemas.v1.json").read_text())


def _schema_children(node: dict):
    """(container, key) of every sub-schema of a schema node (JSON Schema draft 4 positions)."""
    for key in ("properties", "definitions", "patternProperties"):
        for name in node.get(key) or {}:
            yield node[key], name
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            yield node, key
    for key in ("anyOf", "allOf", "oneOf"):
        for i in range(len(node.get(key, []))):
            yield node[key], i


def strict(schema: dict) -> dict:
    """A copy of a CRD schema in which an object that lists its properties accepts no other
    key, unless it is marked ``x-kubernetes-preserve-unknown-fields``."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for container, key in _schema_children(node):
            visit(container[key])

    visit(schema)
    return schema


def _cel_rule(validator, rules, instance, schema):
    """CEL rules (``x-kubernetes-validations``) run in the API server only: a manifest that
    reaches one is reported instead of passing unchecked."""
    import jsonschema

    yield jsonschema.ValidationError(
        f"reaches a field with CEL rules that cannot be checked offline: "
        f"{[r.get('rule') for r in rules]}")


@cache
def _validator(kind: str):
    import jsonschema

    excerpt = _excerpt()
    root = strict({"definitions": excerpt["definitions"], **excerpt[kind]})
    cls = jsonschema.validators.extend(jsonschema.Draft4Validator,
                                       {"x-kubernetes-validations": _cel_rule})
    cls.check_schema(root)
    return cls(root)


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def _pod_templates(doc: dict):
    spec = _cluster_spec(doc)
    yield "headGroupSpec", spec["headGroupSpec"]["template"]
    for group in spec.get("workerGroupSpecs", []):
        yield f"workerGroupSpecs[{group.get('groupName')}]", group["template"]
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        yield "submitterPodTemplate", doc["spec"]["submitterPodTemplate"]


OBJECT_META = {"name", "namespace", "labels", "annotations"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Plain Kubernetes objects beside the KubeRay ones: the CRD does not describe them, so only
# the fields these files use are accepted (a typo there fails too).
CORE_KINDS = {
    "PersistentVolumeClaim": {
        "": {"apiVersion", "kind", "metadata", "spec"},
        "spec": {"accessModes", "storageClassName", "resources", "volumeMode"},
        "spec.resources": {"requests"},
    },
    "ConfigMap": {"": {"apiVersion", "kind", "metadata", "data"}},
}


def _check_metadata(doc: dict) -> None:
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise ConfigError(f"metadata is missing (keys {sorted(doc)})")
    if unknown := set(meta) - OBJECT_META:
        raise ConfigError(f"metadata: unknown keys {sorted(unknown)}")
    if not isinstance(meta.get("name"), str):
        raise ConfigError("metadata.name is missing")
    if not DNS_1123.match(meta["name"]) or len(meta["name"]) > 63:
        raise ConfigError(f"metadata.name {meta['name']!r} is not a DNS-1123 name")


def _check_core(doc: dict) -> None:
    rules = CORE_KINDS[doc["kind"]]
    if doc.get("apiVersion") != "v1":
        raise ConfigError(f"{doc['kind']}: apiVersion must be v1")
    _check_metadata(doc)
    for where, allowed in rules.items():
        node = _get(doc, where.split(".")) if where else doc
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: expected a mapping")
        if unknown := set(node) - allowed:
            raise ConfigError(f"{doc['kind']} {where or '(top)'}: unknown keys {sorted(unknown)}")
    if doc["kind"] == "PersistentVolumeClaim":
        if "ReadWriteMany" not in doc["spec"].get("accessModes", []):
            raise ConfigError("the shared volume must be ReadWriteMany (every Ray pod mounts it)")
        if not isinstance(doc["spec"]["resources"]["requests"].get("storage"), str):
            raise ConfigError("spec.resources.requests.storage must be a quantity string")
    if doc["kind"] == "ConfigMap":
        data = doc.get("data")
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError("ConfigMap data must map names to strings")
        for name, text in data.items():
            if name.endswith(".json"):
                try:
                    space = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"ConfigMap {name}: not JSON: {exc}") from exc
                _check_sweep_space(name, space)


def _check_sweep_space(name: str, space: dict) -> None:
    """A search space is valid for ``librex-alloc sweep`` (every grid cell builds), when the
    sweep's space module is installed."""
    try:
        from librex_alloc.sweep_space import SweepSpace
    except ImportError:
        return
    try:
        SweepSpace.from_dict(space).cells("grid")
    except Exception as exc:
        raise ConfigError(f"ConfigMap {name}: not a valid sweep space: {exc}") from exc


def _command_parser(name: str) -> argparse.ArgumentParser | None:
    """The parser of the installed ``librex-alloc NAME`` plug-in command (None: not installed)."""
    from librex_alloc.cli import _plugins

    for ep in _plugins():
        if ep.name == name:
            sub = argparse.ArgumentParser(prog="librex-alloc").add_subparsers()
            return ep.load()(sub)[0]
    return None


def check_entrypoint(entrypoint: str, mounts: set[str]) -> argparse.Namespace:
    """A RayJob entrypoint is ``librex-alloc run|sweep ...`` with options the command accepts,
    writing under a volume the head pod mounts."""
    words = shlex.split(entrypoint)
    if words[:1] != ["librex-alloc"] or len(words) < 2 or words[1] not in ("run", "sweep"):
        raise ConfigError(f"entrypoint {entrypoint!r} is not `librex-alloc run|sweep ...`")
    parser = _command_parser(words[1])
    if parser is None:
        pytest.skip(f"`librex-alloc {words[1]}` is not installed here: its options are not "
                    "checked")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(words[2:])
    except SystemExit as exc:
        raise ConfigError(f"`{entrypoint}`: {stderr.getvalue().strip().splitlines()[-1]}") from exc
    for option in ("out", "checkpoint_dir", "storage", "space"):
        value = getattr(args, option, None)
        if value is None or "://" in str(value):
            continue
        if not any(str(value).startswith(m.rstrip("/") + "/") for m in mounts):
            raise ConfigError(f"--{option.replace('_', '-')} {value} is on no volume of the "
                              f"head pod ({sorted(mounts)}): it would not outlive the pod")
    return args


def _kuberay_names(kind: str) -> set[str]:
    return {d["metadata"]["name"] for p in KUBERAY_FILES for d in yaml.safe_load_all(p.read_text())
            if d and d.get("kind") == kind}


def check_kuberay(doc: dict) -> None:
    """Schema (strict) and project rules for one manifest; raises ConfigError."""
    if not isinstance(doc, dict) or "kind" not in doc:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"not a Kubernetes object: no kind (keys {keys})")
    kind = doc["kind"]
    if kind in CORE_KINDS:
        return _check_core(doc)
    if kind not in ("RayCluster", "RayJob"):
        raise ConfigError(f"unexpected kind {kind!r}")
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(map(str, e.path)))
    if errors:
        raise ConfigError("; ".join(
            f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:5]))
    if doc.get("apiVersion") != "ray.io/v1":
        raise ConfigError(f"apiVersion {doc.get('apiVersion')!r}: these manifests use ray.io/v1")
    _check_metadata(doc)

    spec = _cluster_spec(doc)
    if spec.get("rayVersion") != _ray_version():
        raise ConfigError(f"rayVersion {spec.get('rayVersion')!r} is not the Ray the project "
                          f"pins ({_ray_version()})")
    auth = spec.get("authOptions") or {}
    if auth.get("mode") != "token" or not auth.get("secretName"):
        raise ConfigError("token authentication is off: authOptions needs mode: token and the "
                          "secretName of the Secret holding the token")
    if "Secret" in {d.get("kind") for p in KUBERAY_FILES for d in yaml.safe_load_all(p.read_text())
                    if d}:
        raise ConfigError("a Secret is committed: the token must be created with kubectl")
    claims, config_maps = _kuberay_names("PersistentVolumeClaim"), _kuberay_names("ConfigMap")
    head_mounts: set[str] = set()
    for where, template in _pod_templates(doc):
        pod = template["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim is not None and claim not in claims:
                raise ConfigError(f"{where}: volume {volume['name']} claims {claim!r}, which no "
                                  "file in cluster_configs/kuberay defines")
            cm = volume.get("configMap", {}).get("name")
            if cm is not None and cm not in config_maps:
                raise ConfigError(f"{where}: volume {volume['name']} uses ConfigMap {cm!r}, "
                                  "which no file in cluster_configs/kuberay defines")
        for container in pod["containers"]:
            image = container.get("image")
            if not isinstance(image, str) or not IMAGE.match(image):
                raise ConfigError(f"{where}: container {container['name']!r} image {image!r} is "
                                  f"not this project's image (<registry>/librex-alloc:{VERSION})")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    raise ConfigError(f"{where}: mount of unknown volume {mount['name']!r}")
                if where == "headGroupSpec":
                    head_mounts.add(mount["mountPath"])
        if not any("persistentVolumeClaim" in v for v in volumes.values()):
            raise ConfigError(f"{where}: no shared volume (checkpoints and sweep storage)")
    if kind == "RayJob":
        check_entrypoint(doc["spec"].get("entrypoint", ""), head_mounts)


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _kuberay_docs():
    for path in KUBERAY_FILES:
        for i in range(len(_documents(path))):
            yield pytest.param(path, i, id=f"{path.stem}[{i}]")


@pytest.mark.parametrize(("path", "index"), list(_kuberay_docs()))
def test_kuberay_manifest_passes(path, index):
    check_kuberay(_documents(path)[index])


def test_kuberay_manifests_cover_run_and_sweep():
    docs = [d for p in KUBERAY_FILES for d in _documents(p)]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "RayCluster", "RayJob", "RayJob"]
    jobs = [d for d in docs if d["kind"] == "RayJob"]
    commands = sorted(shlex.split(d["spec"]["entrypoint"])[1] for d in jobs)
    assert commands == ["run", "sweep"]


def _ray_docs():
    for path in KUBERAY_FILES:
        for i, doc in enumerate(_documents(path)):
            if doc["kind"] in ("RayCluster", "RayJob"):
                yield path, i, doc


# Maps whose keys the CRD leaves open (string maps: labels, Ray's start parameters, resource
# quantities); their keys are the user's choice.
KUBERAY_FREE_FORM = ("labels", "annotations", "rayStartParams", "requests", "limits")


def _kuberay_typo_cases():
    for path, i, doc in _ray_docs():
        for where, key in _key_paths(doc):
            if where == ("metadata", "labels") or any(p in KUBERAY_FREE_FORM for p in where):
                continue
            label = ".".join(map(str, where + (key,)))
            yield pytest.param(path, i, where, key, id=f"{path.stem}:{label}")


@pytest.mark.parametrize(("path", "index", "where", "key"), list(_kuberay_typo_cases()))
def test_kuberay_typod_key_fails(path, index, where, key):
    broken = _rename(_documents(path)[index], where, key, key + "x")
    with pytest.raises(ConfigError, match=re.escape(key + "x")):
        check_kuberay(broken)


def _head_container(doc):
    return _cluster_spec(doc)["headGroupSpec"]["template"]["spec"]["containers"][0]


def _worker_group(doc):
    return _cluster_spec(doc)["workerGroupSpecs"][0]


def _edit(fn):
    def mutate(doc):
        fn(doc)
    return mutate


KUBERAY_BREAKS = {
    "wrong type (replicas)": (_edit(lambda d: _worker_group(d).update(replicas="2")),
                              "'2' is not of type 'integer'"),
    "wrong type (containerPort)": (
        _edit(lambda d: _head_container(d)["ports"][0].update(containerPort="6379")),
        "'6379' is not of type 'integer'"),
    "wrong type (rayStartParams value)": (
        _edit(lambda d: _cluster_spec(d)["headGroupSpec"]["rayStartParams"].update(
            {"num-cpus": 4})), "4 is not of type 'string'"),
    "wrong enum (auth mode)": (_edit(lambda d: _cluster_spec(d)["authOptions"].update(
        mode="tokens")), "'tokens' is not one of ['disabled', 'token']"),
    "missing image (head)": (_edit(lambda d: _head_container(d).pop("image")),
                             "image None is not this project's image"),
    "missing image (workers)": (
        _edit(lambda d: _worker_group(d)["template"]["spec"]["containers"][0].pop("image")),
        "image None is not this project's image"),
    "foreign image": (_edit(lambda d: _head_container(d).update(
        image="rayproject/ray:2.60.0-py311")), "is not this project's image"),
    "missing required key (groupName)": (_edit(lambda d: _worker_group(d).pop("groupName")),
                                         "'groupName' is a required property"),
    "token auth off": (_edit(lambda d: _cluster_spec(d).pop("authOptions")),
                       "token authentication is off"),
    "no secret": (_edit(lambda d: _cluster_spec(d)["authOptions"].pop("secretName")),
                  "token authentication is off"),
    "other Ray": (_edit(lambda d: _cluster_spec(d).update(rayVersion="2.59.0")),
                  "is not the Ray the project pins"),
    "old apiVersion": (_edit(lambda d: d.update(apiVersion="ray.io/v1alpha1")),
                       "these manifests use ray.io/v1"),
    "unknown volume claim": (
        _edit(lambda d: _cluster_spec(d)["headGroupSpec"]["template"]["spec"]["volumes"][0][
            "persistentVolumeClaim"].update(claimName="librex-shard")),
        "which no file in cluster_configs/kuberay defines"),
}

RAYJOB_BREAKS = {
    "unknown option": (_edit(lambda d: d["spec"].update(
        entrypoint=d["spec"]["entrypoint"] + " --agentz 5")), "unrecognized arguments"),
    "not our command": (_edit(lambda d: d["spec"].update(entrypoint="python train.py")),
                        "is not `librex-alloc run|sweep"),
    "wrong type (shutdownAfterJobFinishes)": (
        _edit(lambda d: d["spec"].update(shutdownAfterJobFinishes="true")),
        "'true' is not of type 'boolean'"),
    "output off the volume": (
        _edit(lambda d: d["spec"].update(entrypoint=d["spec"]["entrypoint"].replace(
            "/mnt/librex/", "/tmp/"))), "is on no volume of the head pod"),
}


def _kuberay_break_cases():
    for path, i, doc in _ray_docs():
        breaks = {**KUBERAY_BREAKS, **(RAYJOB_BREAKS if doc["kind"] == "RayJob" else {})}
        for name in breaks:
            yield pytest.param(path, i, breaks[name], id=f"{path.stem}:{name}")


@pytest.mark.parametrize(("path", "index", "case"), list(_kuberay_break_cases()))
def test_kuberay_broken_copy_fails(path, index, case):
    mutate, message = case
    doc = _documents(path)[index]
    try:
        check_kuberay(doc)  # the file itself passes: the failure is the mutation's
    except pytest.skip.Exception:
        if doc["kind"] != "RayJob":
            raise
    broken = copy.deepcopy(doc)
    mutate(broken)
    assert broken != doc, "the mutation changed nothing"
    try:
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_kuberay(broken)
    except pytest.skip.Exception:
        # the command is not installed: only breaks the schema or the project rules catch
        # before the entrypoint is parsed can be checked
        if message in ("unrecognized arguments", "is on no volume of the head pod"):
            raise
        raise AssertionError(f"{message!r} was not caught before the entrypoint") from None


def test_cel_rules_are_not_skipped():
    """A field the CRD guards with a CEL rule (checked by the API server only) is reported."""
    doc = _documents(CONFIGS / "kuberay" / "raycluster.yaml")[0]
    doc["spec"]["gcsFaultToleranceOptions"] = {"redisAddress": "redis:6379",
                                              "backend": "redis"}
    with pytest.raises(ConfigError, match="CEL rules that cannot be checked offline"):
        check_kuberay(doc)


def test_strict_schema_still_accepts_open_maps():
    """Strictness is added where the CRD lists properties, not to maps the CRD leaves open."""
    doc = _documents(CONFIGS / "kuberay" / "raycluster.yaml")[0]
    doc["metadata"]["labels"]["team"] = "allocation"
    doc["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = "0"
    check_kuberay(doc)


def test_excerpt_is_the_crd_schemas():
    """The committed excerpt expands to exactly the v1 schemas of the CRD files in shared/."""
    if not (CRD_DIR / "ray.io_rayclusters.yaml").is_file():
        pytest.skip(f"the KubeRay CRD files are not at {CRD_DIR} (set KUBERAY_CRD_DIR): the "
                    "committed excerpt is used as it is")
    make_excerpt = _load_excerpt_module()
    schemas = make_excerpt.load_crd_schemas(CRD_DIR)  # checks the sha256 of SOURCE.md
    excerpt = _excerpt()
    for kind, schema in schemas.items():
        assert make_excerpt.expand(excerpt, kind) == schema, kind
    assert make_excerpt.render(make_excerpt.factor(schemas)) == \
        (CRD_DATA / "schemas.v1.json").read_text()


def test_excerpt_keeps_the_schema_checks():
    """Sanity of the committed excerpt: the fields these manifests rely on are described."""
    make_excerpt = _load_excerpt_module()
    job = make_excerpt.expand(_excerpt(), "RayJob")["properties"]["spec"]
    cluster = make_excerpt.expand(_excerpt(), "RayCluster")["properties"]["spec"]
    assert job["properties"]["rayClusterSpec"] == cluster
    assert cluster["properties"]["authOptions"]["properties"]["mode"]["enum"] == [
        "disabled", "token"]
    assert cluster["properties"]["workerGroupSpecs"]["items"]["required"] == [
        "groupName", "maxReplicas", "minReplicas", "template"]


# --------------------------------------------------------------------------- Dockerfile

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _dockerfile(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile, continuation lines joined."""
    out = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def _copy_sources(steps) -> list[str]:
    sources = []
    for instruction, rest in steps:
        if instruction == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            sources += [w.rstrip("/") for w in words[:-1]]
    return sources


def _dockerignored(patterns: str, path: str) -> bool:
    """Whether a .dockerignore leaves ``path`` (relative, / separated) out of the build
    context: patterns in order, the last match wins, ``!`` re-includes, a pattern that matches
    a folder covers what is inside it, ``**/`` matches at any depth."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for raw in patterns.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def check_dockerfile(text: str, ignore: str) -> None:
    """The image installs this project (not editable) on the Ray the project pins, from a
    build context that holds what it copies; raises ConfigError."""
    steps = _dockerfile(text)
    args = dict(a.split("=", 1) for i, a in steps if i == "ARG" and "=" in a)
    froms = [a for i, a in steps if i == "FROM"]
    if len(froms) != 1:
        raise ConfigError(f"{len(froms)} FROM lines (one stage expected)")
    base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), froms[0])
    if base != f"rayproject/ray:{_ray_version()}-py311":
        raise ConfigError(f"base image {base!r} is not rayproject/ray:{_ray_version()}-py311")
    copied = set(_copy_sources(steps))
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *(p.rstrip("*") for p in include)}
    if missing := needed - copied:
        raise ConfigError(f"the image does not copy {sorted(missing)}")
    runs = " && ".join(a for i, a in steps if i == "RUN")
    if not re.search(r"pip install [^&]*[\"']\.(\[[a-z,]+\])?[\"']", runs):
        raise ConfigError("no `pip install \".\"` of the project")
    if re.search(r"pip install [^&]*(-e |--editable)", runs):
        raise ConfigError("an editable install (the image keeps no source checkout)")
    for script in PYPROJECT["project"]["scripts"]:
        if not re.search(rf"\b{script} --version\b", runs):
            raise ConfigError(f"the build does not run `{script} --version` (a missing console "
                              "script would go unnoticed until a job fails)")
    plugins = PYPROJECT["project"]["entry-points"]["librex_alloc.commands"]
    for command in re.findall(r"librex-alloc (\w+) --help", runs):
        if command not in plugins:
            raise ConfigError(f"the build checks `librex-alloc {command}`, which pyproject.toml "
                              "does not register")
    if "RAY_AUTH_MODE=token" not in [a for i, a in steps if i == "ENV"]:
        raise ConfigError("the image does not set RAY_AUTH_MODE=token")
    for source in copied:
        paths = [source]
        if (REPO / source).is_dir():
            paths += [str(p.relative_to(REPO)) for p in (REPO / source).rglob("*.py")]
        for path in paths:
            if _dockerignored(ignore, path):
                raise ConfigError(f".dockerignore leaves out {path}, which the image copies")
    for left_out in (".venv/bin/python", ".git/HEAD", "out/run/rounds.parquet", "tests/conftest.py",
                     "results/RESULTS.md", "agents/__pycache__/shard.cpython-311.pyc"):
        if not _dockerignored(ignore, left_out):
            raise ConfigError(f".dockerignore sends {left_out} to the build context")


def test_dockerfile_installs_the_project_on_the_pinned_ray():
    check_dockerfile(DOCKERFILE.read_text(), DOCKERIGNORE.read_text())


DOCKERFILE_BREAKS = {
    # name: (old, new, what the error must say); old must be in the Dockerfile
    "other Ray": ("2.60.0-py311", "2.59.0-py311", "is not rayproject/ray:"),
    "package not copied": ("COPY --chown=1000:100 coordinator ./coordinator\n", "",
                           "does not copy ['coordinator']"),
    "editable install": ('pip install --no-cache-dir ".[client]"',
                         'pip install --no-cache-dir -e ".[client]"', "an editable install"),
    "no install": ('pip install --no-cache-dir ".[client]"', "true", "no `pip install"),
    "script not checked": ("librex-alloc --version", "true", "does not run `librex-alloc"),
    "unregistered command": ("librex-alloc run --help", "librex-alloc runn --help",
                             "which pyproject.toml does not register"),
    "token auth off": ("ENV RAY_AUTH_MODE=token", "ENV RAY_AUTH_MODE=disabled",
                       "does not set RAY_AUTH_MODE=token"),
}
DOCKERIGNORE_BREAKS = {
    "package left out": ("!coordinator/\n", "", "leaves out coordinator"),
    "everything sent": ("*\n", "", "sends .venv/bin/python"),
}


@pytest.mark.parametrize("name", [*DOCKERFILE_BREAKS, *DOCKERIGNORE_BREAKS])
def test_dockerfile_broken_copy_fails(name):
    text, ignore = DOCKERFILE.read_text(), DOCKERIGNORE.read_text()
    if name in DOCKERFILE_BREAKS:
        old, new, message = DOCKERFILE_BREAKS[name]
        assert old in text, old
        text = text.replace(old, new)
    else:
        old, new, message = DOCKERIGNORE_BREAKS[name]
        assert old in ignore, old
        ignore = ignore.replace(old, new, 1)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_dockerfile(text, ignore)


def test_dockerfile_entry_points_exist():
    """The console script and the command plug-ins the image checks resolve to callables."""
    from importlib import import_module

    targets = [*PYPROJECT["project"]["scripts"].values(),
               *PYPROJECT["project"]["entry-points"]["librex_alloc.commands"].values()]
    for target in targets:
        module, _, attr = target.partition(":")
        assert callable(getattr(import_module(module), attr)), target


# --------------------------------------------------------------------------- extras

def test_pyproject_declares_the_extras_of_the_documented_workflows():
    from packaging.requirements import Requirement

    ray_version = _ray_version()
    deps = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    (ray,) = [r for r in deps if r.name == "ray"]
    assert {"default", "tune"} <= ray.extras  # Jobs, state API, dashboard, metrics; sweeps
    assert ray.specifier.contains(ray_version) and not ray.specifier.contains("2.61.0")
    extras = PYPROJECT["project"]["optional-dependencies"]
    (client,) = [Requirement(r) for r in extras["client"]]
    assert client.name == "ray" and "client" in client.extras
    assert client.specifier.contains(ray_version) and not client.specifier.contains("2.61.0")
    assert [Requirement(r).name for r in extras["optuna"]] == ["optuna"]
