"""A Job that gives Airflow and MLflow their own PostgreSQL roles and databases.

The same Job runs against the in-cluster server on kind, RDS and Cloud SQL: the managed
services create only an admin login, and an application should not use it. It is
idempotent (roles and databases are created when missing, passwords always set), and its
pod template carries a hash of the passwords, so rotating one re-runs it.
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.jobs import one_shot_job_spec, restricted_container
from ml_infra.kube import k8s_opts, metadata
from ml_infra.platform_secrets import DATABASE_USERS_SECRET, DATABASES, POSTGRES_ADMIN_SECRET
from ml_infra.resources import DatabaseServer

JOB_NAME = "database-setup"
POSTGRES_UID = 999  # the postgres user of the official image


def password_variable(role: str) -> str:
    return f"{role.upper()}_DB_PASSWORD"


def setup_sql() -> str:
    """psql script: one role per application, one database per entry in DATABASES."""
    lines = []
    for role in sorted(set(DATABASES.values())):
        lines += [
            f"SELECT 'CREATE ROLE {role} LOGIN' "
            f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}')\\gexec",
            f"ALTER ROLE {role} WITH LOGIN PASSWORD :'{role}_password';",
            # Managed admins are not superusers: to make a role a database owner they must
            # be a member of it.
            f"GRANT {role} TO CURRENT_USER;",
        ]
    for database, owner in DATABASES.items():
        lines.append(
            f"SELECT 'CREATE DATABASE {database} OWNER {owner}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec"
        )
    return "\n".join(lines) + "\n"


def setup_script() -> str:
    variables = " ".join(
        f'-v {role}_password="${password_variable(role)}"'
        for role in sorted(set(DATABASES.values()))
    )
    return (
        "set -eu\n"
        'until pg_isready --timeout=5; do echo "waiting for PostgreSQL at $PGHOST"; sleep 5; done\n'
        f"psql --set=ON_ERROR_STOP=1 {variables} <<'SQL'\n{setup_sql()}SQL\n"
    )


def _checksum(passwords: list[str]) -> str:
    return hashlib.sha256("\n".join(passwords).encode()).hexdigest()


def declare_database_setup(
    config: StackConfig,
    provider: k8s.Provider,
    server: DatabaseServer,
    generated_passwords: list[pulumi.Output[str]],
    depends_on: list[pulumi.Resource],
) -> k8s.batch.v1.Job:
    ns = config.namespaces["storage"]
    admin_ref = {"secretKeyRef": {"name": POSTGRES_ADMIN_SECRET, "key": "password"}}
    checksum = pulumi.Output.all(*generated_passwords).apply(_checksum)
    container = restricted_container(
        # Writable root as before: the postgres image under psql is not yet run read-only.
        read_only_root=False,
        name="setup",
        image=f"postgres:{config.postgres.version}",
        command=["/bin/sh", "-c", setup_script()],
        env=[
            {"name": "PGHOST", "value": server.host},
            {"name": "PGPORT", "value": str(server.port)},
            {"name": "PGDATABASE", "value": "postgres"},
            {"name": "PGUSER", "value": server.admin_user},
            {"name": "PGPASSWORD", "valueFrom": admin_ref},
            {"name": "PGSSLMODE", "value": server.sslmode},
        ],
        envFrom=[{"secretRef": {"name": DATABASE_USERS_SECRET}}],
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    )
    spec = one_shot_job_spec(
        uid=POSTGRES_UID,
        annotations={"ml-platform/passwords-checksum": checksum},
        containers=[container],
    )
    return k8s.batch.v1.Job(
        JOB_NAME,
        metadata=metadata(JOB_NAME, ns),
        spec=spec,
        opts=k8s_opts(provider, [*depends_on, *server.ready]),
    )
