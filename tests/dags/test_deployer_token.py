"""The deploy pod's API token is only where it is used: the deployer container gets it as a
projected volume at the path the kubernetes client reads, the XCom sidecar (which Airflow's
identity may exec into) has none, nothing is automounted, and the pod still meets
PodSecurity `restricted`. MLP206 also wants the deployer's label on a deployer-account pod.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from kubernetes.client import Configuration
from kubernetes.client import models as k8s
from kubernetes.config import incluster_config

from ml_platform.deployer_rules import deployer_violations
from ml_platform.pod_security import (
    DEPLOYER_TOKEN_VOLUME,
    SERVICE_ACCOUNT_DIR,
    XCOM_SIDECAR,
    deployer_token_volume,
)
from ml_platform.policies import pod_mutation_hook
from ml_platform.settings import IMAGE_LABEL, PlatformConfig
from tests.dags.conftest import PIPELINE_DAG_ID, build_pod
from tests.pod_security_profile import restricted_violations

pytestmark = pytest.mark.usefixtures("kind_stack")


def _container(pod: k8s.V1Pod, name: str) -> k8s.V1Container:
    (container,) = [c for c in pod.spec.containers if c.name == name]
    return container


def _token_volumes(pod: k8s.V1Pod) -> set[str]:
    return {
        v.name
        for v in pod.spec.volumes or []
        if v.projected and any(s.service_account_token for s in v.projected.sources or [])
    }


def _mounts(container: k8s.V1Container) -> dict[str, k8s.V1VolumeMount]:
    return {m.name: m for m in container.volume_mounts or []}


def test_the_deploy_pod_holds_its_token_in_the_deployer_container_alone():
    pod = build_pod(PIPELINE_DAG_ID, "deploy")
    assert pod.spec.automount_service_account_token is False
    assert _token_volumes(pod) == {DEPLOYER_TOKEN_VOLUME}
    mount = _mounts(_container(pod, "base"))[DEPLOYER_TOKEN_VOLUME]
    assert (mount.mount_path, mount.read_only) == (SERVICE_ACCOUNT_DIR, True)
    sidecar = _container(pod, XCOM_SIDECAR)
    assert DEPLOYER_TOKEN_VOLUME not in _mounts(sidecar)
    assert all(not m.mount_path.startswith("/var/run/secrets") for m in sidecar.volume_mounts)
    assert restricted_violations(pod) == []


def test_the_hook_adds_the_token_once():
    pod = build_pod(PIPELINE_DAG_ID, "deploy")
    again = copy.deepcopy(pod)
    pod_mutation_hook(again)
    assert [v.name for v in again.spec.volumes] == [v.name for v in pod.spec.volumes]
    base = _container(again, "base")
    assert [m.name for m in base.volume_mounts] == [
        m.name for m in _container(pod, "base").volume_mounts
    ]


def test_other_pods_get_no_token_volume():
    pod = build_pod(PIPELINE_DAG_ID, "train")
    assert _token_volumes(pod) == set()
    assert all(
        SERVICE_ACCOUNT_DIR not in (m.mount_path for m in c.volume_mounts or [])
        for c in pod.spec.containers
    )


def test_the_projection_lays_out_what_load_incluster_config_reads(tmp_path: Path):
    """The kubernetes client's in-cluster loader, unchanged, finds the token and the CA at
    the mount path under the names the projection gives them."""
    sources = deployer_token_volume().projected.sources
    files = {
        "token": next(s.service_account_token.path for s in sources if s.service_account_token),
        "ca": next(s.config_map for s in sources if s.config_map),
        "namespace": next(s.downward_api for s in sources if s.downward_api),
    }
    assert files["ca"].name == "kube-root-ca.crt"
    (ca_item,) = files["ca"].items
    (namespace_item,) = files["namespace"].items
    assert namespace_item.field_ref.field_path == "metadata.namespace"
    assert Path(SERVICE_ACCOUNT_DIR, files["token"]) == Path(
        incluster_config.SERVICE_TOKEN_FILENAME
    )
    assert Path(SERVICE_ACCOUNT_DIR, ca_item.path) == Path(incluster_config.SERVICE_CERT_FILENAME)

    # What the kubelet writes there, under a scratch root: the loader takes it as it is.
    (tmp_path / files["token"]).write_text("projected-token")
    (tmp_path / ca_item.path).write_text("-----BEGIN CERTIFICATE-----\n")
    loader = incluster_config.InClusterConfigLoader(
        token_filename=str(tmp_path / files["token"]),
        cert_filename=str(tmp_path / ca_item.path),
        environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    )
    configuration = Configuration()
    loader.load_and_set(configuration)
    assert configuration.api_key["BearerToken"] == "bearer projected-token"
    assert configuration.ssl_ca_cert == str(tmp_path / ca_item.path)


def test_a_deployer_account_pod_without_the_label_breaks_mlp206(platform: PlatformConfig):
    pod = build_pod(PIPELINE_DAG_ID, "deploy")
    team = next(e.value for e in _container(pod, "base").env if e.name == "DEPLOYER_TEAM")
    assert (
        deployer_violations(pod, base_container="base", team=team, where="t", config=platform) == []
    )
    del pod.metadata.labels[IMAGE_LABEL]
    (violation,) = deployer_violations(
        pod, base_container="base", team=team, where="t", config=platform
    )
    assert violation.code == "MLP206" and f"without the label {IMAGE_LABEL}" in violation.message
