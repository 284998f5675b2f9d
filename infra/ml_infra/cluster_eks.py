"""AWS: a VPC, an EKS cluster and one managed node group per pool.

GPU pools use the AL2023 NVIDIA AMI (driver and container toolkit included); the NVIDIA
device plugin (Helm, pinned) advertises `nvidia.com/gpu`, and the cluster autoscaler (Helm,
pinned, IRSA) scales node groups between their bounds, from zero for GPU pools: it reads
the labels and taints of an empty managed node group from the EKS API.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_infra import charts
from ml_infra.config import AwsCluster, Pool, StackConfig
from ml_infra.helm_release import helm_release
from ml_infra.kube import kubeconfig
from ml_infra.resources import ClusterAccess

GPU_AMI = "AL2023_x86_64_NVIDIA"
CPU_AMI = "AL2023_x86_64_STANDARD"
EKS_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
AUTOSCALER_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"  # the add-on's controller
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"


def _assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def _role(name: str, service: str, policies: list[str], opts: pulumi.ResourceOptions):
    role = aws.iam.Role(name, assume_role_policy=_assume_role(service), opts=opts)
    for policy in policies:
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy.rsplit('/', 1)[-1]}", role=role.name, policy_arn=policy, opts=opts
        )
    return role


def subnet_cidrs(cluster: AwsCluster) -> list[tuple[str, str]]:
    """(public, private) CIDR per availability zone: the VPC split in /20s (smaller blocks
    for a VPC under /16). The NetworkPolicies read the private ones from here too."""
    cidr = ipaddress.ip_network(cluster.vpc_cidr)
    blocks = [str(block) for block in cidr.subnets(new_prefix=max(cidr.prefixlen + 4, 20))]
    return [(blocks[2 * i], blocks[2 * i + 1]) for i in range(len(cluster.availability_zones))]


def private_subnet_cidrs(cluster: AwsCluster) -> list[str]:
    """Where the nodes, their pods and the STS endpoint's network interfaces are."""
    return [private for _, private in subnet_cidrs(cluster)]


class Network:
    def __init__(self, config: StackConfig, opts: pulumi.ResourceOptions) -> None:
        name = f"ml-platform-{config.environment}"
        blocks = subnet_cidrs(config.aws)
        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=config.aws.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=opts,
        )
        igw = aws.ec2.InternetGateway(name, vpc_id=self.vpc.id, opts=opts)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            opts=opts,
        )
        self.public_subnets = []
        self.private_subnets = []
        for zone, (public_cidr, private_cidr) in zip(
            config.aws.availability_zones, blocks, strict=True
        ):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=public_cidr,
                map_public_ip_on_launch=True,
                tags={"Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=opts,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=opts,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=private_cidr,
                tags={"Name": f"{name}-private-{zone}", "kubernetes.io/role/internal-elb": "1"},
                opts=opts,
            )
            self.public_subnets.append(public)
            self.private_subnets.append(private)
        # One NAT gateway: nodes pull images through it (S3 has its own endpoint, below).
        eip = aws.ec2.Eip(name, domain="vpc", opts=opts)
        nat = aws.ec2.NatGateway(
            name,
            allocation_id=eip.id,
            subnet_id=self.public_subnets[0].id,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[igw])),
        )
        private_routes = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            opts=opts,
        )
        for zone, subnet in zip(config.aws.availability_zones, self.private_subnets, strict=True):
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=subnet.id,
                route_table_id=private_routes.id,
                opts=opts,
            )
        self.storage_cidrs = _s3_gateway(name, config.aws.region, self.vpc, private_routes, opts)
        self.sts_endpoint = _sts_endpoint(name, config.aws, self.vpc, self.private_subnets, opts)


def _s3_gateway(
    name: str,
    region: str,
    vpc: aws.ec2.Vpc,
    routes: aws.ec2.RouteTable,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[list[str]]:
    """S3 through a gateway endpoint on the nodes' route table, not the NAT gateway. Returns
    the CIDRs of the region's S3 prefix list, the routes the endpoint adds: the only
    addresses the NetworkPolicies let pods reach storage at (after the endpoint exists)."""
    service = f"com.amazonaws.{region}.s3"  # the endpoint's service and the prefix list's name
    endpoint = aws.ec2.VpcEndpoint(
        f"{name}-s3",
        vpc_id=vpc.id,
        service_name=service,
        vpc_endpoint_type="Gateway",
        route_table_ids=[routes.id],
        tags={"Name": f"{name}-s3"},
        opts=opts,
    )
    prefix_list = aws.ec2.get_managed_prefix_list_output(
        name=service, opts=pulumi.InvokeOutputOptions(provider=opts.provider)
    )
    return pulumi.Output.all(endpoint.id, prefix_list.entries).apply(
        # Entries arrive as mappings (typed or not): index them.
        lambda args: sorted(entry["cidr"] for entry in args[1] or [])
    )


def _sts_endpoint(
    name: str,
    cluster: AwsCluster,
    vpc: aws.ec2.Vpc,
    subnets: Sequence[aws.ec2.Subnet],
    opts: pulumi.ResourceOptions,
) -> aws.ec2.VpcEndpoint:
    """STS inside the VPC: pods with an IRSA role trade their web identity token for
    credentials there (AssumeRoleWithWebIdentity), and the NetworkPolicies let them reach no
    public address. With private DNS, `sts.<region>.amazonaws.com` resolves in the VPC to the
    endpoint's interfaces in the private subnets (the policies allow those subnets on 443).
    Only the regional name does: EKS's pod identity webhook sets AWS_STS_REGIONAL_ENDPOINTS=
    regional in IRSA pods (its default on current EKS), so the SDKs call that name, not the
    global sts.amazonaws.com."""
    group = aws.ec2.SecurityGroup(
        f"{name}-sts",
        vpc_id=vpc.id,
        description="HTTPS from the VPC to the STS endpoint",
        ingress=[
            {
                "protocol": "tcp",
                "from_port": 443,
                "to_port": 443,
                "cidr_blocks": [cluster.vpc_cidr],
            }
        ],
        tags={"Name": f"{name}-sts"},
        opts=opts,
    )
    return aws.ec2.VpcEndpoint(
        f"{name}-sts",
        vpc_id=vpc.id,
        service_name=f"com.amazonaws.{cluster.region}.sts",
        vpc_endpoint_type="Interface",
        private_dns_enabled=True,
        subnet_ids=[subnet.id for subnet in subnets],
        security_group_ids=[group.id],
        tags={"Name": f"{name}-sts"},
        opts=opts,
    )


def node_group_taints(pool: Pool) -> list[dict[str, str]]:
    return [
        {"key": t.key, "value": t.value, "effect": EKS_TAINT_EFFECTS[t.effect]} for t in pool.taints
    ]


def _kubeconfig(cluster: aws.eks.Cluster, region: str) -> pulumi.Output[str]:
    def render(args: list) -> str:
        name, endpoint, ca = args
        token = ["eks", "get-token", "--cluster-name", name, "--region", region]
        return kubeconfig(name, endpoint, ca, {"command": "aws", "args": token})

    return pulumi.Output.all(
        cluster.name, cluster.endpoint, cluster.certificate_authority.data
    ).apply(render)


def service_account_role(
    name: str,
    oidc: aws.iam.OpenIdConnectProvider,
    subjects: Sequence[tuple[str, str]],
    opts: pulumi.ResourceOptions,
    role_name: str | None = None,
) -> aws.iam.Role:
    """An IAM role that only the service accounts `subjects` ((namespace, name) pairs) of this
    cluster may assume, with a token issued for STS (IRSA)."""
    accounts = [f"system:serviceaccount:{ns}:{account}" for ns, account in subjects]
    if not accounts:
        raise ValueError(f"IAM role {name}: no service account may assume it")

    def trust(args: list) -> str:
        arn, issuer = args
        host = issuer.removeprefix("https://")
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            # A list under StringEquals matches any one of its values.
                            "StringEquals": {
                                f"{host}:sub": accounts[0] if len(accounts) == 1 else accounts,
                                f"{host}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            }
        )

    return aws.iam.Role(
        name,
        name=role_name,
        assume_role_policy=pulumi.Output.all(oidc.arn, oidc.url).apply(trust),
        opts=opts,
    )


def autoscaler_policy(cluster_name: str) -> dict:
    """Describe anything (those calls take no resource), but scale or terminate only the
    Auto Scaling groups of this cluster's node groups, which EKS tags as owned by it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                    "eks:DescribeNodegroup",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"
                    }
                },
            },
        ],
    }


def _autoscaler_role(
    name: str, oidc: aws.iam.OpenIdConnectProvider, opts: pulumi.ResourceOptions
) -> aws.iam.Role:
    role = service_account_role(
        "cluster-autoscaler", oidc, [(AUTOSCALER_NAMESPACE, AUTOSCALER_SERVICE_ACCOUNT)], opts
    )
    aws.iam.RolePolicy(
        "cluster-autoscaler", role=role.id, policy=json.dumps(autoscaler_policy(name)), opts=opts
    )
    return role


def _ebs_csi_driver(
    cluster: aws.eks.Cluster,
    oidc: aws.iam.OpenIdConnectProvider,
    opts: pulumi.ResourceOptions,
) -> aws.eks.Addon:
    """The EBS CSI driver: Airflow's workers, triggerer and Redis claim volumes, which a new
    EKS cluster cannot provision without it."""
    role = service_account_role(
        "ebs-csi-driver", oidc, [("kube-system", EBS_CSI_SERVICE_ACCOUNT)], opts
    )
    aws.iam.RolePolicyAttachment(
        "ebs-csi-driver", role=role.name, policy_arn=EBS_CSI_POLICY, opts=opts
    )
    return aws.eks.Addon(
        "aws-ebs-csi-driver",
        cluster_name=cluster.name,
        addon_name="aws-ebs-csi-driver",
        service_account_role_arn=role.arn,
        resolve_conflicts_on_update="OVERWRITE",
        opts=opts,
    )


def _default_storage_class(provider: k8s.Provider, driver: pulumi.Resource) -> pulumi.Resource:
    """gp3, encrypted, bound where the pod lands (an EBS volume lives in one zone)."""
    return k8s.storage.v1.StorageClass(
        "gp3",
        metadata={
            "name": "gp3",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        provisioner="ebs.csi.aws.com",
        parameters={"type": "gp3", "encrypted": "true"},
        volume_binding_mode="WaitForFirstConsumer",
        allow_volume_expansion=True,
        reclaim_policy="Delete",
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[driver]),
    )


def declare_eks_cluster(
    config: StackConfig, opts: pulumi.ResourceOptions
) -> tuple[ClusterAccess, Network, aws.iam.OpenIdConnectProvider]:
    """The cluster, its network, and its OIDC provider (IRSA roles of other modules trust it)."""
    name = f"ml-platform-{config.environment}"
    network = Network(config, opts)
    cluster_role = _role(
        f"{name}-cluster",
        "eks.amazonaws.com",
        ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"],
        opts,
    )
    cluster = aws.eks.Cluster(
        name,
        name=name,
        version=config.aws.kubernetes_version,
        role_arn=cluster_role.arn,
        vpc_config={
            "subnet_ids": [s.id for s in network.private_subnets + network.public_subnets],
            "endpoint_private_access": True,
            "endpoint_public_access": True,
            # Only the organisation's ranges reach the public endpoint; nodes use the private.
            "public_access_cidrs": list(config.aws.api_allowed_cidrs),
        },
        access_config={
            "authentication_mode": "API",
            "bootstrap_cluster_creator_admin_permissions": True,
        },
        opts=opts,
    )
    # The VPC CNI enforces NetworkPolicies only when asked to.
    cni = aws.eks.Addon(
        "vpc-cni",
        cluster_name=cluster.name,
        addon_name="vpc-cni",
        configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
        resolve_conflicts_on_update="OVERWRITE",
        opts=opts,
    )
    node_role = _role(
        f"{name}-nodes",
        "ec2.amazonaws.com",
        [
            "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
            "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
            "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        ],
        opts,
    )
    node_groups = []
    for pool in config.pools:
        node_groups.append(
            aws.eks.NodeGroup(
                f"pool-{pool.name}",
                cluster_name=cluster.name,
                node_group_name=pool.name,
                node_role_arn=node_role.arn,
                subnet_ids=[s.id for s in network.private_subnets],
                instance_types=[pool.machine_type],
                ami_type=GPU_AMI if pool.gpu else CPU_AMI,
                disk_size=pool.disk_gb,
                scaling_config={
                    "min_size": pool.min_size,
                    "max_size": pool.max_size,
                    "desired_size": pool.min_size,
                },
                labels=dict(pool.labels),
                taints=node_group_taints(pool),
                opts=pulumi.ResourceOptions.merge(
                    opts,
                    # The autoscaler owns the node count once the group exists.
                    pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"]),
                ),
            )
        )
    provider = k8s.Provider("eks", kubeconfig=_kubeconfig(cluster, config.aws.region))
    # IRSA pods get no credentials before the STS endpoint answers.
    ready: list[pulumi.Resource] = [cni, *node_groups, network.sts_endpoint]
    if config.gpu_pools:
        ready.append(
            helm_release(
                "nvidia-device-plugin",
                charts.NVIDIA_DEVICE_PLUGIN,
                release_name="nvidia-device-plugin",
                namespace="kube-system",
                # The chart's default affinity selects nodes labelled nvidia.com/gpu.present=true
                # and it tolerates the nvidia.com/gpu taint: exactly our GPU pools.
                values={},
                provider=provider,
                depends_on=node_groups,
            )
        )
    oidc = aws.iam.OpenIdConnectProvider(
        "eks-oidc",
        url=cluster.identities[0].oidcs[0].issuer,
        client_id_lists=["sts.amazonaws.com"],
        opts=opts,
    )
    ebs = _ebs_csi_driver(
        cluster,
        oidc,
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=node_groups)),
    )
    ready += [ebs, _default_storage_class(provider, ebs)]
    role = _autoscaler_role(name, oidc, opts)
    ready.append(
        helm_release(
            "cluster-autoscaler",
            charts.CLUSTER_AUTOSCALER,
            release_name="cluster-autoscaler",
            namespace=AUTOSCALER_NAMESPACE,
            values={
                "cloudProvider": "aws",
                "awsRegion": config.aws.region,
                "autoDiscovery": {"clusterName": cluster.name},
                "rbac": {
                    "serviceAccount": {
                        "name": AUTOSCALER_SERVICE_ACCOUNT,
                        "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                    }
                },
            },
            provider=provider,
            depends_on=[*node_groups, oidc],
        )
    )
    access = ClusterAccess(provider=provider, ready=ready, storage_cidrs=network.storage_cidrs)
    return access, network, oidc
