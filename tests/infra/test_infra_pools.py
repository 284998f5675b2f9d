"""Each stack's pools carry the platform's taints and labels, on the resource that makes nodes."""

from __future__ import annotations

import json

import pytest
from pulumi_harness import declared, run_program_expecting_error, stack_values, unwrap

from ml_infra import charts
from ml_infra.config_reader import StackConfigError
from ml_infra.conventions import FAKE_GPU_POOL_LABEL
from ml_platform import policies
from ml_platform.container import container_task
from ml_platform.settings import parse_config

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _gpu_labels(pool: str, gpu_type: str) -> dict[str, str]:
    return {
        "ml-platform/pool": pool,
        "nvidia.com/gpu.present": "true",
        "ml-platform/gpu-type": gpu_type,
    }


def test_kind_nodes_get_their_pools_labels_and_taints():
    patches = {
        d.inputs["metadata"]["name"]: d.inputs for d in declared("kind").of_type(":NodePatch")
    }
    assert set(patches) == {"ml-platform-worker", "ml-platform-worker2"}
    cpu, gpu = patches["ml-platform-worker"], patches["ml-platform-worker2"]
    assert cpu["metadata"]["labels"] == {"ml-platform/pool": "cpu"}
    assert cpu["spec"]["taints"] == []
    assert gpu["metadata"]["labels"] == {
        **_gpu_labels("gpu", "emulated-gpu"),
        FAKE_GPU_POOL_LABEL: "gpu",
    }
    assert gpu["spec"]["taints"] == [GPU_TAINT]


def test_kind_emulates_the_gpu_pool_with_the_fake_gpu_operator():
    release = declared("kind").release("fake-gpu-operator").inputs
    assert release["chart"] == f"{charts.FAKE_GPU_OPERATOR.repo}/fake-gpu-operator"
    topology = unwrap(release["values"])["topology"]
    assert topology["nodePoolLabelKey"] == FAKE_GPU_POOL_LABEL
    assert topology["nodePools"]["gpu"]["gpuCount"] == 2
    assert topology["nodePools"]["gpu"]["gpuProduct"] == "emulated-gpu"


def test_eks_node_groups():
    groups = {d.inputs["nodeGroupName"]: d.inputs for d in declared("prod").of_type(":NodeGroup")}
    assert set(groups) == {"cpu", "gpu-l4", "gpu-l4-x4"}
    cpu = groups["cpu"]
    assert cpu["amiType"] == "AL2023_x86_64_STANDARD"
    assert cpu["labels"] == {"ml-platform/pool": "cpu"}
    assert cpu.get("taints", []) == []
    for name, instance, count in (("gpu-l4", "g6.2xlarge", 0), ("gpu-l4-x4", "g6.12xlarge", 0)):
        group = groups[name]
        assert group["amiType"] == "AL2023_x86_64_NVIDIA"
        assert group["instanceTypes"] == [instance]
        assert group["labels"] == _gpu_labels(name, "nvidia-l4")
        assert group["taints"] == [
            {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
        ]
        assert group["scalingConfig"]["minSize"] == count
    assert groups["gpu-l4"]["scalingConfig"]["maxSize"] == 8


def test_eks_installs_the_device_plugin_and_the_autoscaler():
    prod = declared("prod")
    plugin = prod.release("nvidia-device-plugin").inputs
    assert (plugin["chart"], plugin["version"]) == ("nvidia-device-plugin", "0.20.0")
    autoscaler = unwrap(prod.release("cluster-autoscaler").inputs["values"])
    assert autoscaler["autoDiscovery"]["clusterName"] == "ml-platform-prod"


def test_the_eks_autoscaler_scales_only_this_clusters_node_groups():
    import json

    prod = declared("prod")
    policy = json.loads(
        unwrap(prod.named("cluster-autoscaler", "iam/rolePolicy:RolePolicy").inputs["policy"])
    )
    describe, scale = policy["Statement"]
    assert all(
        action.split(":")[1].startswith(("Describe", "Get")) for action in describe["Action"]
    )
    assert scale["Action"] == [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    assert scale["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/ml-platform-prod": "owned"}
    }
    trust = json.loads(
        unwrap(prod.named("cluster-autoscaler", "iam/role:Role").inputs["assumeRolePolicy"])
    )
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in condition.values()


def test_eks_provisions_the_volumes_airflow_claims():
    """Workers, triggerer and Redis claim volumes: the EBS CSI driver (its controller alone
    may assume the role) and a default gp3 StorageClass bound where the pod lands."""
    import json

    prod = declared("prod")
    addon = prod.named("aws-ebs-csi-driver", ":Addon").inputs
    assert addon["addonName"] == "aws-ebs-csi-driver"
    assert addon["serviceAccountRoleArn"]
    trust = json.loads(
        unwrap(prod.named("ebs-csi-driver", "iam/role:Role").inputs["assumeRolePolicy"])
    )
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in condition.values()
    attached = prod.named("ebs-csi-driver", ":RolePolicyAttachment").inputs
    assert attached["policyArn"].endswith("/AmazonEBSCSIDriverPolicy")
    (storage_class,) = prod.of_type(":StorageClass")
    sc = storage_class.inputs
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (sc["provisioner"], sc["volumeBindingMode"]) == (
        "ebs.csi.aws.com",
        "WaitForFirstConsumer",
    )
    assert sc["parameters"] == {"type": "gp3", "encrypted": "true"}


def test_gke_node_pools_with_accelerators_and_drivers():
    pools = {d.inputs["name"]: d.inputs for d in declared("dev").of_type(":NodePool")}
    assert set(pools) == {"cpu", "gpu-l4"}
    assert pools["cpu"]["nodeConfig"]["labels"] == {"ml-platform/pool": "cpu"}
    assert not pools["cpu"]["nodeConfig"].get("guestAccelerators")
    gpu = pools["gpu-l4"]
    config = gpu["nodeConfig"]
    assert config["machineType"] == "g2-standard-8"
    assert config["labels"] == _gpu_labels("gpu-l4", "nvidia-l4")
    assert config["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
    ]
    assert config["guestAccelerators"] == [
        {
            "type": "nvidia-l4",
            "count": 1,
            "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"},
        }
    ]
    assert gpu["autoscaling"] == {"minNodeCount": 0, "maxNodeCount": 2}


def test_gke_enforces_network_policies():
    cluster = declared("dev").of_type("container/cluster:Cluster")[0].inputs
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"


def _production_gpu_types() -> set[str]:
    return {
        pool["gpu"]["type"]
        for stack in ("dev", "prod")
        for pool in stack_values(stack)["ml-platform:pools"]
        if pool.get("gpu")
    }


def _lands_on(pod, node: dict) -> bool:
    """Whether the scheduler could put `pod` on the node as the NodePatch makes it."""
    labels, taints = node["metadata"]["labels"], node["spec"]["taints"]
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    affinity = any(
        all(e.operator == "In" and labels.get(e.key) in e.values for e in term.match_expressions)
        for term in required.node_selector_terms
    )
    selector = all(labels.get(k) == v for k, v in (pod.spec.node_selector or {}).items())
    tolerated = all(
        any(t.key == taint["key"] and t.value == taint["value"] for t in pod.spec.tolerations)
        for taint in taints
    )
    return affinity and selector and tolerated


def test_work_pinned_to_a_production_gpu_type_lands_on_kinds_gpu_node():
    """Through the factory and the textbook way (a nodeSelector, fixed by the hook)."""
    config = parse_config(declared("kind").outputs["platform_config"])
    nodes = {d.inputs["metadata"]["name"]: d.inputs for d in declared("kind").of_type(":NodePatch")}
    gpu_node = nodes["ml-platform-worker2"]
    assert _production_gpu_types() == {"nvidia-l4"}
    for gpu_type in _production_gpu_types():
        task = container_task("train", image="trainer", gpus=1, gpu_type=gpu_type, config=config)
        pod = task.build_pod_request_obj(dry_run=True)
        assert _lands_on(pod, gpu_node), gpu_type
        assert not _lands_on(pod, nodes["ml-platform-worker"])
        pod.spec.affinity = None
        pod.spec.node_selector = {"ml-platform/gpu-type": gpu_type}
        pod.spec.tolerations = []
        policies.schedule_gpu_pod(pod, config)
        assert _lands_on(pod, gpu_node), gpu_type


def test_only_the_allowed_ranges_reach_the_public_api_endpoints():
    """EKS and GKE keep a public endpoint (for `pulumi up` and kubectl) limited to the stack's
    api_allowed_cidrs; the nodes use the private one."""
    eks = declared("prod").of_type("eks/cluster:Cluster")[0].inputs["vpcConfig"]
    assert eks["endpointPrivateAccess"] is True
    assert eks["publicAccessCidrs"] == ["198.51.100.0/24", "203.0.113.7/32"]
    gke = declared("dev").of_type("container/cluster:Cluster")[0].inputs
    assert gke["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [
        {"cidrBlock": "198.51.100.0/24", "displayName": "allowed-0"}
    ]


@pytest.mark.parametrize(("stack", "key"), [("prod", "aws"), ("dev", "gcp")])
def test_the_allowed_ranges_are_required_on_the_cloud(stack: str, key: str):
    values = stack_values(stack)
    del values[f"ml-platform:{key}"]["api_allowed_cidrs"]
    config = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in values.items()}
    error, count = run_program_expecting_error(stack, config)
    assert isinstance(error, StackConfigError)
    assert str(error) == f"ml-platform:{key}.api_allowed_cidrs: required key is missing"
    assert count == 0
