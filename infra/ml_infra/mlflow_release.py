"""MLflow: community-charts/mlflow with a PostgreSQL backend, proxied artifacts and auth on.

Artifacts: the server proxies them (clients hold no bucket credentials) to the artifacts
bucket, s3:// on kind and AWS, gs:// on GCP, where the chart's burakince/mlflow image brings
google-cloud-storage and the server's service account its Workload Identity.

Why this chart: MLflow publishes no chart of its own; community-charts/mlflow is maintained
(it follows MLflow releases within days), takes the backend store, the artifact store and
the basic-auth admin from existing Secrets, runs `mlflow db upgrade` as an init container
instead of a Helm hook, and bundles no database (Bitnami's chart dependencies are off).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra import charts
from ml_infra.config import StackConfig
from ml_infra.endpoints import (
    MLFLOW_RELEASE,
    MLFLOW_SERVICE_ACCOUNT,
    service_host,
    storage_endpoint,
    storage_region,
    storage_scheme,
)
from ml_infra.helm_release import helm_release
from ml_infra.helm_values import merge
from ml_infra.platform_secrets import MLFLOW_DATABASE_SECRET
from ml_infra.resources import DatabaseServer, StorageAccess
from ml_infra.team_identities import MLFLOW_STORAGE

# Every key the program sets; helm/mlflow/*.yaml must leave them alone.
COMPUTED_KEYS = (
    "service.port",
    "service.containerPort",
    "backendStore.postgres",
    "backendStore.existingDatabaseSecret",
    "artifactRoot.s3",
    "artifactRoot.gcs",
    "auth.existingAdminSecret",
    "auth.postgres",
    "extraEnvVars",
    "serverAllowedHosts",
    "serviceAccount.name",
    "serviceAccount.annotations",
)


def allowed_hosts(config: StackConfig) -> list[str]:
    """Host headers MLflow's security middleware accepts: the Service's names, and
    localhost for `kubectl port-forward`."""
    ns = config.namespaces["mlflow"]
    port = config.mlflow.port
    names = [
        service_host(MLFLOW_RELEASE, ns),
        f"{MLFLOW_RELEASE}.{ns}.svc",
        f"{MLFLOW_RELEASE}.{ns}",
    ]
    return [host for name in names for host in (name, f"{name}:{port}")] + ["localhost:*"]


def artifact_store(config: StackConfig, storage: StorageAccess) -> dict[str, Any]:
    """The artifacts bucket, reached with the MLflow identity's key where it has one. In the
    cloud the server's service account carries the identity: on AWS boto3 finds the web
    identity token of its role itself, on GCP google-cloud-storage the Workload Identity
    tokens of its GCP service account (the chart's gcs store has no credential values)."""
    bucket = config.storage.buckets.artifacts
    if storage_scheme(config) == "gs":
        return {"gcs": {"enabled": True, "bucket": bucket}}
    s3: dict[str, Any] = {"enabled": True, "bucket": bucket}
    if storage.key(MLFLOW_STORAGE) is not None:
        s3["existingSecret"] = {
            "name": config.storage.credentials_secret,
            "keyOfAccessKeyId": "AWS_ACCESS_KEY_ID",
            "keyOfSecretAccessKey": "AWS_SECRET_ACCESS_KEY",
        }
    return {"s3": s3}


def mlflow_computed_values(
    config: StackConfig, server: DatabaseServer, storage: StorageAccess
) -> dict[str, Any]:
    database = {
        "enabled": True,
        "host": server.host,
        "port": server.port,
    }
    extra_env = {"PGSSLMODE": server.sslmode}
    if storage_scheme(config) == "s3":
        extra_env["AWS_DEFAULT_REGION"] = storage_region(config)
        endpoint = storage_endpoint(config)
        if endpoint:
            extra_env["MLFLOW_S3_ENDPOINT_URL"] = endpoint
    login = {"name": MLFLOW_DATABASE_SECRET, "usernameKey": "username", "passwordKey": "password"}
    return {
        "service": {"port": config.mlflow.port, "containerPort": config.mlflow.port},
        "backendStore": {
            "postgres": {**database, "database": "mlflow"},
            "existingDatabaseSecret": login,
        },
        "artifactRoot": artifact_store(config, storage),
        "auth": {
            "existingAdminSecret": {
                "name": config.mlflow.credentials_secret,
                "usernameKey": "MLFLOW_TRACKING_USERNAME",
                "passwordKey": "MLFLOW_TRACKING_PASSWORD",
            },
            "postgres": {**database, "database": "mlflow_auth", "existingSecret": login},
        },
        "extraEnvVars": extra_env,
        "serverAllowedHosts": allowed_hosts(config),
        # Named here: the MLflow storage identity's trust names it.
        "serviceAccount": {
            "name": MLFLOW_SERVICE_ACCOUNT,
            "annotations": storage.identity_annotations(MLFLOW_STORAGE),
        },
    }


def declare_mlflow(
    config: StackConfig,
    provider: k8s.Provider,
    file_values: dict[str, Any],
    server: DatabaseServer,
    storage: StorageAccess,
    depends_on: list[pulumi.Resource],
) -> k8s.helm.v3.Release:
    return helm_release(
        "mlflow",
        charts.MLFLOW,
        release_name=MLFLOW_RELEASE,
        namespace=config.namespaces["mlflow"],
        values=merge(file_values, mlflow_computed_values(config, server, storage)),
        provider=provider,
        depends_on=depends_on,
    )
