"""A Job that gives each team, and the servers of each model, a login on MLflow.

It runs ml_infra/mlflow_users_script.py (shipped in a ConfigMap) as the MLflow admin, after
the release is up; its pod template carries a hash of the passwords and of the script, so a
new team or model, a rotated password or a changed script re-runs it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.endpoints import mlflow_url
from ml_infra.generated_secrets import GeneratedSecrets
from ml_infra.jobs import one_shot_job_spec, restricted_container
from ml_infra.kube import k8s_opts, metadata
from ml_infra.platform_secrets import MLFLOW_USERS_KEY, MLFLOW_USERS_SECRET

JOB_NAME = "mlflow-users"
SCRIPT = Path(__file__).with_name("mlflow_users_script.py")
SCRIPT_KEY = "mlflow_users.py"
# Standard library only: any Python image does; this one is small and runs as any uid.
IMAGE = "python:3.12-slim"
NOBODY = 65534


def _checksum(script: str, passwords: list[str]) -> str:
    return hashlib.sha256("\n".join([script, *passwords]).encode()).hexdigest()


def declare_mlflow_users(
    config: StackConfig,
    provider: k8s.Provider,
    generated: GeneratedSecrets,
    depends_on: list[pulumi.Resource],
) -> k8s.batch.v1.Job:
    ns = config.namespaces["mlflow"]
    script = SCRIPT.read_text()
    script_map = k8s.core.v1.ConfigMap(
        "mlflow-users-script",
        metadata=metadata(f"{JOB_NAME}-script", ns),
        data={SCRIPT_KEY: script},
        opts=k8s_opts(provider, depends_on),
    )
    checksum = pulumi.Output.all(*generated.mlflow_user_passwords.values()).apply(
        lambda passwords: _checksum(script, list(passwords))
    )
    users_file = f"/users/{MLFLOW_USERS_KEY}"
    container = restricted_container(
        name="users",
        image=IMAGE,
        command=["python", f"/scripts/{SCRIPT_KEY}"],
        env=[
            {"name": "MLFLOW_TRACKING_URI", "value": mlflow_url(config)},
            {"name": "MLFLOW_USERS_FILE", "value": users_file},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        # The admin login, as the chart's auth.existingAdminSecret has it.
        envFrom=[{"secretRef": {"name": config.mlflow.credentials_secret}}],
        volumeMounts=[
            {"name": "script", "mountPath": "/scripts", "readOnly": True},
            {"name": "users", "mountPath": "/users", "readOnly": True},
        ],
        resources={"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
    )
    spec = one_shot_job_spec(
        uid=NOBODY,
        gid=NOBODY,
        labels={"app.kubernetes.io/name": JOB_NAME},
        annotations={"ml-platform/users-checksum": checksum},
        containers=[container],
        volumes=[
            {"name": "script", "configMap": {"name": f"{JOB_NAME}-script"}},
            {"name": "users", "secret": {"secretName": MLFLOW_USERS_SECRET}},
        ],
    )
    return k8s.batch.v1.Job(
        JOB_NAME,
        metadata=metadata(JOB_NAME, ns),
        spec=spec,
        opts=k8s_opts(provider, [script_map, *depends_on]),
    )
