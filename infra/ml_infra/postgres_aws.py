"""AWS: one RDS PostgreSQL instance in the private subnets, reachable from the VPC only."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from ml_infra.cluster_eks import Network
from ml_infra.config import StackConfig
from ml_infra.endpoints import POSTGRES_PORT
from ml_infra.resources import DatabaseServer

ADMIN_USER = "platform_admin"


def declare_rds(
    config: StackConfig,
    network: Network,
    admin_password: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> DatabaseServer:
    name = f"ml-platform-{config.environment}"
    subnets = aws.rds.SubnetGroup(
        name, subnet_ids=[s.id for s in network.private_subnets], opts=opts
    )
    firewall = aws.ec2.SecurityGroup(
        f"{name}-postgres",
        vpc_id=network.vpc.id,
        description="PostgreSQL from inside the VPC",
        ingress=[
            {
                "protocol": "tcp",
                "from_port": POSTGRES_PORT,
                "to_port": POSTGRES_PORT,
                "cidr_blocks": [config.aws.vpc_cidr],
            }
        ],
        opts=opts,
    )
    pg = config.postgres
    instance = aws.rds.Instance(
        name,
        identifier=name,
        engine="postgres",
        engine_version=pg.version,
        instance_class=pg.instance_class,
        allocated_storage=pg.storage_gb,
        storage_encrypted=True,
        username=ADMIN_USER,
        password=admin_password,
        db_subnet_group_name=subnets.name,
        vpc_security_group_ids=[firewall.id],
        multi_az=pg.multi_az,
        publicly_accessible=False,
        backup_retention_period=7,
        deletion_protection=pg.deletion_protection,
        # A protected database keeps a final snapshot if it is ever deleted on purpose.
        skip_final_snapshot=not pg.deletion_protection,
        final_snapshot_identifier=f"{name}-final" if pg.deletion_protection else None,
        opts=opts,
    )
    return DatabaseServer(
        host=instance.address,
        port=POSTGRES_PORT,
        admin_user=ADMIN_USER,
        sslmode="require",
        ready=[instance],
    )
