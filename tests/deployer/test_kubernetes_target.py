"""The Kubernetes target against a fake API: rollout watch, timeout, restore on failure."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from deployer_testkit import log_torch_model
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from mlflow import MlflowClient

from deployer.errors import StepFailed
from deployer.manifests import VERSION_LABEL, ServingSpec, deployment_manifest
from deployer.registry import Registry
from deployer.targets import Revision
from deployer.targets.kubernetes import KubernetesTarget, watch_rollout
from deployer.workflow import deploy

SPEC = ServingSpec(namespace="ml-serving", image="localhost/ml-platform/deployer:dev")


class _Response:
    """What ApiClient.deserialize reads: the JSON body of an API answer."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document)


class FakeCluster:
    """AppsV1Api + CoreV1Api stand-in holding one Deployment and one Service.

    The controller is simulated from the pod template's version label: a version listed in
    `broken` never gets a ready pod (the old ReplicaSet keeps serving, as with maxUnavailable
    0), one in `deadline` makes Kubernetes give up; any other is rolled out once
    `polls_to_ready` status reads have shown the controller still catching up.
    """

    def __init__(
        self, broken: tuple[str, ...] = (), deadline: tuple[str, ...] = (), polls_to_ready: int = 2
    ) -> None:
        self.broken, self.deadline, self.polls_to_ready = broken, deadline, polls_to_ready
        self.deployment: dict[str, Any] | None = None
        self.service: dict[str, Any] | None = None
        self.generation = 0
        self.polls = 0
        self.calls: list[str] = []

    # -- AppsV1Api --------------------------------------------------------------------------

    def read_namespaced_deployment(self, name: str, namespace: str, **_: Any) -> Any:
        if self.deployment is None:
            raise ApiException(status=404, reason="Not Found")
        return self._as_object()

    def read_namespaced_deployment_status(self, name: str, namespace: str, **_: Any) -> Any:
        self.polls += 1
        return self.read_namespaced_deployment(name, namespace)

    def create_namespaced_deployment(self, namespace: str, body: dict, **_: Any) -> Any:
        self.calls.append("create deployment")
        return self._store(body)

    def patch_namespaced_deployment(self, name: str, namespace: str, body: dict, **_: Any) -> Any:
        self.calls.append("patch deployment")
        return self._store(body)

    def replace_namespaced_deployment(self, name: str, namespace: str, body: dict, **_: Any) -> Any:
        self.calls.append("replace deployment")
        return self._store(body)

    def delete_namespaced_deployment(self, name: str, namespace: str, **_: Any) -> None:
        self.calls.append("delete deployment")
        self.deployment = None

    # -- CoreV1Api --------------------------------------------------------------------------

    def read_namespaced_service(self, name: str, namespace: str, **_: Any) -> dict:
        if self.service is None:
            raise ApiException(status=404, reason="Not Found")
        return self.service

    def create_namespaced_service(self, namespace: str, body: dict, **_: Any) -> None:
        self.calls.append("create service")
        self.service = body

    def patch_namespaced_service(self, name: str, namespace: str, body: dict, **_: Any) -> None:
        self.calls.append("patch service")
        self.service = body

    def delete_namespaced_service(self, name: str, namespace: str, **_: Any) -> None:
        self.calls.append("delete service")
        self.service = None

    # -- the simulated controller ---------------------------------------------------------

    @property
    def version(self) -> str:
        return self.deployment["spec"]["template"]["metadata"]["labels"][VERSION_LABEL]

    def _store(self, body: dict) -> Any:
        body = copy.deepcopy(body)
        changed = self.deployment is None or body["spec"] != self.deployment["spec"]
        self.deployment = {"metadata": body["metadata"], "spec": body["spec"]}
        if changed:
            self.generation += 1
            self.polls = 0
        return self._as_object()

    def _status(self) -> dict[str, Any]:
        wanted = self.deployment["spec"]["replicas"]
        if self.polls <= self.polls_to_ready:
            return {"observedGeneration": self.generation - 1, "replicas": wanted}
        if self.version in self.deadline:
            condition = {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "model-churn-7d9" has timed out progressing.',
            }
            return {"observedGeneration": self.generation, "conditions": [condition]}
        if self.version in self.broken:
            return {
                "observedGeneration": self.generation,
                "replicas": wanted + 1,
                "updatedReplicas": 1,
                "availableReplicas": wanted,
                "unavailableReplicas": 1,
            }
        return {
            "observedGeneration": self.generation,
            "replicas": wanted,
            "updatedReplicas": wanted,
            "availableReplicas": wanted,
            "readyReplicas": wanted,
        }

    def _as_object(self) -> Any:
        document = copy.deepcopy(self.deployment)
        document["metadata"]["generation"] = self.generation
        document["status"] = self._status()
        return ApiClient().deserialize(_Response(document), "V1Deployment")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def cluster_serving(version: str, **behaviour: Any) -> FakeCluster:
    cluster = FakeCluster(**behaviour)
    cluster.create_namespaced_deployment(
        SPEC.namespace, deployment_manifest(SPEC, Revision("churn", version))
    )
    cluster.create_namespaced_service(SPEC.namespace, {"metadata": {"name": "model-churn"}})
    cluster.calls.clear()
    return cluster


def test_watch_returns_once_updated_replicas_are_available() -> None:
    cluster, clock = cluster_serving("1", polls_to_ready=3), FakeClock()

    where = watch_rollout(cluster, "ml-serving", "model-churn", 60, 2.0, clock, clock.sleep)

    assert where == "1 of 1 replicas updated and available"
    assert cluster.polls == 4
    assert clock.slept == [2.0, 2.0, 2.0]


def test_watch_times_out_with_where_the_rollout_stands() -> None:
    cluster, clock = cluster_serving("2", broken=("2",)), FakeClock()

    with pytest.raises(StepFailed) as failure:
        watch_rollout(cluster, "ml-serving", "model-churn", 30, 4.0, clock, clock.sleep)

    assert failure.value.step == "readiness"
    assert failure.value.why == (
        "deployment ml-serving/model-churn not ready after 30s: "
        "1 old replica(s) still running: new pods not ready yet"
    )
    assert sum(clock.slept) == pytest.approx(30)  # never waits past the deadline


def test_watch_stops_when_kubernetes_gives_up() -> None:
    cluster, clock = cluster_serving("2", deadline=("2",)), FakeClock()

    with pytest.raises(StepFailed, match="Kubernetes gave up the rollout: ReplicaSet"):
        watch_rollout(cluster, "ml-serving", "model-churn", 600, 2.0, clock, clock.sleep)

    assert clock.now < 600


def test_target_rolls_out_and_reports_what_serves() -> None:
    cluster = cluster_serving("1")
    target = KubernetesTarget(cluster, cluster, SPEC, "churn", poll_s=0)

    target.start(Revision("churn", "2"))
    url = target.wait_ready(timeout_s=5)

    assert url == "http://model-churn.ml-serving.svc.cluster.local:80"
    assert cluster.calls == ["patch service", "patch deployment"]
    serving = target.current()
    assert (serving.version, serving.model_uri) == ("2", "models:/churn/2")


def test_first_rollout_that_fails_leaves_nothing_behind() -> None:
    cluster = FakeCluster(broken=("1",))
    target = KubernetesTarget(cluster, cluster, SPEC, "churn", poll_s=0)
    assert target.current() is None

    target.start(Revision("churn", "1"))
    with pytest.raises(StepFailed, match="not ready after"):
        target.wait_ready(timeout_s=0.2)
    target.restore(timeout_s=5)

    assert cluster.calls == [
        "create service",
        "create deployment",
        "delete deployment",
        "delete service",
    ]
    assert cluster.deployment is None and cluster.service is None


def test_failed_deploy_restores_the_previous_revision_and_keeps_the_champion(
    mlflow_uri: str, model_name: str
) -> None:
    client = MlflowClient()
    registry = Registry(client)
    first = registry.run_model(log_torch_model(seed=1), "model")
    v1, _ = registry.find_or_register(model_name, first)
    client.set_registered_model_alias(model_name, "champion", v1.version)
    cluster = FakeCluster(broken=("2",))
    cluster.create_namespaced_deployment(
        SPEC.namespace, deployment_manifest(SPEC, Revision(model_name, "1"))
    )
    before = copy.deepcopy(cluster.deployment)
    target = KubernetesTarget(cluster, cluster, SPEC, model_name, poll_s=0.01)

    with pytest.raises(StepFailed) as failure:
        deploy(
            registry,
            target,
            model_name=model_name,
            run_id=log_torch_model(seed=2),
            artifact_path="model",
            timeout_s=0.5,
        )

    assert failure.value.step == "readiness"
    assert cluster.calls[-2:] == ["patch deployment", "replace deployment"]
    assert cluster.deployment["spec"] == before["spec"]
    assert target.current().version == "1"
    assert client.get_registered_model(model_name).aliases == {"champion": "1"}
