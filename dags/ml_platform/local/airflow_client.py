"""A small client of Airflow 3's REST API (v2): trigger a DAG run with conf, wait for its end,
read its task instances and XComs. For the local platform (`make up`) and its tests, and for
anyone scripting against an Airflow of the platform.

    from ml_platform.local.airflow_client import AirflowClient

    client = AirflowClient.for_local_platform(".local")
    run = client.trigger("ml_training_pipeline", conf={"epochs": 3}, logical_date=...)
    state = client.wait_for_run("ml_training_pipeline", run["dag_run_id"], timeout_s=900)
    summary = client.xcom("ml_training_pipeline", run["dag_run_id"], "notify")

The kind e2e suite (tests/e2e) uses it too, through a port-forward whose URL may change:
`base_url` may be a callable, asked before every request.

Auth: `POST /auth/token` with a username and password returns a JWT (`access_token`), sent as
`Authorization: Bearer ...` (the simple auth manager of the local platform and the FAB auth
manager of the clusters both take this JSON body). A 401 gets one fresh token and a retry:
tokens expire. Every request has a timeout and every wait a deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger("airflow_client")

REQUEST_TIMEOUT_S = 30
FINISHED = ("success", "failed")


class AirflowApiError(RuntimeError):
    """The API answered something the caller cannot go on with (the message says what)."""


def task_label(ti: dict[str, Any]) -> str:
    """`task_id`, or `task_id[map_index]` for a mapped task instance."""
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


class AirflowClient:
    def __init__(self, base_url: str | Callable[[], str], username: str, password: str) -> None:
        self._base_url = base_url
        self.username = username
        self._password = password
        self._token: str | None = None
        self._session = requests.Session()

    @classmethod
    def for_local_platform(cls, local_dir: str | Path = ".local") -> AirflowClient:
        """The client of the platform `make up` started with this LOCAL_DIR (its URL and the
        admin's login, read from <local dir>/platform/)."""
        state_file = Path(local_dir) / "platform" / "state.json"
        if not state_file.exists():
            raise AirflowApiError(f"no local platform state in {state_file}: run `make up` first")
        state = json.loads(state_file.read_text())
        password = json.loads(Path(state["password_file"]).read_text())[state["admin_user"]]
        return cls(state["airflow_url"], state["admin_user"], password)

    @property
    def base_url(self) -> str:
        url = self._base_url() if callable(self._base_url) else self._base_url
        return url.rstrip("/")

    # --- plumbing ---------------------------------------------------------------------------

    def _fresh_token(self) -> str:
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self._password},
            timeout=REQUEST_TIMEOUT_S,
        )
        if response.status_code not in (200, 201):
            raise AirflowApiError(
                f"POST /auth/token as {self.username}: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """`method` /api/v2`path` with a valid token."""
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._fresh_token()
            response = self._session.request(
                method,
                f"{self.base_url}/api/v2{path}",
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
            raise AirflowApiError(
                f"{method} /api/v2{path}: HTTP {response.status_code} {response.text[:500]}"
            )
        return response.json()

    # --- DAGs -------------------------------------------------------------------------------

    def import_errors(self) -> list[dict[str, Any]]:
        return self.json("GET", "/importErrors", params={"limit": 100})["import_errors"]

    def import_errors_of(self, filename_part: str) -> list[str]:
        """`file: stack trace` of every import error whose file name contains `filename_part`."""
        return [
            f"{error['filename']}: {error['stack_trace']}"
            for error in self.import_errors()
            if filename_part in error["filename"]
        ]

    def wait_for_dag(
        self, dag_id: str, timeout_s: float = 120, poll_s: float = 2, dag_file: str | None = None
    ) -> dict:
        """The DAG once the DAG processor has parsed it (bounded). With `dag_file`, an import
        error of that file fails at once, with its stack trace."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.request("GET", f"/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            if response.status_code != 404:
                raise AirflowApiError(f"GET /dags/{dag_id}: HTTP {response.status_code}")
            if dag_file is not None:
                errors = self.import_errors_of(dag_file)
                if errors:
                    raise AirflowApiError(
                        f"{dag_file} does not import in Airflow:\n" + "\n".join(errors)
                    )
            if time.monotonic() > deadline:
                errors = "; ".join(e["filename"] for e in self.import_errors()) or "none"
                raise AirflowApiError(
                    f"DAG {dag_id} not parsed within {timeout_s:.0f}s (files with import "
                    f"errors: {errors})"
                )
            log.info("waiting for Airflow to parse %s", dag_file or dag_id)
            time.sleep(poll_s)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        dag = self.json("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})
        if dag["is_paused"] != paused:
            raise AirflowApiError(f"DAG {dag_id}: is_paused is still {dag['is_paused']}")

    def unpause(self, dag_id: str) -> None:
        self.set_paused(dag_id, False)

    # --- runs -------------------------------------------------------------------------------

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """A new run (its JSON: `dag_run_id`, `state`, ...). `logical_date` None: a run with
        no logical date (Airflow 3's default for manual runs)."""
        body: dict[str, Any] = {
            "conf": conf or {},
            "logical_date": logical_date.isoformat() if logical_date else None,
        }
        if run_id:
            body["dag_run_id"] = run_id
        log.info("triggering %s run %s (logical date %s)", dag_id, run_id or "-", logical_date)
        return self.json("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self.json("GET", f"/dags/{dag_id}/dagRuns", params={"limit": limit})["dag_runs"]

    def active_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's queued and running runs."""
        return self.json(
            "GET",
            f"/dags/{dag_id}/dagRuns",
            params=[("state", "queued"), ("state", "running"), ("limit", "100")],
        )["dag_runs"]

    def fail_run(self, dag_id: str, run_id: str, note: str) -> None:
        """Mark a run failed, with a note saying why (shown in the UI)."""
        self.set_run_state(dag_id, run_id, "failed", note)

    def set_run_state(self, dag_id: str, run_id: str, state: str, note: str = "") -> None:
        body: dict[str, Any] = {"state": state}
        if note:
            body["note"] = note
        self.json("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json=body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.json(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """`task_id` (or `task_id[i]` for a mapped one) -> state."""
        return {task_label(ti): ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def xcom(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str = "return_value",
        map_index: int = -1,
    ) -> Any:
        """A task's XCom value, as JSON (None when the task pushed none under `key`)."""
        response = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": "true", "stringify": "false"},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AirflowApiError(
                f"XCom {key} of {dag_id}/{run_id}/{task_id}: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json()["value"]

    def wait_until(
        self, what: str, check: Callable[[], bool], timeout_s: float, poll_s: float = 2
    ) -> None:
        """Poll `check` until it holds; AirflowApiError naming `what` past `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{what}: not within {timeout_s:.0f}s")
            time.sleep(poll_s)

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout_s: float,
        poll_s: float = 3,
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
                raise AirflowApiError(
                    f"{dag_id} run {run_id} still {state} after {timeout_s:.0f}s; tasks: {summary}"
                )
            time.sleep(poll_s)

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> str:
        """The task try's whole log as text (structured lines joined); a line saying why when
        the API has none (a log is a diagnostic: its absence must not hide the run's outcome)."""
        response = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": "true"},
        )
        if response.status_code != 200:
            return f"(log not available: HTTP {response.status_code} {response.text[:200]})"
        return log_text(response.json().get("content", ""))


def log_text(content: str | list[Any]) -> str:
    """The log endpoint's `content` as text: a string as it is, structured lines joined."""
    if isinstance(content, str):
        return content
    lines = []
    for item in content:
        if isinstance(item, dict):
            stamp, event = item.get("timestamp", ""), item.get("event", "")
            lines.append(f"{stamp} {event}".strip())
        else:
            lines.append(str(item))
    return "\n".join(lines)
