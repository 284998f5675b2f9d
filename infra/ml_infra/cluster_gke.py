"""GCP: a VPC-native GKE cluster and one node pool per pool, autoscaled between its bounds.

GPU pools attach their GPUs as guest accelerators and let GKE install the driver
(gpu_driver_installation_config); GKE runs the NVIDIA device plugin itself. Dataplane V2
enforces the platform's NetworkPolicies.

Google APIs (GCS among them) are reached through Private Google Access: a private DNS zone
answers every *.googleapis.com name with the private.googleapis.com addresses, so pods'
storage egress is allowed to that range alone. Airflow's volumes use the `pd-balanced`
StorageClass declared here (PD CSI driver), not whatever GKE makes the default.

Workload Identity is on: every node pool runs GKE's metadata server (GKE_METADATA), which
hands a pod the tokens of the GCP service account its Kubernetes service account is bound to
(ml_infra.storage_gcp), and never the node's own service account.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from ml_infra.config import Pool, StackConfig
from ml_infra.kube import kubeconfig
from ml_infra.resources import ClusterAccess

GKE_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
GPU_DRIVER_VERSION = "LATEST"
# Private Google Access's private.googleapis.com: a range Google serves its APIs on to VPCs
# only (not announced to the internet), reached through the default internet gateway route.
PRIVATE_GOOGLE_APIS_RANGE = "199.36.153.8/30"
PRIVATE_GOOGLE_APIS_HOST = "private.googleapis.com."
DNS_TTL = 300
# Airflow's volumes name it (helm/airflow/values-dev.yaml); tests check the two agree.
STORAGE_CLASS = "pd-balanced"
PD_CSI_PROVISIONER = "pd.csi.storage.gke.io"
# Pods see GKE's metadata server, not the Compute Engine one with the node's credentials.
WORKLOAD_METADATA_MODE = "GKE_METADATA"


def workload_pool(project: str) -> str:
    """The project's Workload Identity pool, the one GKE clusters of the project use."""
    return f"{project}.svc.id.goog"


class Network:
    def __init__(self, config: StackConfig, opts: pulumi.ResourceOptions) -> None:
        name = f"ml-platform-{config.environment}"
        self.network = gcp.compute.Network(name, auto_create_subnetworks=False, opts=opts)
        self.subnet = gcp.compute.Subnetwork(
            name,
            network=self.network.id,
            region=config.gcp.region,
            ip_cidr_range=config.gcp.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": "pods", "ip_cidr_range": config.gcp.pods_cidr},
                {"range_name": "services", "ip_cidr_range": config.gcp.services_cidr},
            ],
            opts=opts,
        )
        router = gcp.compute.Router(
            name, network=self.network.id, region=config.gcp.region, opts=opts
        )
        # Nodes have private IPs only; Cloud NAT lets them pull images.
        gcp.compute.RouterNat(
            name,
            router=router.name,
            region=config.gcp.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            opts=opts,
        )
        self.storage_cidrs = _private_google_apis(name, self.network, opts)


def _private_google_apis(
    name: str, network: gcp.compute.Network, opts: pulumi.ResourceOptions
) -> pulumi.Output[list[str]]:
    """Google's documented DNS for Private Google Access: a private `googleapis.com.` zone on
    the VPC where private.googleapis.com has the range's four A records and every other name
    is a CNAME to it. Returns the range once the records exist: the NetworkPolicies that
    allow storage there alone come after the DNS that sends GCS there."""
    zone = gcp.dns.ManagedZone(
        f"{name}-googleapis",
        dns_name="googleapis.com.",
        description="Google APIs through Private Google Access (private.googleapis.com)",
        visibility="private",
        private_visibility_config={"networks": [{"network_url": network.id}]},
        opts=opts,
    )
    addresses = [str(a) for a in ipaddress.ip_network(PRIVATE_GOOGLE_APIS_RANGE)]
    a_records = gcp.dns.RecordSet(
        f"{name}-private-googleapis",
        managed_zone=zone.name,
        name=PRIVATE_GOOGLE_APIS_HOST,
        type="A",
        ttl=DNS_TTL,
        rrdatas=addresses,
        opts=opts,
    )
    cname = gcp.dns.RecordSet(
        f"{name}-googleapis-cname",
        managed_zone=zone.name,
        name="*.googleapis.com.",
        type="CNAME",
        ttl=DNS_TTL,
        rrdatas=[PRIVATE_GOOGLE_APIS_HOST],
        opts=opts,
    )
    return pulumi.Output.all(a_records.id, cname.id).apply(lambda _: [PRIVATE_GOOGLE_APIS_RANGE])


def guest_accelerators(pool: Pool) -> list[dict]:
    if not pool.gpu:
        return []
    return [
        {
            "type": pool.gpu.type,
            "count": pool.gpu.count,
            "gpu_driver_installation_config": {"gpu_driver_version": GPU_DRIVER_VERSION},
        }
    ]


def node_pool_taints(pool: Pool) -> list[dict[str, str]]:
    return [
        {"key": t.key, "value": t.value, "effect": GKE_TAINT_EFFECTS[t.effect]} for t in pool.taints
    ]


def _kubeconfig(cluster: gcp.container.Cluster) -> pulumi.Output[str]:
    def render(args: list) -> str:
        name, endpoint, ca = args
        plugin = {"command": "gke-gcloud-auth-plugin", "provideClusterInfo": True}
        return kubeconfig(name, f"https://{endpoint}", ca, plugin)

    return pulumi.Output.all(
        cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate
    ).apply(render)


def _storage_class(provider: k8s.Provider, node_pools: list[pulumi.Resource]) -> pulumi.Resource:
    """pd-balanced through the PD CSI driver, bound where the pod lands (a zonal disk) and
    expandable. Not marked default: GKE's own default stays, and our charts name this one."""
    return k8s.storage.v1.StorageClass(
        STORAGE_CLASS,
        metadata={"name": STORAGE_CLASS},
        provisioner=PD_CSI_PROVISIONER,
        parameters={"type": "pd-balanced"},
        volume_binding_mode="WaitForFirstConsumer",
        allow_volume_expansion=True,
        reclaim_policy="Delete",
        opts=pulumi.ResourceOptions(provider=provider, depends_on=node_pools),
    )


def declare_gke_cluster(
    config: StackConfig, opts: pulumi.ResourceOptions
) -> tuple[ClusterAccess, Network, pulumi.Output[str]]:
    """The cluster, its network, and its Workload Identity pool (the storage identities'
    bindings name it: known once the cluster has it)."""
    name = f"ml-platform-{config.environment}"
    network = Network(config, opts)
    nodes_account = gcp.serviceaccount.Account(
        "gke-nodes", account_id=f"{name}-nodes", display_name=f"{name} nodes", opts=opts
    )
    for role in (
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
        "roles/artifactregistry.reader",
    ):
        gcp.projects.IAMMember(
            f"gke-nodes-{role.rsplit('.', 1)[-1]}",
            project=config.gcp.project,
            role=role,
            member=nodes_account.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=opts,
        )
    cluster = gcp.container.Cluster(
        name,
        name=name,
        location=config.gcp.region,
        node_locations=list(config.gcp.zones),
        network=network.network.id,
        subnetwork=network.subnet.id,
        networking_mode="VPC_NATIVE",
        ip_allocation_policy={
            "cluster_secondary_range_name": "pods",
            "services_secondary_range_name": "services",
        },
        datapath_provider="ADVANCED_DATAPATH",
        workload_identity_config={"workload_pool": workload_pool(config.gcp.project)},
        # The PD CSI driver provisions the StorageClass's disks: on by default, declared here.
        addons_config={"gce_persistent_disk_csi_driver_config": {"enabled": True}},
        release_channel={"channel": config.gcp.release_channel},
        private_cluster_config={"enable_private_nodes": True, "enable_private_endpoint": False},
        # Only the organisation's ranges reach the public endpoint (nodes use the private one).
        master_authorized_networks_config={
            "cidr_blocks": [
                {"cidr_block": cidr, "display_name": f"allowed-{index}"}
                for index, cidr in enumerate(config.gcp.api_allowed_cidrs)
            ]
        },
        # Node pools are declared one by one below; GKE insists on a first pool, so it goes.
        remove_default_node_pool=True,
        initial_node_count=1,
        # The cluster holds no data (that is in Cloud SQL and GCS): let `pulumi destroy` work.
        deletion_protection=False,
        opts=opts,
    )
    node_pools = []
    for pool in config.pools:
        node_pools.append(
            gcp.container.NodePool(
                f"pool-{pool.name}",
                name=pool.name,
                cluster=cluster.id,
                location=config.gcp.region,
                autoscaling={
                    "min_node_count": pool.min_size,
                    "max_node_count": pool.max_size,
                },
                initial_node_count=pool.min_size,
                node_config={
                    "machine_type": pool.machine_type,
                    "disk_size_gb": pool.disk_gb,
                    "service_account": nodes_account.email,
                    "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                    "labels": dict(pool.labels),
                    "taints": node_pool_taints(pool),
                    "guest_accelerators": guest_accelerators(pool),
                    "workload_metadata_config": {"mode": WORKLOAD_METADATA_MODE},
                },
                opts=opts,
            )
        )
    provider = k8s.Provider("gke", kubeconfig=_kubeconfig(cluster))
    ready = [*node_pools, _storage_class(provider, node_pools)]
    access = ClusterAccess(provider=provider, ready=ready, storage_cidrs=network.storage_cidrs)
    pool = cluster.workload_identity_config.apply(lambda wi: wi.workload_pool)
    return access, network, pool
