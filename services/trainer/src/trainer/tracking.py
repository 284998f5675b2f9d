"""MLflow bookkeeping that survives Airflow retries: one successful run per task instance.

Every run carries the Airflow context as tags. Before a task starts a new run it looks for
earlier tries of the same task instance (dag_id, run_id, task_id, map_index): a finished
try with the same params is reused instead of training again, and the others are marked
superseded by the new run, so the experiment never shows two successful tries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException

from trainer.errors import TrainerError

log = logging.getLogger(__name__)

SUPERSEDED_BY = "superseded_by"
MODEL_URI_TAG = "trainer.model_uri"
MODEL_TAG = "ml_platform.model"  # the registered model (spec) a run trains
DATASET_URI_TAG = "dataset.uri"
DATASET_VERSION_TAG = "dataset.version"


@dataclass(frozen=True)
class AirflowContext:
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: str = "-1"
    try_number: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AirflowContext:
        """What Airflow exports into the task's environment (AIRFLOW_CTX_*)."""
        return cls(
            dag_id=environ.get("AIRFLOW_CTX_DAG_ID") or None,
            run_id=environ.get("AIRFLOW_CTX_DAG_RUN_ID") or None,
            task_id=environ.get("AIRFLOW_CTX_TASK_ID") or None,
            map_index=environ.get("AIRFLOW_CTX_MAP_INDEX") or "-1",
            try_number=environ.get("AIRFLOW_CTX_TRY_NUMBER") or None,
        )

    @property
    def identifies_task(self) -> bool:
        """Retries can only be recognised inside a DAG run."""
        return bool(self.dag_id and self.run_id)

    def tags(self) -> dict[str, str]:
        values = {
            "airflow.dag_id": self.dag_id,
            "airflow.run_id": self.run_id,
            "airflow.task_id": self.task_id,
            "airflow.map_index": self.map_index,
            "airflow.try_number": self.try_number,
        }
        if not self.identifies_task:
            return {}
        return {key: value for key, value in values.items() if value is not None}

    def filter_string(self) -> str:
        """MLflow search filter for the runs of this task instance (any try)."""
        keys = ("airflow.dag_id", "airflow.run_id", "airflow.task_id", "airflow.map_index")
        tags = self.tags()
        return " and ".join(f"tags.`{key}` = {_quote(tags[key])}" for key in keys if key in tags)


def _quote(value: str) -> str:
    # MLflow's filter grammar takes single- or double-quoted strings and no escapes.
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise TrainerError(f"Airflow context value {value!r} mixes both quote characters")


def experiment_id_for(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        log.info("creating MLflow experiment %r", name)
        try:
            return client.create_experiment(name)
        except MlflowException as exc:
            # Mapped train tasks start together: another one may have created it meanwhile.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise TrainerError(
            f"--experiment {name!r}: the experiment is deleted; restore it or use another name"
        )
    return experiment.experiment_id


def earlier_tries(client: MlflowClient, experiment_id: str, ctx: AirflowContext) -> list[Run]:
    """Runs of the same task instance, oldest first; none outside Airflow."""
    if not ctx.identifies_task:
        return []
    runs = client.search_runs(
        [experiment_id], filter_string=ctx.filter_string(), order_by=["attribute.start_time ASC"]
    )
    return list(runs)


def reusable_run(
    runs: list[Run], params: Mapping[str, object], extra_tags: Mapping[str, str]
) -> Run | None:
    """The newest finished, not superseded run with these params and tags, if any."""
    expected = {key: str(value) for key, value in params.items()}
    for run in reversed(runs):
        if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
            continue
        if SUPERSEDED_BY in run.data.tags or MODEL_URI_TAG not in run.data.tags:
            continue
        same_params = all(run.data.params.get(k) == v for k, v in expected.items())
        same_tags = all(run.data.tags.get(k) == v for k, v in extra_tags.items())
        if same_params and same_tags:
            return run
    return None


def supersede(client: MlflowClient, runs: list[Run], new_run_id: str) -> list[str]:
    """Tags earlier tries superseded_by=new_run_id; unfinished or failed ones become KILLED.

    A finished try with other params keeps its status (it did succeed), but is tagged.
    """
    finished = RunStatus.to_string(RunStatus.FINISHED)
    superseded = []
    for run in runs:
        if run.info.run_id == new_run_id or SUPERSEDED_BY in run.data.tags:
            continue
        client.set_tag(run.info.run_id, SUPERSEDED_BY, new_run_id)
        if run.info.status != finished:
            client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
        superseded.append(run.info.run_id)
    if superseded:
        log.info("run %s supersedes earlier tries %s", new_run_id, ", ".join(superseded))
    return superseded


@dataclass
class TrackedRun:
    """The MLflow run of one task instance: a fresh one, or the finished try it reuses."""

    run_id: str
    reused: Run | None = None
    model_uri: str | None = None

    def model_logged(self, model_uri: str) -> None:
        """Record the logged model's URI (the tag that makes this run reusable)."""
        from mlflow import set_tag

        self.model_uri = model_uri
        set_tag(MODEL_URI_TAG, model_uri)


@contextmanager
def tracked_run(
    experiment: str,
    params: Mapping[str, object],
    dataset_uri: str,
    dataset_version: str,
    tags: Mapping[str, str] | None = None,
) -> Iterator[TrackedRun]:
    """An MLflow run for this Airflow task instance, idempotent across retries.

    Yields a TrackedRun whose `reused` is set when an earlier try already finished with these
    params on this dataset version: the caller returns that run's result without training.
    Otherwise the new run supersedes earlier tries and must end with `model_logged(uri)`.
    """
    import mlflow

    client = MlflowClient()
    experiment_id = experiment_id_for(client, experiment)
    ctx = AirflowContext.from_env()
    previous = earlier_tries(client, experiment_id, ctx)
    reused = reusable_run(previous, params, {DATASET_VERSION_TAG: dataset_version})
    if reused is not None:
        log.info("reusing finished run %s of this task instance", reused.info.run_id)
        yield TrackedRun(reused.info.run_id, reused, reused.data.tags.get(MODEL_URI_TAG))
        return
    run_tags = {
        **ctx.tags(),
        DATASET_URI_TAG: dataset_uri,
        DATASET_VERSION_TAG: dataset_version,
        **(tags or {}),
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=run_tags) as run:
        supersede(client, previous, run.info.run_id)
        mlflow.log_params(dict(params))
        tracked = TrackedRun(run.info.run_id)
        yield tracked
        if tracked.model_uri is None:
            raise TrainerError(
                f"run {tracked.run_id} logged no model: call model_logged(model_uri) after "
                "logging it"
            )
