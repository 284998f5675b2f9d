"""Airflow's notification channels: the connections Secret, its env vars, the DAGs' document.

`ml-platform:notifications` names the channels (email through an SMTP server, a Slack
channel); their password and token are Pulumi secrets of their own. They become Airflow
connections in one Secret of the airflow namespace, one key per `AIRFLOW_CONN_*` variable,
which the chart's `secret` list puts in every Airflow component's environment (the scheduler
and workers run task callbacks, the DAG processor DAG callbacks, the triggerer deadline
alerts). The values hold only the Secret's name; the DAGs learn the channels (recipients,
channel, connection ids, no credential) from ML_PLATFORM_CONFIG's `notifications`.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import (
    PROJECT,
    SLACK_TOKEN_KEY,
    SMTP_PASSWORD_KEY,
    EmailNotifications,
    StackConfig,
)
from ml_infra.kube import secret
from ml_infra.platform_secrets import connection_env_name

NOTIFICATIONS_SECRET = "airflow-notification-connections"
# The providers' default connection ids: Airflow's own email sending uses smtp_default too.
SMTP_CONNECTION = "smtp_default"
SLACK_CONNECTION = "slack_api_default"


def notifications_document(config: StackConfig) -> dict[str, Any] | None:
    """ML_PLATFORM_CONFIG's `notifications` (ml_platform.settings); None without channels."""
    notifications = config.notifications
    document: dict[str, Any] = {}
    if notifications.email:
        email = notifications.email
        document["email"] = {
            "to": list(email.to),
            "from": email.sender,
            "conn_id": SMTP_CONNECTION,
        }
    if notifications.slack:
        document["slack"] = {"channel": notifications.slack.channel, "conn_id": SLACK_CONNECTION}
    return document or None


def smtp_connection(email: EmailNotifications, password: str | None) -> str:
    """The smtp provider's connection (JSON form): TLS as `security` says, the login if any."""
    connection: dict[str, Any] = {
        "conn_type": "smtp",
        "host": email.smtp_host,
        "port": email.smtp_port,
        "extra": {
            "from_email": email.sender,
            "disable_ssl": email.security != "ssl",
            "disable_tls": email.security != "starttls",
            "timeout": 30,
            "retry_limit": 3,
        },
    }
    if email.smtp_user:
        connection["login"] = email.smtp_user
        connection["password"] = password
    return json.dumps(connection)


def slack_connection(token: str) -> str:
    return json.dumps({"conn_type": "slack", "password": token, "extra": {"timeout": 30}})


def connection_values(config: StackConfig) -> dict[str, pulumi.Output[str]]:
    """AIRFLOW_CONN_* -> connection JSON, a Pulumi secret each (they may carry a credential)."""
    stack = pulumi.Config(PROJECT)
    notifications = config.notifications
    values: dict[str, pulumi.Output[str]] = {}
    if notifications.email:
        email = notifications.email
        password = stack.require_secret(SMTP_PASSWORD_KEY) if email.smtp_user else None
        values[connection_env_name(SMTP_CONNECTION)] = pulumi.Output.secret(
            pulumi.Output.from_input(password).apply(lambda pw: smtp_connection(email, pw))
        )
    if notifications.slack:
        values[connection_env_name(SLACK_CONNECTION)] = pulumi.Output.secret(
            stack.require_secret(SLACK_TOKEN_KEY).apply(slack_connection)
        )
    return values


def chart_secret_env(config: StackConfig) -> list[dict[str, str]]:
    """The chart's `secret` entries: each connection's env var from the Secret, by name."""
    names = []
    if config.notifications.email:
        names.append(connection_env_name(SMTP_CONNECTION))
    if config.notifications.slack:
        names.append(connection_env_name(SLACK_CONNECTION))
    return [
        {"envName": name, "secretName": NOTIFICATIONS_SECRET, "secretKey": name} for name in names
    ]


def declare_notification_connections(
    config: StackConfig, provider: k8s.Provider, namespace: pulumi.Resource
) -> list[pulumi.Resource]:
    """The connections Secret in the airflow namespace; nothing without channels."""
    values = connection_values(config)
    if not values:
        pulumi.log.warn(
            f"{PROJECT}:notifications is not set: failed runs and missed deadlines of this "
            "stack are reported nowhere but the Airflow UI"
        )
        return []
    return [
        secret(
            NOTIFICATIONS_SECRET,
            NOTIFICATIONS_SECRET,
            config.namespaces["airflow"],
            values,
            provider,
            [namespace],
        )
    ]
