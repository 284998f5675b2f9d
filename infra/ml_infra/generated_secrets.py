"""Every password and key the platform needs, generated once and kept as Pulumi secrets."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from ml_infra.config import StackConfig
from ml_infra.model_identities import model_identities
from ml_infra.team_identities import team_identities


def _password(name: str, length: int = 32) -> pulumi.Output[str]:
    # Letters and digits only: these end up inside connection URLs and an MLflow ini file
    # (filled in with sed), where other characters would need escaping.
    generated = random.RandomPassword(name, length=length, special=False)
    return pulumi.Output.secret(generated.result)


def _fernet_key(name: str) -> pulumi.Output[str]:
    generated = random.RandomBytes(name, length=32)
    # Fernet wants URL-safe base64 of 32 bytes.
    urlsafe = generated.base64.apply(lambda b64: b64.replace("+", "-").replace("/", "_"))
    return pulumi.Output.secret(urlsafe)


@dataclass(frozen=True)
class GeneratedSecrets:
    postgres_admin_password: pulumi.Output[str]
    airflow_db_password: pulumi.Output[str]
    mlflow_db_password: pulumi.Output[str]
    airflow_fernet_key: pulumi.Output[str]
    airflow_api_secret_key: pulumi.Output[str]
    airflow_jwt_secret: pulumi.Output[str]
    airflow_admin_password: pulumi.Output[str]
    mlflow_admin_password: pulumi.Output[str]
    airflow_redis_password: pulumi.Output[str] | None  # CeleryExecutor only
    # MLflow login -> password: each team's login and each model's read-only serving login.
    mlflow_user_passwords: dict[str, pulumi.Output[str]]


def generate_secrets(config: StackConfig) -> GeneratedSecrets:
    return GeneratedSecrets(
        postgres_admin_password=_password("postgres-admin-password"),
        airflow_db_password=_password("airflow-db-password"),
        mlflow_db_password=_password("mlflow-db-password"),
        airflow_fernet_key=_fernet_key("airflow-fernet-key"),
        airflow_api_secret_key=_password("airflow-api-secret-key", 64),
        airflow_jwt_secret=_password("airflow-jwt-secret", 64),
        airflow_admin_password=_password("airflow-admin-password"),
        mlflow_admin_password=_password("mlflow-admin-password"),
        airflow_redis_password=(
            _password("airflow-redis-password")
            if config.airflow.executor == "CeleryExecutor"
            else None
        ),
        mlflow_user_passwords={
            user: _password(f"mlflow-user-{user}")
            for user in [
                *(identity.mlflow_user for identity in team_identities(config)),
                *(model.serving_user for model in model_identities(config)),
            ]
        },
    )
