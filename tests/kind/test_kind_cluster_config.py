"""infra/kind/cluster.yaml is a valid kind config and creates the cluster the kind stack expects.

The stack (infra/Pulumi.kind.yaml) names the kubeconfig context, the worker nodes of each pool
and where the checkout is mounted; kind derives node names from the cluster name and the
order of the nodes. These tests compute kind's names from the config and compare them with the
stack's, so a worker added, removed or reordered on either side fails here, not on a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.kind import kind_platform

# Fields of kind's v1alpha4 config (sigs.k8s.io/kind/pkg/apis/config/v1alpha4/types.go);
# kind decodes the file strictly, so any other key fails `kind create cluster`.
CLUSTER_FIELDS = {
    "kind",
    "apiVersion",
    "name",
    "nodes",
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
NODE_FIELDS = {
    "role",
    "image",
    "labels",
    "extraMounts",
    "extraPortMappings",
    "gpus",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
}
MOUNT_FIELDS = {"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"}
PORT_FIELDS = {"containerPort", "hostPort", "listenAddress", "protocol"}
ROLES = {"control-plane", "worker"}
PROPAGATIONS = {"None", "HostToContainer", "Bidirectional"}


@pytest.fixture(scope="module")
def document() -> dict:
    return kind_platform.cluster_document()


def test_config_uses_only_kind_v1alpha4_fields(document: dict):
    assert document["kind"] == "Cluster"
    assert document["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert set(document) <= CLUSTER_FIELDS, set(document) - CLUSTER_FIELDS
    for index, node in enumerate(document["nodes"]):
        assert set(node) <= NODE_FIELDS, (index, set(node) - NODE_FIELDS)
        assert node.get("role", "control-plane") in ROLES, (index, node.get("role"))
        for mount in node.get("extraMounts", []):
            assert set(mount) <= MOUNT_FIELDS, (index, set(mount) - MOUNT_FIELDS)
            assert mount.get("propagation", "None") in PROPAGATIONS, (index, mount)
        for port in node.get("extraPortMappings", []):
            assert set(port) <= PORT_FIELDS, (index, set(port) - PORT_FIELDS)


def test_the_cluster_name_comes_from_the_stack_only(document: dict):
    """`make kind-up` passes --name from the stack's context; the config must not disagree."""
    assert document.get("name", kind_platform.cluster_name()) == kind_platform.cluster_name()
    assert kind_platform.kube_context() == f"kind-{kind_platform.cluster_name()}"


def test_kind_names_the_workers_the_stacks_pools_list(document: dict):
    names = kind_platform.kind_node_names(document, kind_platform.cluster_name())
    roles = [node.get("role", "control-plane") for node in document["nodes"]]
    control_planes = [name for name, role in zip(names, roles, strict=True) if role != "worker"]
    workers = [name for name, role in zip(names, roles, strict=True) if role == "worker"]
    assert len(control_planes) == 1, control_planes
    # Every worker is in exactly one pool, every pool node is a worker kind creates.
    assert sorted(workers) == sorted(kind_platform.pool_nodes()), (
        workers,
        kind_platform.pool_nodes(),
    )
    assert kind_platform.cpu_pool_nodes(), "no CPU pool node"
    assert kind_platform.gpu_pool_nodes(), "no GPU pool node"


def test_kinds_naming_rule():
    """kind's MakeNodeNamer: the first node of a role is `<name>-<role>`, then `...2`, `...3`."""
    nodes = {"nodes": [{"role": "control-plane"}, {"role": "worker"}, {"role": "worker"}]}
    assert kind_platform.kind_node_names(nodes, "c") == [
        "c-control-plane",
        "c-worker",
        "c-worker2",
    ]
    assert kind_platform.kind_node_names({}, "c") == ["c-control-plane"]


def test_no_pool_labels_or_taints_in_the_cluster_config(document: dict):
    """The stack labels and taints the nodes (NodePatch): one place for each."""
    for node in document["nodes"]:
        assert not node.get("labels"), node


def test_every_node_mounts_this_checkout_where_the_stack_reads_the_dags(document: dict):
    node_path = kind_platform.checkout_node_path()
    for index, node in enumerate(document["nodes"]):
        mounts = [m for m in node.get("extraMounts", []) if m["containerPath"] == node_path]
        assert len(mounts) == 1, (index, node.get("extraMounts"))
        mount = mounts[0]
        # kind resolves a relative hostPath against its working directory: the repository
        # root, where infra/kind/up.sh runs it.
        assert not Path(mount["hostPath"]).is_absolute(), "no machine paths in the config"
        assert (kind_platform.REPO_ROOT / mount["hostPath"]).resolve() == kind_platform.REPO_ROOT
        assert mount.get("readOnly") is True, mount
    subdir = kind_platform.stack_config().airflow.dags.subdir
    assert (kind_platform.REPO_ROOT / subdir / "ml_training_pipeline.py").is_file()


def test_airflow_reads_the_dags_from_the_mounted_checkout():
    from ml_infra.airflow_release import LOCAL_CHECKOUT, LOCAL_DAG_BUNDLE, dag_bundles

    config = kind_platform.stack_config()
    (bundle,) = dag_bundles(config)
    assert bundle["classpath"] == LOCAL_DAG_BUNDLE
    assert bundle["kwargs"]["path"] == f"{LOCAL_CHECKOUT}/{config.airflow.dags.subdir}"


def test_no_host_ports_because_the_stack_exposes_no_nodeport(document: dict):
    """The UIs are reached by port-forward. If the program or the Helm values ever expose a
    NodePort, this fails: map it here (extraPortMappings) and in docs/kind.md."""
    sources = [*kind_platform.INFRA_DIR.glob("ml_infra/*.py")]
    sources += [*(kind_platform.REPO_ROOT / "helm").glob("*/values-*.yaml")]
    exposing = [
        str(path.relative_to(kind_platform.REPO_ROOT))
        for path in sources
        if re.search(r"NodePort|nodePort", path.read_text())
    ]
    assert not exposing, exposing
    assert not any(node.get("extraPortMappings") for node in document["nodes"])
