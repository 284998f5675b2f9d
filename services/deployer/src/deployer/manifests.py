"""Kubernetes manifests for one model's server, as plain dicts from a pure function.

The Deployment's selector and the Service never change between versions; only the pod
template does (image args, version label and annotations), so a new version is an ordinary
rolling update and putting an old template back is Kubernetes' own rollback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deployer.metrics import METRICS_PATH
from deployer.targets import Revision

RUN_AS_USER = 10001  # the non-root user the platform images create
CONTAINER_PORT = 8080
SERVICE_PORT = 80
CONTAINER_NAME = "model-server"
APP_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VERSION_LABEL = "ml-platform/model-version"
MODEL_NAME_ANNOTATION = "ml-platform/model-name"
MODEL_URI_ANNOTATION = "ml-platform/model-uri"
# The annotations Prometheus' `kubernetes-pods` scrape job (the community chart's default,
# relabelled on pod annotations) keys on. Prometheus Operator ignores them: it needs a PodMonitor.
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(CONTAINER_PORT),
    "prometheus.io/path": METRICS_PATH,
}


@dataclass(frozen=True)
class ServingSpec:
    """Everything about the serving Deployment that is not the model version."""

    namespace: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    replicas: int = 1
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "2Gi"
    # The model is downloaded to /tmp, the only writable path: size it for the artifacts.
    tmp_size: str = "2Gi"
    env: dict[str, str] = field(default_factory=dict)
    env_secret: str | None = None
    service_account: str | None = None
    progress_deadline_s: int = 600


def resource_name(model_name: str) -> str:
    """A DNS-1123 label for the model's Deployment and Service (63 characters at most)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    if not slug:
        raise ValueError(f"model name {model_name!r} has no letters or digits for a resource name")
    return f"model-{slug}"[:63].rstrip("-")


def selector_labels(model_name: str) -> dict[str, str]:
    return {APP_LABEL: "model-server", INSTANCE_LABEL: resource_name(model_name)}


def _threads(cpu_limit: str) -> str:
    # Math libraries default to one thread per host core, far more than the CPU limit allows.
    millicores = int(cpu_limit[:-1]) if cpu_limit.endswith("m") else int(float(cpu_limit) * 1000)
    return str(max(1, millicores // 1000))


def _container(spec: ServingSpec, revision: Revision) -> dict[str, Any]:
    env = {
        **spec.env,
        "HOME": "/tmp",  # libraries cache under $HOME; the root filesystem is read-only
        "TMPDIR": "/tmp",
        "OMP_NUM_THREADS": _threads(spec.cpu_limit),
    }
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "args": ["serve", "--model-uri", revision.model_uri, "--host", "0.0.0.0"]
        + ["--port", str(CONTAINER_PORT)],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        # /ready only turns 200 once the model is in memory; /health answers from the start,
        # so a slow model load never trips the liveness probe.
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": spec.cpu_request, "memory": spec.memory_request},
            "limits": {"cpu": spec.cpu_limit, "memory": spec.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.env_secret:
        container["envFrom"] = [{"secretRef": {"name": spec.env_secret}}]
    return container


def deployment_manifest(spec: ServingSpec, revision: Revision) -> dict[str, Any]:
    """The model server's Deployment serving `revision`."""
    name = resource_name(revision.model_name)
    selector = selector_labels(revision.model_name)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the server never calls the Kubernetes API
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(spec, revision)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": spec.tmp_size}}],
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": {**selector, MANAGED_BY_LABEL: "deployer"},
            "annotations": {MODEL_NAME_ANNOTATION: revision.model_name},
        },
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": spec.progress_deadline_s,
            "selector": {"matchLabels": selector},
            # Never fewer ready pods than asked for: the old version serves until the new is ready.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": {**selector, VERSION_LABEL: revision.version},
                    # Metrics are served on the model's own port: scraping pod IPs needs
                    # ingress to it from the Prometheus pods (the serving namespace's policy).
                    "annotations": {
                        MODEL_NAME_ANNOTATION: revision.model_name,
                        MODEL_URI_ANNOTATION: revision.model_uri,
                        **SCRAPE_ANNOTATIONS,
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def service_manifest(spec: ServingSpec, model_name: str) -> dict[str, Any]:
    """The stable in-cluster endpoint in front of every version's pods."""
    name = resource_name(model_name)
    selector = selector_labels(model_name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": {**selector, MANAGED_BY_LABEL: "deployer"},
            "annotations": {MODEL_NAME_ANNOTATION: model_name},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def service_url(spec: ServingSpec, model_name: str) -> str:
    return f"http://{resource_name(model_name)}.{spec.namespace}.svc.cluster.local:{SERVICE_PORT}"
