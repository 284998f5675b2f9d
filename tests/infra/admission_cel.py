"""A ValidatingAdmissionPolicy evaluated the way the API server does, with a real CEL
evaluator (cel-python), for the tests of the program's admission policies.

What is modelled: the policy's matchConstraints (namespace labels, operation, resource and
subresource), its variables (`variables.<name>`, in order), and its validations with
failurePolicy Fail: a validation that is false refuses the request with its message, one
that cannot be evaluated refuses it too (reported as such, so a test can tell the two apart).
Kubernetes-only CEL libraries are not available; the policies keep to standard CEL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from kubernetes.client import ApiClient

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Request:
    """An admission request: `object` is the pod (CREATE/UPDATE) or the exec/attach options."""

    namespace: str
    operation: str  # CREATE, UPDATE, CONNECT
    resource: str  # "pods", "pods/exec", "pods/attach"
    object: dict[str, Any]


def as_json(obj: Any) -> dict[str, Any]:
    """The JSON the API server sees (camelCase, no unset fields) of a client model or dict."""
    return obj if isinstance(obj, dict) else ApiClient().sanitize_for_serialization(obj)


def pod_request(pod: Any, operation: str = "CREATE") -> Request:
    document = as_json(pod)
    return Request(document["metadata"]["namespace"], operation, "pods", document)


def exec_request(namespace: str, container: str | None, attach: bool = False) -> Request:
    options: dict[str, Any] = {
        "kind": "PodAttachOptions" if attach else "PodExecOptions",
        "apiVersion": "v1",
        "stdout": True,
    }
    if not attach:
        options["command"] = ["cat", "/airflow/xcom/return.json"]
    if container is not None:
        options["container"] = container
    resource = "pods/attach" if attach else "pods/exec"
    return Request(namespace, "CONNECT", resource, options)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector not modelled: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def matches(spec: dict[str, Any], request: Request) -> bool:
    """Whether the policy's matchConstraints select the request (namespaces are labelled
    with their name, as Kubernetes labels every namespace)."""
    constraints = spec["matchConstraints"]
    labels = {NAMESPACE_NAME_LABEL: request.namespace}
    if not _selects(constraints.get("namespaceSelector", {}), labels):
        return False
    return any(
        "" in rule["apiGroups"]
        and request.operation in rule["operations"]
        and request.resource in rule["resources"]
        for rule in constraints["resourceRules"]
    )


_ENV = celpy.Environment()


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    return _ENV.program(_ENV.compile(expression)).evaluate(activation)


def refusals(spec: dict[str, Any], request: Request) -> list[str]:
    """The messages the policy refuses `request` with; [] when admitted or not matched."""
    if not matches(spec, request):
        return []
    activation: dict[str, Any] = {"object": celpy.json_to_cel(request.object)}
    variables: dict[celtypes.StringType, Any] = {}
    try:
        for variable in spec.get("variables", []):
            activation["variables"] = celtypes.MapType(variables)
            variables[celtypes.StringType(variable["name"])] = _evaluate(
                variable["expression"], activation
            )
    except celpy.CELEvalError as error:
        return [f"variable failed to evaluate: {error}"]
    activation["variables"] = celtypes.MapType(variables)
    refused = []
    for validation in spec["validations"]:
        try:
            result = _evaluate(validation["expression"], activation)
        except celpy.CELEvalError as error:
            refused.append(f"failed to evaluate ({error}): {validation['message']}")
            continue
        assert isinstance(result, celtypes.BoolType), f"not a bool: {validation['expression']}"
        if not result:
            refused.append(validation["message"])
    return refused


def all_refusals(specs: dict[str, dict[str, Any]], request: Request) -> list[str]:
    return [message for spec in specs.values() for message in refusals(spec, request)]
