"""Passwords, keys and connection strings only ever travel as Pulumi secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_harness import STACKS, declared, is_secret, unwrap

GENERATED = "generated"  # the mocks' RandomPassword results all start with this


def _plain_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, string) of every string not inside a secret wrapper."""
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in _plain_strings(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in _plain_strings(item, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


@pytest.mark.parametrize("stack", STACKS)
def test_no_generated_secret_appears_in_plain_text(stack: str):
    leaks = [
        (d.type, d.name, path)
        for d in declared(stack).declared
        for path, text in _plain_strings(d.inputs)
        if GENERATED in text or "mock-secret-access-key" in text
    ]
    assert not leaks


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_secret_value_is_secret(stack: str):
    secrets = declared(stack).of_type("core/v1:Secret")
    assert len(secrets) >= 10
    for secret in secrets:
        data = secret.inputs["stringData"]
        assert is_secret(data) or all(is_secret(v) for v in data.values()), secret.name


@pytest.mark.parametrize("stack", STACKS)
def test_generated_secrets_reach_where_they_are_used(stack: str):
    """The check above is not vacuous: the generated values are there, wrapped."""
    resources = declared(stack)
    metadata = unwrap(resources.named("airflow-metadata", ":Secret").inputs["stringData"])
    assert metadata["connection"].startswith("postgresql://airflow:generatedairflow-db-password@")
    # The admin password reaches the create-user Job from a Secret, never through the values.
    admin = unwrap(resources.named("airflow-admin-password", ":Secret").inputs["stringData"])
    assert admin == {"password": "generatedairflow-admin-password"}
    values = resources.release("airflow").inputs["values"]
    assert "generatedairflow-admin-password" not in json.dumps(unwrap(values))
    job = unwrap(values)["createUserJob"]
    assert "password" not in job["defaultUser"]
    assert job["env"] == [
        {
            "name": "AIRFLOW_ADMIN_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "airflow-admin-password", "key": "password"}},
        }
    ]
    assert "-p" not in job["args"] and "--password" not in job["args"]
    outputs = resources.outputs
    assert outputs["airflow_admin_password"] == "generatedairflow-admin-password"


def test_managed_database_passwords_are_secret():
    rds = declared("prod").of_type("rds/instance:Instance")[0].inputs
    assert is_secret(rds["password"])
    user = declared("dev").of_type("sql/user:User")[0].inputs
    assert is_secret(user["password"])


def test_storage_connection_is_a_secret_with_the_endpoint():
    import json

    conn = unwrap(
        declared("kind").named("airflow-storage-connection", ":Secret").inputs["stringData"]
    )["AIRFLOW_CONN_ML_STORAGE"]
    parsed = json.loads(conn)
    assert parsed["conn_type"] == "aws"
    assert parsed["extra"]["endpoint_url"] == (
        "http://seaweedfs-all-in-one.storage.svc.cluster.local:8333"
    )


def test_the_create_user_job_reads_the_password_from_its_env_not_its_argv(tmp_path):
    """The Job's script, run as the chart runs it (bash, no terminal) against an `airflow` that
    asks for the password as FAB's `users create` does: getpass twice."""
    import os
    import stat
    import subprocess
    import sys

    from ml_infra.airflow_release import ADMIN_PASSWORD_ENV, create_user_args

    stub = tmp_path / "airflow"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import getpass, json, sys\n"
        "first = getpass.getpass('Password:')\n"
        "second = getpass.getpass('Repeat for confirmation:')\n"
        "print(json.dumps({'argv': sys.argv[1:], 'same': first == second, 'password': first}))\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    done = subprocess.run(
        create_user_args(),
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
        | {ADMIN_PASSWORD_ENV: "s3cr3t pw"},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal, as in a Job's container
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["password"] == "s3cr3t pw" and seen["same"]
    assert seen["argv"][:2] == ["users", "create"]
    assert "s3cr3t pw" not in " ".join(seen["argv"])
    assert seen["argv"][4:6] == ["-u", "{{ .Values.createUserJob.defaultUser.username }}"]
