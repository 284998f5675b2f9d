"""The one-shot Jobs the program runs (database setup, MLflow logins, Airflow's GPU pools):
one pod each, restarted on failure, meeting PodSecurity `restricted`, with no API token.

Each Job's pod template carries an annotation that changes with what it applies (a checksum,
the pools), so a change re-runs it: the template is immutable, and Pulumi replaces the Job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

BACKOFF_LIMIT = 6


def restricted_container(*, read_only_root: bool = True, **container: Any) -> dict[str, Any]:
    """A container spec with the `restricted` context: no escalation, no capabilities."""
    context: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    context["capabilities"] = {"drop": ["ALL"]}
    return {**container, "securityContext": context}


def one_shot_job_spec(
    *,
    uid: int,
    containers: Sequence[Mapping[str, Any]],
    annotations: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    gid: int | None = None,
    volumes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A Job's spec: its pod runs as `uid` (and `gid`), non-root, RuntimeDefault seccomp."""
    pod_context: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": uid}
    if gid is not None:
        pod_context["runAsGroup"] = gid
    pod_context["seccompProfile"] = {"type": "RuntimeDefault"}
    pod: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "securityContext": pod_context,
        "containers": [dict(c) for c in containers],
    }
    if volumes:
        pod["volumes"] = [dict(v) for v in volumes]
    metadata: dict[str, Any] = {"annotations": dict(annotations)}
    if labels:
        metadata["labels"] = dict(labels)
    return {"backoffLimit": BACKOFF_LIMIT, "template": {"metadata": metadata, "spec": pod}}
