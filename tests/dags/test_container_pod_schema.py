"""Every container task's pod is a valid v1 Pod for the newest Kubernetes the validator knows.

strict=True rejects unknown fields too, so a misspelt key fails here rather than being
dropped silently by the API server.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

KUBERNETES_VERSION = kubernetes_validate.latest_version()


def _document(pod: k8s.V1Pod) -> dict:
    """The pod as the JSON the API server receives: camelCase keys, no None values."""
    return ApiClient().sanitize_for_serialization(pod)


@pytest.mark.usefixtures("container_task")
def test_pod_validates_strictly(container_pod: k8s.V1Pod):
    document = _document(container_pod)
    assert document["apiVersion"] == "v1" and document["kind"] == "Pod"
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.usefixtures("container_task")
def test_validator_rejects_a_broken_copy(container_pod: k8s.V1Pod):
    """The check above can fail: the same pod with a non-string argument does not validate."""
    document = _document(container_pod)
    document["spec"]["containers"][0]["args"] = ["--epochs", 15]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.usefixtures("container_task")
def test_validator_rejects_unknown_fields(container_pod: k8s.V1Pod):
    document = _document(container_pod)
    document["spec"]["containers"][0]["resource"] = {"limits": {"cpu": "1"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
