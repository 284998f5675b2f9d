"""The serving manifests: valid for Kubernetes (strict schema), restricted, rollout-safe."""

from __future__ import annotations

import kubernetes_validate
import pytest

from deployer.manifests import (
    VERSION_LABEL,
    ServingSpec,
    deployment_manifest,
    resource_name,
    service_manifest,
    service_url,
)
from deployer.targets import Revision
from tests.pod_security_profile import restricted_violations

# The newest Kubernetes schema the installed kubernetes-validate ships.
SCHEMA_VERSION = kubernetes_validate.latest_version()

SPEC = ServingSpec(
    namespace="ml-serving",
    image="localhost/ml-platform/deployer:dev",
    env={"MLFLOW_TRACKING_URI": "http://mlflow.mlflow.svc.cluster.local:5000"},
    env_secret="ml-storage-credentials",
    service_account="model-server",
    cpu_limit="2",
)
REVISION = Revision("Churn Classifier", "12")


def container(manifest: dict) -> dict:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize(
    "manifest",
    [deployment_manifest(SPEC, REVISION), service_manifest(SPEC, REVISION.model_name)],
    ids=["deployment", "service"],
)
def test_manifests_validate_strictly(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)


def test_strict_validation_catches_a_misspelled_field() -> None:
    manifest = deployment_manifest(SPEC, REVISION)
    container(manifest)["readinesProbe"] = container(manifest).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)


def test_deployment_runs_restricted_and_rolls_without_downtime() -> None:
    manifest = deployment_manifest(SPEC, REVISION)
    pod = manifest["spec"]["template"]["spec"]
    server = container(manifest)
    # What the serving namespace's PodSecurity admission enforces.
    assert restricted_violations(pod) == []

    assert manifest["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert server["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert server["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    assert server["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert set(server["resources"]) == {"requests", "limits"}
    assert pod["serviceAccountName"] == "model-server"


def test_deployment_serves_the_exact_version_with_the_platform_env() -> None:
    manifest = deployment_manifest(SPEC, REVISION)
    server = container(manifest)
    env = {item["name"]: item["value"] for item in server["env"]}

    assert server["image"] == SPEC.image
    assert server["args"][:3] == ["serve", "--model-uri", "models:/Churn Classifier/12"]
    assert manifest["spec"]["template"]["metadata"]["labels"][VERSION_LABEL] == "12"
    assert env["MLFLOW_TRACKING_URI"] == SPEC.env["MLFLOW_TRACKING_URI"]
    assert env["OMP_NUM_THREADS"] == "2"  # the CPU limit, not the node's core count
    assert server["envFrom"] == [{"secretRef": {"name": "ml-storage-credentials"}}]


def test_versions_share_selector_and_service() -> None:
    one = deployment_manifest(SPEC, Revision("churn", "1"))
    two = deployment_manifest(SPEC, Revision("churn", "2"))
    service = service_manifest(SPEC, "churn")

    assert one["spec"]["selector"] == two["spec"]["selector"]
    assert service["spec"]["selector"] == one["spec"]["selector"]["matchLabels"]
    assert one["spec"]["template"] != two["spec"]["template"]
    assert service_url(SPEC, "churn") == "http://model-churn.ml-serving.svc.cluster.local:80"


def test_resource_names_are_dns_labels() -> None:
    assert resource_name("Churn Classifier") == "model-churn-classifier"
    assert len(resource_name("x" * 200)) == 63
    with pytest.raises(ValueError, match="no letters or digits"):
        resource_name("___")
