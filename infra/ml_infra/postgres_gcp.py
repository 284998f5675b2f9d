"""GCP: one Cloud SQL PostgreSQL instance on a private IP in the cluster's VPC."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ml_infra.cluster_gke import Network
from ml_infra.config import StackConfig
from ml_infra.endpoints import POSTGRES_PORT
from ml_infra.resources import DatabaseServer

ADMIN_USER = "platform_admin"


def declare_cloud_sql(
    config: StackConfig,
    network: Network,
    admin_password: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> DatabaseServer:
    name = f"ml-platform-{config.environment}"
    # Private services access: Cloud SQL gets an address range peered with our VPC.
    peering_range = gcp.compute.GlobalAddress(
        f"{name}-sql",
        purpose="VPC_PEERING",
        address_type="INTERNAL",
        prefix_length=20,
        network=network.network.id,
        opts=opts,
    )
    peering = gcp.servicenetworking.Connection(
        f"{name}-sql",
        network=network.network.id,
        service="servicenetworking.googleapis.com",
        reserved_peering_ranges=[peering_range.name],
        opts=opts,
    )
    pg = config.postgres
    instance = gcp.sql.DatabaseInstance(
        name,
        name=name,
        region=config.gcp.region,
        database_version=f"POSTGRES_{pg.version}",
        deletion_protection=pg.deletion_protection,
        settings={
            "tier": pg.tier,
            "disk_size": pg.storage_gb,
            "availability_type": "REGIONAL" if pg.high_availability else "ZONAL",
            "ip_configuration": {
                "ipv4_enabled": False,
                "private_network": network.network.id,
                "ssl_mode": "ENCRYPTED_ONLY",
            },
            "backup_configuration": {"enabled": True, "point_in_time_recovery_enabled": True},
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[peering])),
    )
    admin = gcp.sql.User(
        f"{name}-admin", name=ADMIN_USER, instance=instance.name, password=admin_password, opts=opts
    )
    return DatabaseServer(
        host=instance.private_ip_address,
        port=POSTGRES_PORT,
        admin_user=ADMIN_USER,
        sslmode="require",
        ready=[instance, admin],
    )
