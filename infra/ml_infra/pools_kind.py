"""kind: the stack's pools are kind worker nodes; Pulumi labels and taints them, and emulates GPUs.

The kind cluster config creates the nodes (see infra/README.md); a NodePatch gives each node
its pool's labels and taints. GPU capacity comes from run.ai's fake GPU operator: its device
plugin registers `nvidia.com/gpu` devices with the kubelet of every node labelled with the
pool, so the scheduler, the ResourceQuota and the kubelet count GPUs exactly as on a real GPU
node. Patching an extended resource into the node status would make pods schedule too, but
nothing would allocate devices to containers and the status is not reconciled by anyone.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ml_infra import charts
from ml_infra.config import StackConfig
from ml_infra.conventions import FAKE_GPU_POOL_LABEL
from ml_infra.helm_release import helm_release
from ml_infra.kube import k8s_opts, metadata
from ml_infra.resources import ClusterAccess

FAKE_GPU_NAMESPACE = "gpu-operator"
# Memory the emulated GPUs report (MiB); nothing in the platform reads it.
FAKE_GPU_MEMORY_MIB = 16384


def node_patches(config: StackConfig, provider: k8s.Provider) -> list[k8s.core.v1.NodePatch]:
    patches = []
    for pool in config.pools:
        labels = dict(pool.labels)
        if pool.gpu:
            labels[FAKE_GPU_POOL_LABEL] = pool.name
        taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
        for node in pool.nodes:
            patches.append(
                k8s.core.v1.NodePatch(
                    f"node-{node}",
                    metadata={
                        "name": node,
                        "labels": labels,
                        # The nodes were created by kind, not by us: take over these fields.
                        "annotations": {"pulumi.com/patchForce": "true"},
                    },
                    spec={"taints": taints},
                    opts=k8s_opts(provider),
                )
            )
    return patches


def fake_gpu_operator_values(config: StackConfig) -> dict:
    return {
        "topology": {
            "nodePoolLabelKey": FAKE_GPU_POOL_LABEL,
            "nodePools": {
                pool.name: {
                    "gpuProduct": pool.gpu.type,
                    "gpuCount": pool.gpu.count,
                    "gpuMemory": FAKE_GPU_MEMORY_MIB,
                }
                for pool in config.gpu_pools
            },
        },
    }


def declare_kind_cluster(config: StackConfig) -> ClusterAccess:
    provider = k8s.Provider("kind", context=config.kind.context)
    ready: list[pulumi.Resource] = list(node_patches(config, provider))
    if config.gpu_pools:
        namespace = k8s.core.v1.Namespace(
            "gpu-operator", metadata=metadata(FAKE_GPU_NAMESPACE), opts=k8s_opts(provider)
        )
        ready.append(
            helm_release(
                "fake-gpu-operator",
                charts.FAKE_GPU_OPERATOR,
                release_name="fake-gpu-operator",
                namespace=FAKE_GPU_NAMESPACE,
                values=fake_gpu_operator_values(config),
                provider=provider,
                depends_on=[namespace, *ready],
            )
        )
    return ClusterAccess(provider=provider, ready=ready)
