"""kind: PostgreSQL as a single-replica StatefulSet (the official postgres image).

No chart: Bitnami's images moved behind a subscription in 2025, and one StatefulSet with a
volume claim is all a laptop cluster needs. The managed clouds use RDS / Cloud SQL instead.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.endpoints import POSTGRES_PORT, service_host
from ml_infra.kube import k8s_opts, metadata
from ml_infra.platform_secrets import POSTGRES_ADMIN_SECRET
from ml_infra.resources import DatabaseServer

NAME = "postgres"
ADMIN_USER = "postgres"
SELECTOR = {"app.kubernetes.io/name": NAME}
# Pod Security Standard `restricted`. The (Debian) postgres image's postgres user is 999:999;
# run as it from the start, its entrypoint skips the root-only chown and initdb creates
# PGDATA itself, owned by that user; fsGroup lets it create PGDATA on the volume.
POSTGRES_UID = 999
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": POSTGRES_UID,
    "runAsGroup": POSTGRES_UID,
    "fsGroup": POSTGRES_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def declare_kind_postgres(
    config: StackConfig,
    provider: k8s.Provider,
    namespace: pulumi.Resource,
    admin_secret: pulumi.Resource,
) -> DatabaseServer:
    ns = config.namespaces["storage"]
    service = k8s.core.v1.Service(
        "postgres",
        metadata=metadata(NAME, ns, SELECTOR),
        spec={
            "selector": SELECTOR,
            "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres"}],
        },
        opts=k8s_opts(provider, [namespace]),
    )
    statefulset = k8s.apps.v1.StatefulSet(
        "postgres",
        metadata=metadata(NAME, ns, SELECTOR),
        spec={
            "serviceName": NAME,
            "replicas": 1,
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"labels": SELECTOR},
                "spec": {
                    "securityContext": POD_SECURITY_CONTEXT,
                    "containers": [
                        {
                            "name": "postgres",
                            "image": f"postgres:{config.postgres.version}",
                            "securityContext": CONTAINER_SECURITY_CONTEXT,
                            "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                            "env": [
                                {"name": "POSTGRES_USER", "value": ADMIN_USER},
                                {
                                    "name": "POSTGRES_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": POSTGRES_ADMIN_SECRET,
                                            "key": "password",
                                        }
                                    },
                                },
                                # A subdirectory: the volume's root holds lost+found.
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                            ],
                            "readinessProbe": {
                                "exec": {"command": ["pg_isready", "-U", ADMIN_USER]},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/var/lib/postgresql/data"}
                            ],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{config.postgres.storage_gb}Gi"}},
                    },
                }
            ],
        },
        opts=k8s_opts(provider, [namespace, admin_secret]),
    )
    return DatabaseServer(
        host=service_host(NAME, ns),
        port=POSTGRES_PORT,
        admin_user=ADMIN_USER,
        sslmode="disable",
        ready=[service, statefulset],
    )
