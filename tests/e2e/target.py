"""What the e2e scenarios need from whatever runs the platform, and what they read back.

One suite (test_e2e_pipeline.py), two targets behind this interface, picked by E2E_TARGET:
- `kind` (tests.e2e.kind_target): the kind stack through port-forwards and the Kubernetes
  API; pods are watched and their nodes checked against the pools;
- `local` (tests.e2e.local_target): the platform on this machine (`make up` in a LOCAL_DIR of
  its own); the pod specs the runtime built, checked and kept are checked against the pools.

Both are driven through Airflow's REST API, MLflow's API and the model server's HTTP API;
only reaching them, putting data where the DAG reads it, and the failing deploy beside a
polling client (pods on kind, processes locally) differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_platform.local.airflow_client import AirflowClient


@dataclass(frozen=True)
class Serving:
    """What serves a model: its version, how many replicas answer, and what identifies the
    running deployment (the Deployment's generation; the local server's pid), so that a
    comparison before and after a run sees any change."""

    version: str | None
    available: int
    generation: str


@dataclass
class Run:
    run_id: str
    state: str
    tasks: dict[str, str]  # task label (task_id or task_id[map_index]) -> state
    logs: dict[str, str]  # task label -> its last try's log
    instances: list[dict[str, Any]]  # the REST API's task instances
    placement: Any  # what the target recorded to check where the run's pods went


@dataclass(frozen=True)
class DeployOutcome:
    """The failing deploy, run as the DAG's deploy task runs it, while a client polled."""

    failed: bool  # the deploy command (pod or process) ended in failure
    log: str  # its output
    rolled_out: set[str]  # the model versions the deploy started serving, however briefly
    records: list[dict[str, Any]]  # the polling client's records (tests.e2e.serving)
    started: float  # epoch seconds
    ended: float
    where: str  # where the poller's records are kept


class RunWatch(ABC):
    """Watches one DAG run while it goes on."""

    @abstractmethod
    def on_poll(self) -> None:
        """Raise on a problem that will not heal by waiting (e.g. an image that cannot be
        pulled)."""

    @abstractmethod
    def placement(self) -> Any:
        """What was recorded, for Target.placement_problems."""


class Target(ABC):
    name: str
    airflow: AirflowClient
    artifacts: Path  # task logs, the poller's and deployer's logs of this session
    # Bounds of the waits (pods on kind start slower than processes here) and the REST poll.
    parse_timeout_s: float
    defer_timeout_s: float
    run_timeout_s: float
    failed_run_timeout_s: float
    deploy_timeout_s: int  # the deployer's readiness timeout for the failing deploy
    poll_s: float

    @abstractmethod
    def mlflow(self) -> Any:
        """An MlflowClient of the platform's tracking server, as an admin; the `mlflow`
        module is pointed at the same server."""

    @abstractmethod
    def put_partition(self, ds: str, drift: float = 0.0) -> str:
        """A day of generated data where the DAG reads it; its URI."""

    @abstractmethod
    def put_bad_partition(self, ds: str) -> str:
        """A day whose data breaks the contract (tests.e2e.scenarios.break_contract)."""

    @abstractmethod
    def watch(self, dag_id: str, run_id: str) -> AbstractContextManager[RunWatch]:
        """Records what the run's pods did, from before it is triggered to its end."""

    @abstractmethod
    def placement_problems(self, run: Run, expected_gpus: dict[str, int]) -> list[str]:
        """Every pod of the run that asked for a GPU on the GPU pool, every other off it, every
        container task that ran with its pod recorded. `expected_gpus`: task id -> the GPUs
        the DAG's pod asks for."""

    @abstractmethod
    def serving(self, model_name: str) -> Serving: ...

    @abstractmethod
    def endpoint(self, model_name: str) -> AbstractContextManager[str]:
        """The model server's base URL, reachable from the tests while the context lasts."""

    @abstractmethod
    def failing_deploy(
        self,
        model_name: str,
        run_id: str,
        payload: dict[str, Any],
        deploy_timeout_s: int,
        warmup_answers: int,
    ) -> DeployOutcome:
        """The DAG's deploy pod, deploying `run_id`'s model, while a client posts `payload`
        to the served model throughout: from `warmup_answers` answers before to a few
        seconds after."""

    @abstractmethod
    def remove_model_server(self, model_name: str) -> None:
        """Stop serving the session's model (after a green session)."""

    @abstractmethod
    def airflow_cli(self, *args: str) -> tuple[int, str]:
        """`airflow <args>` where the platform's Airflow runs; exit status and output."""


def task_logs_kept(
    airflow: AirflowClient, dag_id: str, run_id: str, folder: Path
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every try's log of the run's task instances, written under `folder`; the instances
    and each task's last log."""
    from ml_platform.local.airflow_client import task_label

    instances = airflow.task_instances(dag_id, run_id)
    logs = {}
    folder.mkdir(parents=True, exist_ok=True)
    for ti in instances:
        for attempt in range(1, (ti["try_number"] or 0) + 1):
            text = airflow.task_log(dag_id, run_id, ti["task_id"], attempt, ti["map_index"])
            (folder / f"{task_label(ti)}.try{attempt}.log").write_text(text)
            logs[task_label(ti)] = text
    return instances, logs


def unrecorded_tasks(run: Run, expected_gpus: dict[str, int], recorded: set[str]) -> list[str]:
    """The container tasks of the run that ran (succeeded or failed) but whose pod is not
    among `recorded` (task labels): a placement check cannot pass on an empty record."""
    ran = {
        label
        for label, state in run.tasks.items()
        if state in ("success", "failed") and label.split("[")[0] in expected_gpus
    }
    return [f"task {label} ran but no pod of it was recorded" for label in sorted(ran - recorded)]
