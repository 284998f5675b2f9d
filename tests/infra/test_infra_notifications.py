"""ml-platform:notifications becomes Airflow connections in a Secret, and channels for the DAGs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_harness import (
    STACKS,
    declared,
    engine_config,
    is_secret,
    run_program,
    run_program_expecting_error,
    unwrap,
)

from ml_platform.settings import parse_config

PASSWORD = "smtp-password-not-in-values"
TOKEN = "xoxb-token-not-in-values"
CHANNELS = {
    "email": {
        "to": ["ml-oncall@example.test"],
        "from": "airflow@example.test",
        "smtp_host": "smtp.example.test",
        "smtp_port": 587,
        "smtp_user": "airflow",
    },
    "slack": {"channel": "#ml-alerts"},
}
SECRETS = {
    "ml-platform:notifications_smtp_password": PASSWORD,
    "ml-platform:notifications_slack_token": TOKEN,
}


def _with(stack: str, notifications: Any, **secrets: str) -> dict[str, str]:
    return engine_config(stack, {"ml-platform:notifications": notifications, **secrets})


@pytest.fixture(scope="module")
def dev_with_channels():
    return run_program("dev", _with("dev", CHANNELS, **SECRETS))


def _airflow_values(resources) -> dict[str, Any]:
    return unwrap(resources.release("airflow").inputs["values"])


def test_the_connections_secret_is_in_the_airflow_namespace(dev_with_channels) -> None:
    secret = dev_with_channels.named("airflow-notification-connections", ":Secret")
    assert secret.inputs["metadata"]["namespace"] == "airflow"
    raw = secret.inputs["stringData"]
    assert is_secret(raw) or all(is_secret(value) for value in raw.values())
    data = unwrap(raw)
    smtp = json.loads(data["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert smtp["host"] == "smtp.example.test" and smtp["port"] == 587
    assert (smtp["login"], smtp["password"]) == ("airflow", PASSWORD)
    assert smtp["extra"]["disable_tls"] is False  # STARTTLS, the default on 587
    slack = json.loads(data["AIRFLOW_CONN_SLACK_API_DEFAULT"])
    assert (slack["conn_type"], slack["password"]) == ("slack", TOKEN)


def test_every_airflow_component_gets_the_connections_by_reference(dev_with_channels) -> None:
    values = _airflow_values(dev_with_channels)
    by_env = {entry["envName"]: entry for entry in values["secret"]}
    for name in ("AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_SLACK_API_DEFAULT"):
        assert by_env[name] == {
            "envName": name,
            "secretName": "airflow-notification-connections",
            "secretKey": name,
        }
    text = json.dumps(values)
    assert PASSWORD not in text and TOKEN not in text


def test_the_dags_learn_the_channels_and_no_credential(dev_with_channels) -> None:
    env = {e["name"]: e["value"] for e in _airflow_values(dev_with_channels)["env"]}
    document = json.loads(env["ML_PLATFORM_CONFIG"])
    assert document["notifications"] == {
        "email": {
            "to": ["ml-oncall@example.test"],
            "from": "airflow@example.test",
            "conn_id": "smtp_default",
        },
        "slack": {"channel": "#ml-alerts", "conn_id": "slack_api_default"},
    }
    notifications = parse_config(document).notifications
    assert [type(c).__name__ for c in notifications.channels] == ["EmailChannel", "SlackChannel"]


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_without_channels_declares_no_connections(stack: str) -> None:
    resources = declared(stack)
    assert not [s for s in resources.of_type(":Secret") if "notification" in s.name]
    env = {e["name"]: e["value"] for e in _airflow_values(resources)["env"]}
    assert "notifications" not in json.loads(env["ML_PLATFORM_CONFIG"])


def test_email_without_a_login_needs_no_password() -> None:
    email = {k: v for k, v in CHANNELS["email"].items() if k != "smtp_user"}
    resources = run_program("kind", _with("kind", {"email": {**email, "security": "none"}}))
    data = unwrap(
        resources.named("airflow-notification-connections", ":Secret").inputs["stringData"]
    )
    smtp = json.loads(data["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert "login" not in smtp and "password" not in smtp
    assert smtp["extra"]["disable_ssl"] is True and smtp["extra"]["disable_tls"] is True


@pytest.mark.parametrize(
    ("notifications", "secrets", "key"),
    [
        ({"email": {**CHANNELS["email"], "to": ["oncall"]}}, SECRETS,
         "ml-platform:notifications.email.to[0]"),
        ({"email": {**CHANNELS["email"], "smtp_port": 70000}}, SECRETS,
         "ml-platform:notifications.email.smtp_port"),
        ({"email": {**CHANNELS["email"], "security": "tls"}}, SECRETS,
         "ml-platform:notifications.email.security"),
        ({"email": CHANNELS["email"]}, {}, "ml-platform:notifications_smtp_password"),
        ({"slack": {"channel": "ml-alerts"}}, SECRETS, "ml-platform:notifications.slack.channel"),
        ({"slack": {"channel": "#ml-alerts"}}, {}, "ml-platform:notifications_slack_token"),
        ({"pager": {}}, {}, "ml-platform:notifications.pager"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_in_one_line_naming_the_key(notifications, secrets, key) -> None:
    if "slack" in notifications and secrets:
        secrets = {"ml-platform:notifications_slack_token": TOKEN}
    error, created = run_program_expecting_error("dev", _with("dev", notifications, **secrets))
    message = str(error)
    assert message.startswith(key + ":"), message
    assert "\n" not in message and created == 0
    assert PASSWORD not in message and TOKEN not in message
