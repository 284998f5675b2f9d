"""The Kubernetes target: a Deployment + Service per model, rolled out and watched.

The rollout is watched through the Deployment's status the way `kubectl rollout status` does
(observedGeneration, updatedReplicas, replicas, availableReplicas, the Progressing condition),
polled with a deadline. Restoring puts the Deployment's previous spec back (Kubernetes then
scales the previous ReplicaSet up again, the equivalent of `kubectl rollout undo`), or deletes
what this deploy created when there was nothing before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deployer.errors import StepFailed, one_line
from deployer.manifests import (
    MODEL_URI_ANNOTATION,
    VERSION_LABEL,
    ServingSpec,
    deployment_manifest,
    resource_name,
    service_manifest,
    service_url,
)
from deployer.targets import Revision, Serving

log = logging.getLogger(__name__)

NAMESPACE_ENV = "DEPLOYER_NAMESPACE"
IMAGE_ENV = "DEPLOYER_IMAGE"
REQUEST_TIMEOUT_S = 30  # every API call; the rollout itself has its own deadline
POLL_S = 2.0


def kubernetes_apis() -> tuple[Any, Any]:
    """AppsV1Api and CoreV1Api from the in-cluster service account, else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.AppsV1Api(), client.CoreV1Api()


def _status_code(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def rollout_progress(deployment: Any) -> tuple[bool, str]:
    """Whether the Deployment finished rolling out, and where it stands, in words.

    Raises StepFailed when Kubernetes itself gave up (progress deadline exceeded).
    """
    spec, status = deployment.spec, deployment.status
    wanted = spec.replicas if spec.replicas is not None else 1
    generation = deployment.metadata.generation or 0
    if status is None or (status.observed_generation or 0) < generation:
        return False, "the controller has not seen the new spec yet"
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            raise StepFailed("readiness", f"Kubernetes gave up the rollout: {condition.message}")
    updated = status.updated_replicas or 0
    total = status.replicas or 0
    available = status.available_replicas or 0
    if updated < wanted:
        return False, f"{updated} of {wanted} replicas updated"
    if total > updated:
        return False, f"{total - updated} old replica(s) still running: new pods not ready yet"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, f"{available} of {wanted} replicas updated and available"


def watch_rollout(
    apps: Any,
    namespace: str,
    name: str,
    timeout_s: float,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll the Deployment's status until rolled out; StepFailed at the deadline."""
    deadline = clock() + timeout_s
    while True:
        try:
            deployment = apps.read_namespaced_deployment_status(
                name, namespace, _request_timeout=REQUEST_TIMEOUT_S
            )
        except Exception as exc:
            why = f"cannot read deployment {namespace}/{name}: {one_line(exc)}"
            raise StepFailed("readiness", why) from None
        done, where = rollout_progress(deployment)
        if done:
            return where
        remaining = deadline - clock()
        if remaining <= 0:
            raise StepFailed(
                "readiness",
                f"deployment {namespace}/{name} not ready after {timeout_s:.0f}s: {where}",
            )
        log.info("rollout of %s/%s: %s", namespace, name, where)
        sleep(min(poll_s, remaining))


def _restorable(deployment: dict[str, Any]) -> dict[str, Any]:
    """A read Deployment as a body to PUT back: its spec and identity, no server-set fields."""
    metadata = deployment["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "labels", "annotations")
            if metadata.get(key) is not None
        },
        "spec": deployment["spec"],
    }


class KubernetesTarget:
    name = "kubernetes"

    def __init__(
        self, apps: Any, core: Any, spec: ServingSpec, model_name: str, poll_s: float = POLL_S
    ) -> None:
        self.apps = apps
        self.poll_s = poll_s
        self.core = core
        self.spec = spec
        self.model_name = model_name
        self.resource = resource_name(model_name)
        self._before: dict[str, Any] | None = None
        self._created_service = False
        self._started = False

    @property
    def endpoint(self) -> str:
        return service_url(self.spec, self.model_name)

    @contextmanager
    def exclusive(self, timeout_s: float) -> Iterator[None]:
        # The DAG runs one deploy per model at a time; the API server's generation checks
        # catch anything else. No cluster-wide lock to take here.
        yield

    def _read(self) -> Any | None:
        try:
            return self.apps.read_namespaced_deployment(
                self.resource, self.spec.namespace, _request_timeout=REQUEST_TIMEOUT_S
            )
        except Exception as exc:
            if _status_code(exc) == 404:
                return None
            raise

    def current(self) -> Serving | None:
        try:
            deployment = self._read()
        except Exception as exc:
            why = f"cannot read deployment {self.resource}: {one_line(exc)}"
            raise StepFailed("serving", why) from None
        if deployment is None:
            return None
        template = deployment.spec.template.metadata
        available = (deployment.status.available_replicas or 0) if deployment.status else 0
        wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
        detail = f"deployment {self.spec.namespace}/{self.resource}: {available}/{wanted} available"
        version = (template.labels or {}).get(VERSION_LABEL) if available else None
        model_uri = (template.annotations or {}).get(MODEL_URI_ANNOTATION)
        return Serving(version, model_uri, self.endpoint, detail)

    def _apply_service(self) -> None:
        body = service_manifest(self.spec, self.model_name)
        try:
            self.core.read_namespaced_service(
                self.resource, self.spec.namespace, _request_timeout=REQUEST_TIMEOUT_S
            )
        except Exception as exc:
            if _status_code(exc) != 404:
                raise
            self.core.create_namespaced_service(
                self.spec.namespace, body, _request_timeout=REQUEST_TIMEOUT_S
            )
            self._created_service = True
            return
        self.core.patch_namespaced_service(
            self.resource, self.spec.namespace, body, _request_timeout=REQUEST_TIMEOUT_S
        )

    def start(self, revision: Revision) -> None:
        from kubernetes.client import ApiClient

        body = deployment_manifest(self.spec, revision)
        where = f"{self.spec.namespace}/{self.resource}"
        try:
            existing = self._read()
            self._before = (
                None if existing is None else ApiClient().sanitize_for_serialization(existing)
            )
            self._started = True
            self._apply_service()
            if existing is None:
                log.info("creating deployment %s for v%s", where, revision.version)
                self.apps.create_namespaced_deployment(
                    self.spec.namespace, body, _request_timeout=REQUEST_TIMEOUT_S
                )
            else:
                log.info("patching deployment %s to v%s", where, revision.version)
                self.apps.patch_namespaced_deployment(
                    self.resource, self.spec.namespace, body, _request_timeout=REQUEST_TIMEOUT_S
                )
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(
                "rollout", f"cannot apply deployment {where}: {one_line(exc)}"
            ) from None

    def wait_ready(self, timeout_s: float) -> str:
        where = watch_rollout(self.apps, self.spec.namespace, self.resource, timeout_s, self.poll_s)
        log.info("deployment %s/%s rolled out: %s", self.spec.namespace, self.resource, where)
        return self.endpoint

    def switch(self) -> None:
        """Nothing to do: the rolling update already moved the Service's traffic."""

    def finish(self) -> None:
        """Nothing to do: the old ReplicaSet is kept (scaled to 0) for `rollout undo`."""

    def restore(self, timeout_s: float) -> None:
        if not self._started:
            return
        namespace = self.spec.namespace
        if self._before is None:
            log.info("removing deployment %s/%s: nothing served before", namespace, self.resource)
            self._delete_new()
            return
        log.info("putting the previous spec of %s/%s back", namespace, self.resource)
        self.apps.replace_namespaced_deployment(
            self.resource, namespace, _restorable(self._before), _request_timeout=REQUEST_TIMEOUT_S
        )
        watch_rollout(self.apps, namespace, self.resource, timeout_s, self.poll_s)

    def _delete_new(self) -> None:
        for delete, created in (
            (self.apps.delete_namespaced_deployment, True),
            (self.core.delete_namespaced_service, self._created_service),
        ):
            if not created:
                continue
            try:
                delete(self.resource, self.spec.namespace, _request_timeout=REQUEST_TIMEOUT_S)
            except Exception as exc:
                if _status_code(exc) != 404:
                    raise
