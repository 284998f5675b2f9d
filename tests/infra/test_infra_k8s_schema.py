"""Every Kubernetes object the program declares is valid for the newest Kubernetes known.

Typed resources are recorded with their inputs in the API's camelCase, so the inputs plus
apiVersion/kind are the manifest. strict=True refuses unknown fields as well.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from pulumi_harness import STACKS, Declared, declared, unwrap

KUBERNETES_VERSION = kubernetes_validate.latest_version()
NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:")


def manifest(resource: Declared) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        # The mocks carry every number as a float; the API takes integers where it says so.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    return clean(unwrap(resource.inputs))


def _objects(stack: str) -> list[Declared]:
    return [
        d
        for d in declared(stack).declared
        if d.type.startswith("kubernetes:") and not d.type.startswith(NOT_OBJECTS)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_validates_strictly(stack: str):
    objects = _objects(stack)
    assert len(objects) >= 30
    for resource in objects:
        document = manifest(resource)
        assert document["apiVersion"] and document["kind"], resource.name
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_check_can_fail():
    jobs = [d for d in _objects("kind") if d.type.endswith(":Job")]
    (job,) = [j for j in jobs if j.name == "database-setup"]
    document = manifest(job)
    document["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["nam"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
