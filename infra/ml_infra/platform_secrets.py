"""Kubernetes Secrets that carry credentials to the pods that need them.

Every value is a Pulumi secret (encrypted in the state). Pods get them by reference: the
platform's container tasks load the storage and MLflow credentials Secrets with envFrom,
Airflow and MLflow read theirs through their charts' `*SecretName` / `existingSecret` values.
On GCP no storage Secret exists: pods reach GCS as their service account's GCP service
account (Workload Identity), with nothing to hand them.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.endpoints import AIRFLOW_RELEASE, storage_endpoint, storage_region
from ml_infra.generated_secrets import GeneratedSecrets
from ml_infra.kube import secret
from ml_infra.model_identities import model_identities
from ml_infra.resources import DatabaseServer, StorageAccess, StorageKey
from ml_infra.team_identities import (
    AIRFLOW_STORAGE,
    MLFLOW_STORAGE,
    has_storage_secrets,
    team_identities,
)

AIRFLOW_METADATA_SECRET = "airflow-metadata"
AIRFLOW_FERNET_SECRET = "airflow-fernet-key"
AIRFLOW_API_SECRET = "airflow-api-secret-key"
AIRFLOW_JWT_SECRET = "airflow-jwt-secret"
AIRFLOW_STORAGE_CONNECTION_SECRET = "airflow-storage-connection"
AIRFLOW_REDIS_SECRET = "airflow-redis-password"
AIRFLOW_BROKER_SECRET = "airflow-broker-url"
AIRFLOW_ADMIN_SECRET = "airflow-admin-password"  # key `password`: the create-user Job's env
MLFLOW_DATABASE_SECRET = "mlflow-database"
# mlflow namespace: the logins the MLflow users Job creates (key MLFLOW_USERS_KEY, JSON).
MLFLOW_USERS_SECRET = "mlflow-users"
MLFLOW_USERS_KEY = "users.json"
POSTGRES_ADMIN_SECRET = "postgres-admin"
DATABASE_USERS_SECRET = "database-users"
# database -> owning role; MLflow keeps its users and permissions in a database of its own.
DATABASES = {"airflow": "airflow", "mlflow": "mlflow", "mlflow_auth": "mlflow"}
REDIS_PORT = 6379


def connection_env_name(connection_id: str) -> str:
    return f"AIRFLOW_CONN_{connection_id.upper()}"


def storage_connection(
    config: StackConfig, access_key_id: str | None = None, secret_key: str | None = None
) -> str:
    """The Airflow connection remote logging (and the s3:// partition sensor) use, JSON form.

    GCP: a `google_cloud_platform` connection with no key, so the Google provider takes the
    default credentials: the component's Workload Identity. Elsewhere an `aws` one; without a
    key (AWS) the provider falls back to boto3's default chain, which finds the web identity
    token EKS mounts for the component's role."""
    if config.cloud == "gcp":
        return json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"project": config.gcp.project}}
        )
    extra = {"region_name": storage_region(config)}
    endpoint = storage_endpoint(config)
    if endpoint:
        extra["endpoint_url"] = endpoint
    connection: dict[str, Any] = {"conn_type": "aws", "extra": extra}
    if access_key_id is not None:
        connection.update(login=access_key_id, password=secret_key)
    return json.dumps(connection)


def database_url(server: DatabaseServer, user: str, password: str, host: str) -> str:
    return f"postgresql://{user}:{password}@{host}:{server.port}/{user}?sslmode={server.sslmode}"


def storage_env(config: StackConfig, key: StorageKey | None) -> dict[str, Any]:
    """A storage identity's environment: its key where it has one; without (AWS, IRSA) the
    SDKs' default chains use the AWS_ROLE_ARN and token file EKS injects into the pod."""
    env: dict[str, Any] = {"AWS_DEFAULT_REGION": storage_region(config)}
    if key is not None:
        env["AWS_ACCESS_KEY_ID"] = key.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = key.secret_access_key
    return env


def mlflow_login(user: str, password: pulumi.Output[str]) -> dict[str, Any]:
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


def declare_credentials_secrets(
    config: StackConfig,
    provider: k8s.Provider,
    namespaces: dict[str, pulumi.Resource],
    storage: StorageAccess,
    generated: GeneratedSecrets,
) -> list[pulumi.Resource]:
    """Each identity's credentials in the one namespace whose pods use them.

    The MLflow admin and the artifact store's key stay in the mlflow namespace (the server's);
    a team's pods get the team's MLflow login and dataset key in the training namespace, a
    model's servers the model's own read-only login in the serving namespace. On AWS the storage
    Secrets hold no key, only the region: pods get their identity's role through their
    service account (IRSA). On GCP there are none (has_storage_secrets)."""
    storage_secrets = has_storage_secrets(config)
    wanted: list[tuple[str, str, str, dict[str, Any]]] = []
    if storage_secrets:
        wanted.append(
            (
                "storage-credentials-mlflow",
                config.storage.credentials_secret,
                "mlflow",
                storage_env(config, storage.key(MLFLOW_STORAGE)),
            )
        )
    wanted += [
        (
            "mlflow-credentials-mlflow",
            config.mlflow.credentials_secret,
            "mlflow",
            mlflow_login(config.mlflow.admin_user, generated.mlflow_admin_password),
        ),
        (
            "mlflow-users",
            MLFLOW_USERS_SECRET,
            "mlflow",
            {MLFLOW_USERS_KEY: mlflow_users_document(generated.mlflow_user_passwords)},
        ),
    ]
    passwords = generated.mlflow_user_passwords
    for identity in team_identities(config):
        wanted.append(
            (
                identity.mlflow_secret,
                identity.mlflow_secret,
                "training",
                mlflow_login(identity.mlflow_user, passwords[identity.mlflow_user]),
            )
        )
        if storage_secrets:
            wanted.append(
                (
                    identity.storage_secret,
                    identity.storage_secret,
                    "training",
                    storage_env(config, storage.key(identity.storage_identity)),
                )
            )
    for model in model_identities(config):
        wanted.append(
            (
                model.serving_secret,
                model.serving_secret,
                "serving",
                mlflow_login(model.serving_user, passwords[model.serving_user]),
            )
        )
    return [
        secret(resource, name, config.namespaces[role], data, provider, [namespaces[role]])
        for resource, name, role, data in wanted
    ]


def mlflow_users_document(passwords: dict[str, pulumi.Output[str]]) -> pulumi.Output[str]:
    """The JSON the MLflow users Job reads: {"users": {login: password}}."""
    return pulumi.Output.all(**passwords).apply(lambda users: json.dumps({"users": users}))


def declare_postgres_admin_secret(
    config: StackConfig,
    provider: k8s.Provider,
    namespace: pulumi.Resource,
    admin_user: str,
    generated: GeneratedSecrets,
) -> pulumi.Resource:
    """The server's admin login: the kind StatefulSet starts with it, the setup Job uses it."""
    return secret(
        "postgres-admin",
        POSTGRES_ADMIN_SECRET,
        config.namespaces["storage"],
        {"username": admin_user, "password": generated.postgres_admin_password},
        provider,
        [namespace],
    )


def declare_database_secrets(
    config: StackConfig,
    provider: k8s.Provider,
    namespaces: dict[str, pulumi.Resource],
    server: DatabaseServer,
    generated: GeneratedSecrets,
) -> list[pulumi.Resource]:
    """Each application's own login, and the passwords the setup Job gives them."""
    host = pulumi.Output.from_input(server.host)
    airflow_url = pulumi.Output.all(host, generated.airflow_db_password).apply(
        lambda args: database_url(server, "airflow", args[1], args[0])
    )
    return [
        secret(
            "database-users",
            DATABASE_USERS_SECRET,
            config.namespaces["storage"],
            {
                "AIRFLOW_DB_PASSWORD": generated.airflow_db_password,
                "MLFLOW_DB_PASSWORD": generated.mlflow_db_password,
            },
            provider,
            [namespaces["storage"]],
        ),
        secret(
            "airflow-metadata",
            AIRFLOW_METADATA_SECRET,
            config.namespaces["airflow"],
            {"connection": airflow_url},
            provider,
            [namespaces["airflow"]],
        ),
        secret(
            "mlflow-database",
            MLFLOW_DATABASE_SECRET,
            config.namespaces["mlflow"],
            {"username": "mlflow", "password": generated.mlflow_db_password},
            provider,
            [namespaces["mlflow"]],
        ),
    ]


def declare_airflow_secrets(
    config: StackConfig,
    provider: k8s.Provider,
    namespace: pulumi.Resource,
    storage: StorageAccess,
    generated: GeneratedSecrets,
) -> list[pulumi.Resource]:
    ns = config.namespaces["airflow"]
    connection_env = connection_env_name(config.storage.airflow_connection)
    key = storage.key(AIRFLOW_STORAGE)
    if key is None:
        connection: Any = storage_connection(config)
    else:
        connection = pulumi.Output.all(key.access_key_id, key.secret_access_key).apply(
            lambda keys: storage_connection(config, *keys)
        )
    wanted = {
        AIRFLOW_FERNET_SECRET: {"fernet-key": generated.airflow_fernet_key},
        AIRFLOW_API_SECRET: {"api-secret-key": generated.airflow_api_secret_key},
        AIRFLOW_JWT_SECRET: {"jwt-secret": generated.airflow_jwt_secret},
        AIRFLOW_ADMIN_SECRET: {"password": generated.airflow_admin_password},
        AIRFLOW_STORAGE_CONNECTION_SECRET: {connection_env: connection},
    }
    if generated.airflow_redis_password is not None:
        redis_host = f"{AIRFLOW_RELEASE}-redis"
        wanted[AIRFLOW_REDIS_SECRET] = {"password": generated.airflow_redis_password}
        wanted[AIRFLOW_BROKER_SECRET] = {
            "connection": generated.airflow_redis_password.apply(
                lambda pw: f"redis://:{pw}@{redis_host}:{REDIS_PORT}/0"
            )
        }
    return [secret(name, name, ns, data, provider, [namespace]) for name, data in wanted.items()]
