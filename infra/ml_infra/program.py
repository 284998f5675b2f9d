"""The whole program: validate the stack config, then declare the platform for its cloud."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from ml_infra import airflow_release, mlflow_release, postgres_kind
from ml_infra.admission_policies import declare_admission_policies
from ml_infra.airflow_pools import declare_airflow_pools
from ml_infra.cluster_eks import declare_eks_cluster
from ml_infra.cluster_gke import declare_gke_cluster
from ml_infra.config import StackConfig
from ml_infra.database_setup import declare_database_setup
from ml_infra.endpoints import airflow_url, mlflow_url
from ml_infra.generated_secrets import GeneratedSecrets, generate_secrets
from ml_infra.helm_values import load_values_files
from ml_infra.mlflow_users import declare_mlflow_users
from ml_infra.model_identities import model_identities
from ml_infra.namespaces_rbac import (
    declare_gpu_quota,
    declare_namespaces,
    declare_rbac,
    declare_service_accounts,
)
from ml_infra.network_policies import declare_network_policies
from ml_infra.notifications import declare_notification_connections
from ml_infra.platform_document import platform_document
from ml_infra.platform_secrets import (
    declare_airflow_secrets,
    declare_credentials_secrets,
    declare_database_secrets,
    declare_postgres_admin_secret,
)
from ml_infra.pools_kind import declare_kind_cluster
from ml_infra.postgres_aws import ADMIN_USER as RDS_ADMIN_USER
from ml_infra.postgres_aws import declare_rds
from ml_infra.postgres_gcp import ADMIN_USER as CLOUD_SQL_ADMIN_USER
from ml_infra.postgres_gcp import declare_cloud_sql
from ml_infra.stack_settings import load_stack_config
from ml_infra.storage_aws import declare_s3_storage
from ml_infra.storage_gcp import declare_gcs_storage
from ml_infra.storage_kind import declare_kind_storage
from ml_infra.triggerer_modules import declare_trigger_modules


@dataclass(frozen=True)
class ValuesFiles:
    airflow: dict[str, Any]
    mlflow: dict[str, Any]


def read_values_files(config: StackConfig) -> ValuesFiles:
    """helm/ values for this stack, checked before anything is declared."""
    return ValuesFiles(
        airflow=load_values_files("airflow", config.environment, airflow_release.COMPUTED_KEYS),
        mlflow=load_values_files("mlflow", config.environment, mlflow_release.COMPUTED_KEYS),
    )


def _kind_foundation(config: StackConfig, generated: GeneratedSecrets):
    cluster = declare_kind_cluster(config)
    namespaces = declare_namespaces(config, cluster.provider)
    storage = declare_kind_storage(config, cluster.provider, namespaces["storage"])
    admin = declare_postgres_admin_secret(
        config, cluster.provider, namespaces["storage"], postgres_kind.ADMIN_USER, generated
    )
    server = postgres_kind.declare_kind_postgres(
        config, cluster.provider, namespaces["storage"], admin
    )
    return cluster, namespaces, storage, admin, server


def _aws_foundation(config: StackConfig, generated: GeneratedSecrets):
    opts = pulumi.ResourceOptions(provider=aws.Provider("aws", region=config.aws.region))
    cluster, network, oidc = declare_eks_cluster(config, opts)
    # Each storage identity's IAM role trusts the cluster's OIDC provider (IRSA).
    storage = declare_s3_storage(config, oidc, opts)
    server = declare_rds(config, network, generated.postgres_admin_password, opts)
    namespaces = declare_namespaces(config, cluster.provider)
    admin = declare_postgres_admin_secret(
        config, cluster.provider, namespaces["storage"], RDS_ADMIN_USER, generated
    )
    return cluster, namespaces, storage, admin, server


def _gcp_foundation(config: StackConfig, generated: GeneratedSecrets):
    provider = gcp.Provider("gcp", project=config.gcp.project, region=config.gcp.region)
    opts = pulumi.ResourceOptions(provider=provider)
    cluster, network, workload_pool = declare_gke_cluster(config, opts)
    # Each storage identity's service account trusts the cluster's pool (Workload Identity).
    storage = declare_gcs_storage(config, workload_pool, opts)
    server = declare_cloud_sql(config, network, generated.postgres_admin_password, opts)
    namespaces = declare_namespaces(config, cluster.provider)
    admin = declare_postgres_admin_secret(
        config, cluster.provider, namespaces["storage"], CLOUD_SQL_ADMIN_USER, generated
    )
    return cluster, namespaces, storage, admin, server


FOUNDATIONS = {"kind": _kind_foundation, "aws": _aws_foundation, "gcp": _gcp_foundation}


def declare_platform(config: StackConfig, values: ValuesFiles) -> None:
    generated = generate_secrets(config)
    cluster, namespaces, storage, admin, server = FOUNDATIONS[config.cloud](config, generated)
    provider = cluster.provider

    declare_service_accounts(config, provider, namespaces, storage)
    declare_rbac(config, provider, namespaces)
    declare_gpu_quota(config, provider, namespaces)
    declare_network_policies(config, provider, namespaces, cluster.storage_cidrs)
    declare_admission_policies(config, provider)

    credentials = declare_credentials_secrets(config, provider, namespaces, storage, generated)
    database_logins = declare_database_secrets(config, provider, namespaces, server, generated)
    airflow_secrets = declare_airflow_secrets(
        config, provider, namespaces["airflow"], storage, generated
    )
    airflow_secrets += declare_notification_connections(config, provider, namespaces["airflow"])
    airflow_secrets += declare_trigger_modules(config, provider, namespaces["airflow"])
    database_setup = declare_database_setup(
        config,
        provider,
        server,
        [generated.airflow_db_password, generated.mlflow_db_password],
        depends_on=[admin, *database_logins],
    )
    mlflow = mlflow_release.declare_mlflow(
        config,
        provider,
        values.mlflow,
        server,
        storage,
        depends_on=[database_setup, *credentials, *storage.ready, *cluster.ready],
    )
    declare_mlflow_users(config, provider, generated, depends_on=[mlflow, *credentials])
    airflow = airflow_release.declare_airflow(
        config,
        provider,
        values.airflow,
        generated,
        storage,
        depends_on=[database_setup, *airflow_secrets, *credentials, mlflow, *cluster.ready],
    )

    declare_airflow_pools(config, provider, depends_on=[airflow])

    buckets = config.storage.buckets
    pulumi.export("airflow_url", airflow_url(config))
    pulumi.export("mlflow_url", mlflow_url(config))
    pulumi.export(
        "buckets",
        {"datasets": buckets.datasets, "artifacts": buckets.artifacts, "logs": buckets.logs},
    )
    pulumi.export("platform_config", platform_document(config))
    pulumi.export("airflow_admin_user", config.airflow.admin_user)
    pulumi.export("airflow_admin_password", generated.airflow_admin_password)
    pulumi.export("mlflow_admin_user", config.mlflow.admin_user)
    pulumi.export("mlflow_admin_password", generated.mlflow_admin_password)


def main() -> None:
    """Everything that can be wrong with the config fails here, before any resource."""
    config = load_stack_config()
    model_identities(config)  # the DAG folder's model specs, each of a team on the stack
    values = read_values_files(config)
    declare_platform(config, values)
