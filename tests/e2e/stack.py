"""The kind stack as the e2e tests reach it: Kubernetes clients for the stack's kubeconfig
context, its names, its outputs, and port-forwarded clients of MLflow and the object store."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from infra.kind import kind_platform
from tests.e2e.port_forward import PortForward


@dataclass(frozen=True)
class Kind:
    """The kind stack as the tests see it."""

    context: str
    core: Any  # kubernetes CoreV1Api
    apps: Any  # kubernetes AppsV1Api
    platform: Any  # ml_platform.settings.PlatformConfig of the kind stack
    stack: Any  # ml_infra.config.StackConfig of the kind stack
    services: dict[str, kind_platform.Service]
    outputs: dict[str, Any]

    def namespace(self, role: str) -> str:
        return self.platform.namespaces[role]

    def secret(self, role: str, name: str) -> dict[str, str]:
        found = self.core.read_namespaced_secret(name, self.namespace(role), _request_timeout=30)
        return {key: base64.b64decode(value).decode() for key, value in (found.data or {}).items()}

    def port_forward(self, service: str) -> PortForward:
        target = self.services[service]
        return PortForward(self.context, target.namespace, target.target, target.port, service)


class Mlflow:
    """MLflow through a port-forward, as the admin (the pods get their team's login)."""

    def __init__(self, forward: PortForward, credentials: dict[str, str]) -> None:
        self.forward = forward
        self.credentials = credentials

    def client(self) -> Any:
        import mlflow
        from mlflow.tracking import MlflowClient

        url = self.forward.url
        os.environ.update(self.credentials)
        os.environ["MLFLOW_TRACKING_URI"] = url
        mlflow.set_tracking_uri(url)
        return MlflowClient(url)


class Store:
    """The in-cluster object store's S3 API through a port-forward."""

    def __init__(self, forward: PortForward, credentials: dict[str, str]) -> None:
        self.forward = forward
        self.credentials = credentials

    def env(self) -> dict[str, str]:
        """What the trainer CLI needs to read and write s3:// URIs here."""
        return {**self.credentials, "AWS_ENDPOINT_URL": self.forward.url}

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.forward.url,
            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
            region_name=self.credentials["AWS_DEFAULT_REGION"],
            config=Config(s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=60),
        )
