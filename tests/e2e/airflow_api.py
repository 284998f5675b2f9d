"""A small client of Airflow 3's public REST API (v2), for the e2e tests.

Auth: `POST /auth/token` with the admin's username and password returns a JWT
(`access_token`), sent as `Authorization: Bearer ...`. The kind stack runs the FAB auth manager
(helm/airflow/values-common.yaml), whose token endpoint takes a JSON body; the simple auth
manager's takes the same body. A 401 gets one fresh token and a retry (tokens expire).

Endpoints used (all under /api/v2): GET/PATCH /dags/{dag_id}, GET /importErrors,
POST/GET /dags/{dag_id}/dagRuns[/{run_id}], GET .../taskInstances, and
GET .../taskInstances/{task_id}/logs/{try_number}?map_index=N. Every request has a timeout and
every wait a deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30
FINISHED = ("success", "failed")


class AirflowError(AssertionError):
    """The API answered something the test cannot go on with."""


def task_label(ti: dict[str, Any]) -> str:
    """`task_id`, or `task_id[map_index]` for a mapped task instance."""
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


class AirflowApi:
    def __init__(self, base_url: Callable[[], str], username: str, password: str) -> None:
        self._base_url = base_url  # a callable: the port-forward's URL may change
        self.username = username
        self.password = password
        self._token: str | None = None

    def _fresh_token(self) -> str:
        response = requests.post(
            f"{self._base_url()}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=REQUEST_TIMEOUT_S,
        )
        if response.status_code not in (200, 201):
            raise AirflowError(
                f"POST /auth/token as {self.username}: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._fresh_token()
            response = requests.request(
                method,
                f"{self._base_url()}/api/v2{path}",
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                timeout=REQUEST_TIMEOUT_S,
                **kwargs,
            )
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            return response
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise AirflowError(
                f"{method} /api/v2{path}: HTTP {response.status_code} {response.text[:500]}"
            )
        return response.json()

    def import_errors(self, filename_part: str) -> list[str]:
        errors = self.json("GET", "/importErrors", params={"limit": 100})["import_errors"]
        return [
            f"{error['filename']}: {error['stack_trace']}"
            for error in errors
            if filename_part in error["filename"]
        ]

    def wait_for_dag(self, dag_id: str, dag_file: str, timeout_s: float) -> dict[str, Any]:
        """The DAG once the DAG processor has parsed it; fails at once on an import error."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.request("GET", f"/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            if response.status_code != 404:
                raise AirflowError(f"GET /dags/{dag_id}: HTTP {response.status_code}")
            errors = self.import_errors(dag_file)
            if errors:
                raise AirflowError(f"{dag_file} does not import in Airflow:\n" + "\n".join(errors))
            if time.monotonic() > deadline:
                raise AirflowError(f"DAG {dag_id} not parsed by Airflow within {timeout_s:.0f}s")
            log.info("waiting for Airflow to parse %s", dag_file)
            time.sleep(10)

    def unpause(self, dag_id: str) -> None:
        dag = self.json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        if dag["is_paused"]:
            raise AirflowError(f"DAG {dag_id} is still paused after PATCH is_paused=false")

    def trigger(
        self, dag_id: str, run_id: str, logical_date: datetime, conf: dict[str, Any]
    ) -> dict[str, Any]:
        log.info("triggering %s run %s (logical date %s)", dag_id, run_id, logical_date)
        return self.json(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": logical_date.isoformat(), "conf": conf},
        )

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.json(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )["task_instances"]

    def active_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.json(
            "GET",
            f"/dags/{dag_id}/dagRuns",
            params=[("state", "queued"), ("state", "running"), ("limit", "100")],
        )["dag_runs"]

    def fail_run(self, dag_id: str, run_id: str, note: str) -> None:
        self.json(
            "PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed", "note": note}
        )

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout_s: float,
        poll_s: float = 15,
        on_poll: Callable[[], None] | None = None,
    ) -> str:
        """The run's final state (success or failed), logging task states as they change;
        `on_poll` runs at every poll (a check that may raise)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            if on_poll is not None:
                on_poll()
            state = self.dag_run(dag_id, run_id)["state"]
            summary = ", ".join(
                f"{task_label(ti)}={ti['state']}"
                for ti in sorted(
                    self.task_instances(dag_id, run_id),
                    key=lambda ti: (ti["start_date"] or "~", ti["task_id"], ti["map_index"]),
                )
            )
            if summary != last:
                log.info("%s %s: %s; tasks: %s", dag_id, run_id, state, summary)
                last = summary
            if state in FINISHED:
                return state
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"{dag_id} run {run_id} still {state} after {timeout_s:.0f}s; tasks: {summary}"
                )
            time.sleep(poll_s)

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> str:
        """The task try's whole log as text (structured lines joined)."""
        response = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": "true"},
        )
        if response.status_code != 200:
            return f"(log not available: HTTP {response.status_code} {response.text[:200]})"
        content = response.json().get("content", "")
        if isinstance(content, str):
            return content
        lines = []
        for item in content:
            if isinstance(item, dict):
                event = item.get("event", "")
                stamp = item.get("timestamp", "")
                lines.append(f"{stamp} {event}".strip())
            else:
                lines.append(str(item))
        return "\n".join(lines)
