"""Training and serving deny all traffic by default and allow only what the platform uses."""

from __future__ import annotations

import ipaddress

import pytest
from pulumi_harness import S3_PREFIX_LIST_CIDRS, STACKS, declared, stack_values


def _policies(stack: str) -> dict[tuple[str, str], dict]:
    return {
        (d.inputs["metadata"]["namespace"], d.inputs["metadata"]["name"]): d.inputs["spec"]
        for d in declared(stack).of_type(":NetworkPolicy")
    }


def _egress_ports(spec: dict) -> set[int]:
    return {port["port"] for rule in spec.get("egress", []) for port in rule.get("ports", [])}


@pytest.mark.parametrize("stack", STACKS)
def test_default_deny_in_training_and_serving(stack: str):
    policies = _policies(stack)
    for namespace in ("ml-training", "ml-serving"):
        deny = policies[namespace, "default-deny"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


# Storage's ports per stack: SeaweedFS; GCS and GKE's metadata server (Workload Identity's
# tokens); S3 and STS, both HTTPS.
@pytest.mark.parametrize(
    ("stack", "storage_ports"), [("kind", {8333}), ("dev", {443, 80}), ("prod", {443})]
)
def test_training_pods_reach_dns_mlflow_storage_only(stack: str, storage_ports: set[int]):
    spec = _policies(stack)["ml-training", "allow-dns-mlflow-storage"]
    assert spec["policyTypes"] == ["Egress"]
    assert _egress_ports(spec) == {53, 5000, 8080} | storage_ports
    to_mlflow = next(r for r in spec["egress"] if r["ports"][0]["port"] == 5000)
    assert to_mlflow["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_deployer_reaches_the_kubernetes_api(stack: str):
    spec = _policies(stack)["ml-training", "allow-deployer-kube-api"]
    assert spec["podSelector"] == {"matchLabels": {"ml-platform/image": "deployer"}}
    assert _egress_ports(spec) == {443, 6443}
    # On a cloud, only where the API server's endpoints are: the VPC (EKS ENIs), the
    # cluster's subnet (GKE's private endpoint); kind's API server address is not known.
    (rule,) = spec["egress"]
    values = stack_values(stack)
    expected = {
        "kind": None,
        "dev": values["ml-platform:gcp"]["subnet_cidr"] if stack == "dev" else None,
        "prod": values["ml-platform:aws"]["vpc_cidr"] if stack == "prod" else None,
    }[stack]
    if expected is None:
        assert "to" not in rule
    else:
        assert rule["to"] == [{"ipBlock": {"cidr": expected}}]


@pytest.mark.parametrize("stack", STACKS)
def test_model_servers_take_traffic_on_their_port(stack: str):
    spec = _policies(stack)["ml-serving", "allow-model-server"]
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == [8080]
    assert _egress_ports(spec) == {53, 5000}


# Our reading of NetworkPolicy semantics, for policies that select every pod of their
# namespace (all of ours but the deployer's): a connection from namespace A to namespace B on
# a port is allowed when some Egress policy of A lets it out and some Ingress policy of B in.
# Places outside the cluster are addresses (_address resolves these names per stack).
KUBE_API = "kube-api"  # the API server
DATABASE = "database"  # RDS / Cloud SQL
OBJECT_STORAGE = "object-storage"  # S3 / GCS, where the cloud's network reaches them
STS = "sts"  # EKS: the STS interface endpoint, where IRSA pods get storage credentials
METADATA = "metadata"  # GKE: the metadata server, where Workload Identity pods get tokens
PUBLIC = "public"  # any other internet address (a git host, a file sharing site)
Address = ipaddress.IPv4Address


def _places(stack: str) -> dict[str, Address]:
    """An address of each place outside the cluster on `stack`."""
    values = stack_values(stack)
    places = {PUBLIC: ipaddress.ip_address("93.184.215.14")}
    if stack == "prod":  # the API server's ENIs and RDS in the VPC; S3 at its prefix list
        in_vpc = ipaddress.ip_network(values["ml-platform:aws"]["vpc_cidr"])[200]
        s3 = ipaddress.ip_network(S3_PREFIX_LIST_CIDRS[1])[10]
        # An interface of the STS endpoint: AWS picks its address in a private subnet.
        sts = ipaddress.ip_network(_private_subnets()[1].inputs["cidrBlock"])[37]
        return places | {KUBE_API: in_vpc, DATABASE: in_vpc, OBJECT_STORAGE: s3, STS: sts}
    if stack == "dev":  # the private endpoint in the subnet; Cloud SQL as the mocks answer it
        in_subnet = ipaddress.ip_network(values["ml-platform:gcp"]["subnet_cidr"])[2]
        return places | {
            KUBE_API: in_subnet,
            DATABASE: ipaddress.ip_address("10.99.0.3"),
            OBJECT_STORAGE: ipaddress.ip_address("199.36.153.9"),  # private.googleapis.com
            METADATA: ipaddress.ip_address("169.254.169.254"),
        }
    return places | {KUBE_API: ipaddress.ip_address("172.18.0.2")}  # kind's Docker network


def _private_subnets() -> list:
    """The prod VPC's private subnets, as declared (one per availability zone), in the order
    of the stack's zones (the mocks record resources in whatever order they resolve)."""
    zones = stack_values("prod")["ml-platform:aws"]["availability_zones"]
    subnets = [s for s in declared("prod").of_type("ec2/subnet:Subnet") if "-private-" in s.name]
    return sorted(subnets, key=lambda s: zones.index(s.name.rsplit("-private-", 1)[1]))


def _peer_matches(peer: dict, own: str, other: str | Address) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return (
            isinstance(other, Address)
            and other in ipaddress.ip_network(block["cidr"])
            and not any(other in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
        )
    if "namespaceSelector" in peer:
        wanted = peer["namespaceSelector"].get("matchLabels", {})
        return (
            isinstance(other, str)
            and wanted.items() <= {"kubernetes.io/metadata.name": other}.items()
        )
    return other == own  # a bare podSelector: pods of the policy's own namespace


def _rule_allows(rule: dict, peers_key: str, own: str, other: str | Address, port: int) -> bool:
    ports = rule.get("ports")
    if ports and port not in {p["port"] for p in ports}:
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_matches(peer, own, other) for peer in peers)


def _allowed(
    policies: dict, direction: str, namespace: str | Address, other: str | Address, port: int
) -> bool:
    if isinstance(namespace, Address):
        return True  # nothing of ours restricts places outside the cluster
    selecting = [
        spec
        for (ns, _), spec in policies.items()
        if ns == namespace and spec["podSelector"] == {} and direction in spec["policyTypes"]
    ]
    if not selecting:
        return True  # no policy selects the pods: Kubernetes allows everything
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any(
        _rule_allows(rule, peers_key, namespace, other, port)
        for spec in selecting
        for rule in spec.get(key, [])
    )


def _connects(policies: dict, source: str, target: str, port: int, stack: str = "kind") -> bool:
    target = _places(stack).get(target, target)
    return _allowed(policies, "Egress", source, target, port) and _allowed(
        policies, "Ingress", target, source, port
    )


# (from, to, port, why): on every stack; on kind the database and S3 are in the storage
# namespace, on a cloud outside the cluster.
NEEDED = [
    ("airflow", "airflow", 8080, "workers and the scheduler call the API server"),
    ("airflow", "airflow", 6379, "Celery's Redis"),
    ("airflow", "kube-system", 53, "DNS"),
    ("airflow", KUBE_API, 443, "KubernetesPodOperator creates pods, reads logs, execs"),
    ("mlflow", "mlflow", 5000, "the server's own health checks, the mlflow-users Job"),
    ("ml-training", "mlflow", 5000, "training logs runs and models"),
    ("ml-serving", "mlflow", 5000, "model servers load their model"),
    ("ml-training", "ml-serving", 8080, "the deployer's smoke test"),
]
KIND_NEEDED = [
    ("airflow", "storage", 5432, "Airflow's metadata database"),
    ("mlflow", "storage", 5432, "MLflow's backend store"),
    ("storage", "storage", 5432, "the database setup Job"),
    ("airflow", "storage", 8333, "task logs in S3"),
    ("mlflow", "storage", 8333, "artifacts, proxied"),
    ("ml-training", "storage", 8333, "datasets"),
]
CLOUD_NEEDED = [
    ("airflow", DATABASE, 5432, "Airflow's metadata database"),
    ("mlflow", DATABASE, 5432, "MLflow's backend store"),
    ("storage", DATABASE, 5432, "the database setup Job"),
    ("airflow", OBJECT_STORAGE, 443, "task logs in S3/GCS"),
    ("airflow", PUBLIC, 443, "the git DAG bundle (any host)"),
    ("mlflow", OBJECT_STORAGE, 443, "artifacts, proxied"),
    ("ml-training", OBJECT_STORAGE, 443, "datasets"),
]
# Paths that must stay closed: the metadata database, the object store's admin identity,
# the Airflow API and MLflow from where no platform component needs them.
FORBIDDEN = [
    ("ml-training", "airflow", 8080),
    ("ml-serving", "airflow", 8080),
    ("ml-training", "storage", 5432),
    ("ml-serving", "storage", 5432),
    ("ml-serving", "storage", 8333),
    ("ml-serving", "ml-training", 8080),
    ("airflow", "mlflow", 5000),
    ("storage", "mlflow", 5000),
    ("ml-training", "mlflow", 5432),
    # Out of the cluster, training reaches object storage alone: no other address.
    ("ml-training", PUBLIC, 443),
    ("ml-training", PUBLIC, 80),
    ("mlflow", PUBLIC, 443),
    ("ml-serving", PUBLIC, 443),
    ("storage", PUBLIC, 443),
]
CLOUD_FORBIDDEN = [
    ("ml-serving", OBJECT_STORAGE, 443),  # model servers load models through MLflow
    ("ml-training", DATABASE, 5432),
]
# EKS: the pods with a storage identity (IRSA) get its credentials from STS, over HTTPS to
# the VPC's interface endpoint; model servers have none.
AWS_NEEDED = [
    ("ml-training", STS, 443, "team roles' credentials (AssumeRoleWithWebIdentity)"),
    ("mlflow", STS, 443, "MLflow's role's credentials"),
    ("airflow", STS, 443, "Airflow's role's credentials"),
]
AWS_FORBIDDEN = [("ml-serving", STS, 443), ("storage", STS, 443), ("ml-training", STS, 80)]
# GKE: the same pods get their GCP service account's tokens from the GKE metadata server.
GCP_NEEDED = [
    ("ml-training", METADATA, 80, "team identities' tokens (Workload Identity)"),
    ("mlflow", METADATA, 80, "MLflow's identity's tokens"),
    ("airflow", METADATA, 80, "Airflow's identity's tokens"),
]
GCP_FORBIDDEN = [
    ("ml-serving", METADATA, 80),
    ("storage", METADATA, 80),
    ("ml-training", METADATA, 443),
]


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_denies_by_default(stack: str):
    policies = _policies(stack)
    for namespace in ("airflow", "mlflow", "storage", "ml-training", "ml-serving"):
        assert policies[namespace, "default-deny"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }, namespace


@pytest.mark.parametrize("stack", STACKS)
def test_each_component_reaches_what_it_needs(stack: str):
    policies = _policies(stack)
    needed = NEEDED + (KIND_NEEDED if stack == "kind" else CLOUD_NEEDED)
    needed += AWS_NEEDED if stack == "prod" else []
    needed += GCP_NEEDED if stack == "dev" else []
    blocked = [
        why
        for source, target, port, why in needed
        if not _connects(policies, source, target, port, stack)
    ]
    assert blocked == []


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_else_reaches_the_databases_the_airflow_api_or_mlflow(stack: str):
    policies = _policies(stack)
    forbidden = FORBIDDEN + (CLOUD_FORBIDDEN if stack != "kind" else [])
    forbidden += AWS_FORBIDDEN if stack == "prod" else []
    forbidden += GCP_FORBIDDEN if stack == "dev" else []
    opened = [path for path in forbidden if _connects(policies, *path, stack)]
    assert opened == []


def test_the_evaluator_sees_a_closed_path():
    """Without the storage namespace's ingress rules, kind's database is closed to airflow."""
    policies = {
        k: v for k, v in _policies("kind").items() if k[1] != "allow-database-and-s3-clients"
    }
    assert not _connects(policies, "airflow", "storage", 5432)
    assert _connects(_policies("kind"), "airflow", "storage", 5432)


# Object storage in the cloud: the only addresses out of the cluster training pods reach.
STORAGE_RANGES = {"prod": sorted(S3_PREFIX_LIST_CIDRS), "dev": ["199.36.153.8/30"]}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cloud_storage_egress_is_the_storage_ranges_alone(stack: str):
    """HTTPS to object storage's ranges and, on EKS only, to the private subnets where STS's
    endpoint is (as declared, not as the policies compute them); no other address."""
    policies = _policies(stack)
    expected = [[{"ipBlock": {"cidr": cidr}} for cidr in STORAGE_RANGES[stack]]]
    if stack == "prod":
        expected.append([{"ipBlock": {"cidr": s.inputs["cidrBlock"]}} for s in _private_subnets()])
    for namespace, name in (
        ("ml-training", "allow-dns-mlflow-storage"),
        ("mlflow", "allow-tracking-clients"),
        ("airflow", "allow-database-logs-kube-api"),
    ):
        to_storage = [r for r in policies[namespace, name]["egress"] if "ipBlock" in str(r)]
        storage = [r for r in to_storage if r["ports"] == [{"protocol": "TCP", "port": 443}]]
        assert [r["to"] for r in storage] == expected, (namespace, name)


def test_gke_pods_reach_the_metadata_server_alone_for_tokens():
    """The one credential rule on GKE: the metadata server's address and HTTP port, in the
    three namespaces whose pods have a storage identity; without it they get no token."""
    policies = _policies("dev")
    rule = {
        "to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}],
        "ports": [{"protocol": "TCP", "port": 80}],
    }
    for namespace, name in (
        ("ml-training", "allow-dns-mlflow-storage"),
        ("mlflow", "allow-tracking-clients"),
        ("airflow", "allow-database-logs-kube-api"),
    ):
        egress = policies[namespace, name]["egress"]
        assert egress.count(rule) == 1, (namespace, name)
        narrowed = policies | {
            (namespace, name): {
                **policies[namespace, name],
                "egress": [r for r in egress if r != rule],
            }
        }
        assert not _connects(narrowed, namespace, METADATA, 80, "dev"), namespace
    assert rule not in policies["ml-serving", "allow-model-server"]["egress"]


def test_the_evaluator_sees_sts_closed_without_its_rule():
    """Training's egress without its rule to the private subnets (as it was before) reaches
    S3 but not STS: IRSA pods would get no credentials."""
    policies = _policies("prod")
    spec = policies["ml-training", "allow-dns-mlflow-storage"]
    subnets = {s.inputs["cidrBlock"] for s in _private_subnets()}
    kept = [
        r
        for r in spec["egress"]
        if not subnets & {p["ipBlock"]["cidr"] for p in r.get("to", []) if "ipBlock" in p}
    ]
    assert len(kept) == len(spec["egress"]) - 1
    narrowed = policies | {("ml-training", "allow-dns-mlflow-storage"): {**spec, "egress": kept}}
    assert _connects(narrowed, "ml-training", OBJECT_STORAGE, 443, "prod")
    assert not _connects(narrowed, "ml-training", STS, 443, "prod")
    assert _connects(policies, "ml-training", STS, 443, "prod")


def test_the_evaluator_sees_an_open_internet():
    """Training's storage rule widened to 0.0.0.0/0 (what it was) reaches any address."""
    policies = _policies("prod")
    spec = policies["ml-training", "allow-dns-mlflow-storage"]
    opened = [
        {**rule, "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]} if "ipBlock" in str(rule) else rule
        for rule in spec["egress"]
    ]
    widened = policies | {("ml-training", "allow-dns-mlflow-storage"): {**spec, "egress": opened}}
    assert not _connects(policies, "ml-training", PUBLIC, 443, "prod")
    assert _connects(widened, "ml-training", PUBLIC, 443, "prod")


def test_eks_routes_s3_through_a_gateway_endpoint():
    """The storage ranges are those of the region's S3 prefix list, which a gateway endpoint
    on the nodes' route table routes inside AWS."""
    prod = declared("prod")
    region = stack_values("prod")["ml-platform:aws"]["region"]
    endpoints = prod.of_type("ec2/vpcEndpoint:VpcEndpoint")
    (endpoint,) = [e for e in endpoints if e.inputs["vpcEndpointType"] == "Gateway"]
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{region}.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    private_routes = prod.named("ml-platform-prod-private", "ec2/routeTable:RouteTable")
    assert endpoint.inputs["routeTableIds"] == [f"{private_routes.name}-id"]
    lookups = [args for token, args in prod.calls if token.endswith(":getManagedPrefixList")]
    assert [args["name"] for args in lookups] == [f"com.amazonaws.{region}.s3"]


def test_eks_answers_sts_inside_the_vpc():
    """An STS interface endpoint with private DNS (the regional name resolves to it in the
    VPC) in every private subnet, taking HTTPS from the VPC alone."""
    prod = declared("prod")
    aws_values = stack_values("prod")["ml-platform:aws"]
    (endpoint,) = [
        e
        for e in prod.of_type("ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs["vpcEndpointType"] == "Interface"
    ]
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{aws_values['region']}.sts"
    assert endpoint.inputs["privateDnsEnabled"] is True
    subnets = _private_subnets()
    assert len(subnets) == len(aws_values["availability_zones"])
    assert endpoint.inputs["subnetIds"] == [f"{s.name}-id" for s in subnets]
    (group_id,) = endpoint.inputs["securityGroupIds"]
    (group,) = [
        g for g in prod.of_type("ec2/securityGroup:SecurityGroup") if f"{g.name}-id" == group_id
    ]
    assert group.inputs["vpcId"] == "ml-platform-prod-id"
    assert [
        (r["protocol"], r["fromPort"], r["toPort"], r["cidrBlocks"])
        for r in group.inputs["ingress"]
    ] == [("tcp", 443, 443, [aws_values["vpc_cidr"]])]


def test_gke_resolves_google_apis_to_the_private_range():
    """Google's DNS for Private Google Access: a private googleapis.com zone on the VPC,
    private.googleapis.com at 199.36.153.8-11 and every other name a CNAME to it."""
    dev = declared("dev")
    assert dev.named("ml-platform-dev", "compute/subnetwork:Subnetwork").inputs[
        "privateIpGoogleAccess"
    ]
    (zone,) = dev.of_type("dns/managedZone:ManagedZone")
    assert (zone.inputs["dnsName"], zone.inputs["visibility"]) == ("googleapis.com.", "private")
    assert zone.inputs["privateVisibilityConfig"]["networks"] == [
        {"networkUrl": "ml-platform-dev-id"}
    ]
    records = {
        (r.inputs["name"], r.inputs["type"]): r.inputs["rrdatas"]
        for r in dev.of_type("dns/recordSet:RecordSet")
    }
    assert records == {
        ("private.googleapis.com.", "A"): [f"199.36.153.{n}" for n in (8, 9, 10, 11)],
        ("*.googleapis.com.", "CNAME"): ["private.googleapis.com."],
    }
    for record in dev.of_type("dns/recordSet:RecordSet"):
        assert record.inputs["managedZone"] == zone.inputs.get("name", zone.name)
