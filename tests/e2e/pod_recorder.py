"""Every pod of one DAG run, as the Kubernetes API saw it, recorded while the run goes on.

Container tasks delete their pods when they finish (`on_finish_action="delete_pod"`), so the
pods cannot be read afterwards. A watch on the training namespace, started before the run is
triggered and resumed from the last resourceVersion it saw, receives every change to every
matching pod, the final DELETED event included; the node a pod was bound to (`spec.nodeName`)
is in those events. The record is what the API server reported, nothing inferred. A watch
that expires (HTTP 410) is re-listed and counted in `gaps`, so a test can refuse a record
that may have missed a pod.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

WATCH_WINDOW_S = 30  # one watch request; the loop resumes from its resourceVersion
STOP_TIMEOUT_S = WATCH_WINDOW_S + 15
GPU_RESOURCE = "nvidia.com/gpu"
IMAGE_PROBLEMS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}


@dataclass
class PodRecord:
    name: str
    labels: dict[str, str]
    gpus: int  # nvidia.com/gpu the pod's containers ask for
    node: str | None = None
    phase: str | None = None
    waiting: set[str] = field(default_factory=set)  # container waiting reasons seen
    deleted: bool = False

    @property
    def task_id(self) -> str:
        return self.labels.get("task_id", "")


def _gpus(pod: Any) -> int:
    total = 0
    for container in pod.spec.containers or []:
        limits = (container.resources and container.resources.limits) or {}
        total += int(limits.get(GPU_RESOURCE, 0))
    return total


class PodRecorder:
    def __init__(self, core: Any, namespace: str, label_selector: str) -> None:
        self.core = core
        self.namespace = namespace
        self.label_selector = label_selector
        self.pods: dict[str, PodRecord] = {}
        self.gaps = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resource_version: str | None = None

    def _record(self, pod: Any, deleted: bool = False) -> None:
        with self._lock:
            record = self.pods.get(pod.metadata.name)
            if record is None:
                record = PodRecord(pod.metadata.name, dict(pod.metadata.labels or {}), _gpus(pod))
                self.pods[pod.metadata.name] = record
                log.info("pod %s (%s) created", record.name, record.task_id)
            if pod.spec.node_name and record.node != pod.spec.node_name:
                record.node = pod.spec.node_name
                log.info("pod %s bound to node %s", record.name, record.node)
            if pod.status is not None:
                record.phase = pod.status.phase or record.phase
                for status in pod.status.container_statuses or []:
                    waiting = status.state and status.state.waiting
                    if waiting and waiting.reason:
                        record.waiting.add(waiting.reason)
            record.deleted = record.deleted or deleted

    def _list(self) -> None:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=self.label_selector, _request_timeout=30
        )
        for pod in pods.items:
            self._record(pod)
        self._resource_version = pods.metadata.resource_version

    def _loop(self) -> None:
        watcher = watch.Watch()
        while not self._stop.is_set():
            try:
                for event in watcher.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=self.label_selector,
                    resource_version=self._resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_WINDOW_S,
                    _request_timeout=WATCH_WINDOW_S + 10,
                ):
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._record(event["object"], deleted=event["type"] == "DELETED")
                    if self._stop.is_set():
                        break
                self._resource_version = watcher.resource_version or self._resource_version
            except ApiException as exc:
                if exc.status == 410:
                    self.gaps += 1
                    log.warning("pod watch expired (410): re-listing; a pod may have been missed")
                    self._safe_list()
                else:
                    self.errors.append(f"watch: HTTP {exc.status} {exc.reason}")
                    time.sleep(1)
            except Exception as exc:  # a dropped connection: resume from the last version
                self.errors.append(f"watch: {type(exc).__name__}: {exc}")
                time.sleep(1)

    def _safe_list(self) -> None:
        try:
            self._list()
        except Exception as exc:
            self.errors.append(f"list: {type(exc).__name__}: {exc}")
            time.sleep(1)

    def __enter__(self) -> PodRecorder:
        self._list()
        self._thread = threading.Thread(target=self._loop, name="pod-recorder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self.errors.append(f"the watch did not stop within {STOP_TIMEOUT_S}s")
        self._safe_list()

    def image_problems(self) -> dict[str, set[str]]:
        """Pods whose containers could not get their image (e.g. `make images` not run)."""
        with self._lock:
            return {
                name: record.waiting & IMAGE_PROBLEMS
                for name, record in self.pods.items()
                if record.waiting & IMAGE_PROBLEMS
            }
