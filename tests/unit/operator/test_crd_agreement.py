"""The CRD and the pydantic models describe the same resource.

Checked field by field at every level: the same properties, the same required
fields, the same defaults, the same enums and bounds. Every example in
manifests/examples validates against both, and every spec in the invalid table is
refused by the model as it is by the API server.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from jobqueue_operator.effective import InvalidSpecError, OperatorDefaults, resolve
from jobqueue_operator.models import JobQueueSpec
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status_models import JobQueueStatus

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "crds" / "jobqueues.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC_SCHEMA = SCHEMA["properties"]["spec"]
INVALID = yaml.safe_load(
    (ROOT / "tests" / "integration" / "operator" / "invalid_jobqueues.yaml").read_text()
)
EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("jobqueue-*.yaml"))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``, if any."""
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _walk(
    model: type[BaseModel], schema: dict[str, Any], path: str
) -> list[tuple[str, Any, dict[str, Any]]]:
    """(path, field info, crd sub-schema) for every field of every nested model."""
    out = []
    props = schema.get("properties", {})
    for name, info in model.model_fields.items():
        alias = info.alias or name
        sub = props.get(alias, {})
        out.append((f"{path}.{alias}", info, sub))
        inner = _model_of(info.annotation)
        if inner is not None:
            target = sub.get("items", sub) if sub.get("type") == "array" else sub
            out.extend(_walk(inner, target, f"{path}.{alias}"))
    return out


def _nested_pairs(
    model: type[BaseModel], schema: dict[str, Any], path: str
) -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    pairs = [(path, model, schema)]
    for name, info in model.model_fields.items():
        inner = _model_of(info.annotation)
        if inner is not None:
            sub = schema["properties"][info.alias or name]
            target = sub.get("items", sub) if sub.get("type") == "array" else sub
            pairs.extend(_nested_pairs(inner, target, f"{path}.{info.alias or name}"))
    return pairs


@pytest.mark.parametrize(
    ("path", "model", "schema"),
    [
        *_nested_pairs(JobQueueSpec, SPEC_SCHEMA, "spec"),
        *_nested_pairs(JobQueueStatus, SCHEMA["properties"]["status"], "status"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_same_fields_and_required(
    path: str, model: type[BaseModel], schema: dict[str, Any]
) -> None:
    aliases = {info.alias or name for name, info in model.model_fields.items()}
    assert set(schema.get("properties", {})) == aliases, path
    if path.startswith("spec"):
        required = {info.alias or n for n, info in model.model_fields.items() if info.is_required()}
        assert set(schema.get("required", [])) == required, path


def _model_default(info: Any) -> Any:
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    if hasattr(value, "value"):
        return value.value
    return value


def _crd_default(sub: dict[str, Any]) -> Any:
    """The CRD default, with the defaults of its properties applied as the API server does."""
    if "default" not in sub:
        return None
    value = copy.deepcopy(sub["default"])
    if isinstance(value, dict):
        for key, prop in sub.get("properties", {}).items():
            if key not in value and "default" in prop:
                value[key] = _crd_default(prop)
    return value


@pytest.mark.parametrize(
    ("path", "info", "sub"),
    _walk(JobQueueSpec, SPEC_SCHEMA, "spec"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_same_defaults(path: str, info: Any, sub: dict[str, Any]) -> None:
    if info.is_required():
        assert "default" not in sub, path
        return
    assert _crd_default(sub) == _model_default(info), path


@pytest.mark.parametrize(
    ("path", "info", "sub"),
    _walk(JobQueueSpec, SPEC_SCHEMA, "spec"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_field_is_described(path: str, info: Any, sub: dict[str, Any]) -> None:
    assert sub.get("description"), f"{path} has no description (kubectl explain shows nothing)"


def _pydantic_constraints(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Bounds per field from pydantic's JSON schema, with Optional unwrapped."""
    schema = model.model_json_schema(by_alias=True)
    out = {}
    for name, prop in schema.get("properties", {}).items():
        options = [prop, *prop.get("anyOf", [])]
        merged: dict[str, Any] = {}
        for option in options:
            scalar = option
            if option.get("type") == "array":
                merged.update({k: option[k] for k in ("minItems", "maxItems") if k in option})
                scalar = option.get("items", {})
            merged.update(
                {
                    k: scalar[k]
                    for k in (
                        "minimum",
                        "maximum",
                        "exclusiveMinimum",
                        "minLength",
                        "maxLength",
                        "pattern",
                    )
                    if k in scalar
                }
            )
        out[name] = merged
    return out


def _crd_constraints(sub: dict[str, Any]) -> dict[str, Any]:
    out = {k: sub[k] for k in ("minItems", "maxItems") if k in sub}
    target = sub.get("items", sub) if sub.get("type") == "array" else sub
    for k in ("minimum", "maximum", "minLength", "maxLength", "pattern"):
        if k in target:
            out[k] = target[k]
    if target.get("exclusiveMinimum") is True:  # OpenAPI 3.0 style -> JSON Schema style
        out["exclusiveMinimum"] = out.pop("minimum")
    return out


@pytest.mark.parametrize(
    ("path", "model", "schema"),
    _nested_pairs(JobQueueSpec, SPEC_SCHEMA, "spec"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_same_bounds(path: str, model: type[BaseModel], schema: dict[str, Any]) -> None:
    ours = _pydantic_constraints(model)
    for name, sub in schema["properties"].items():
        if sub.get("type") == "object":
            continue
        assert _crd_constraints(sub) == ours[name], f"{path}.{name}"


def test_same_enum_for_priority_class() -> None:
    from jobqueue_operator.models import PriorityClass

    assert SPEC_SCHEMA["properties"]["priorityClass"]["enum"] == [p.value for p in PriorityClass]


def _openapi_to_jsonschema(node: Any) -> Any:
    """Drop Kubernetes extensions; the rest of a structural schema is draft-4 JSON Schema."""
    if isinstance(node, dict):
        return {
            k: _openapi_to_jsonschema(v)
            for k, v in node.items()
            if not k.startswith("x-kubernetes")
        }
    if isinstance(node, list):
        return [_openapi_to_jsonschema(v) for v in node]
    return node


VALIDATOR = jsonschema.Draft4Validator(_openapi_to_jsonschema(SCHEMA))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_crd_and_model(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "jobqueue.dev/v1alpha1"
    VALIDATOR.validate(doc)
    spec = JobQueueSpec.model_validate(doc["spec"])
    resolve(spec, OperatorDefaults(), paused=False)


def test_there_are_examples_for_the_queues_of_the_email_pipeline_and_friends() -> None:
    queues = {q for p in EXAMPLES for q in yaml.safe_load(p.read_text())["spec"]["queues"]}
    for expected in (
        "email:processing:high",
        "email:processing",
        "email:processing:low",
        "email:sending",
        "webhooks",
        "analytics",
        "email:bounces",
    ):
        assert expected in queues


def merge(base: Any, patch: Any) -> Any:
    """RFC 7386 merge: a null in ``patch`` deletes the key."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def test_base_of_the_invalid_table_is_valid() -> None:
    JobQueueSpec.model_validate(INVALID["base"])


def test_base_of_the_invalid_table_resolves_under_its_defaults() -> None:
    defaults = OperatorSettings().with_defaults_from(INVALID["defaults"]).scaling_defaults()
    resolve(JobQueueSpec.model_validate(INVALID["base"]), defaults, paused=False)


@pytest.mark.parametrize(
    "case",
    [c for c in INVALID["cases"] if c.get("layer", "schema") == "schema"],
    ids=lambda c: c["name"],
)
def test_model_rejects_what_the_api_server_rejects(case: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JobQueueSpec.model_validate(merge(INVALID["base"], case["spec"]))


@pytest.mark.parametrize(
    "case",
    [c for c in INVALID["cases"] if c.get("layer") in ("resolved", "policy")],
    ids=lambda c: c["name"],
)
def test_operator_refuses_what_admission_refuses_by_the_defaults(case: dict[str, Any]) -> None:
    """The same defaults (as the operator reads them from the ConfigMap) refuse the same specs."""
    spec = JobQueueSpec.model_validate(merge(INVALID["base"], case["spec"]))
    defaults = OperatorSettings().with_defaults_from(INVALID["defaults"]).scaling_defaults()
    with pytest.raises(InvalidSpecError):
        resolve(spec, defaults, paused=False)
