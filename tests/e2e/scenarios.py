"""Target-independent pieces of the e2e suite (test_e2e_pipeline.py): the bad partition, the
failing model, and the verdicts on a run's task states, its logs and a polling client's
records. Each target (tests.e2e.target) reaches runs, MLflow and the model server its own way
(port-forwards and pods on kind, 127.0.0.1 locally) and these read what it got.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.serving import failed_requests

VALIDATE = "data_preparation.validate"
BAD_ROWS = 25  # rows whose `age` breaks the data contract (the schema allows 18..100)
FAILING_MODEL = Path(__file__).with_name("failing_model.py")


def break_contract(frame: Any) -> Any:
    """A day's data with `age` out of the schema's range in its first rows: validate fails."""
    frame = frame.copy()
    frame.loc[frame.index[:BAD_ROWS], "age"] = -3
    return frame


def training_runs(client: Any, model_name: str, run_id: str) -> list[Any]:
    """The MLflow runs a DAG run's train tasks left (the trainer tags them with the run id);
    tries that a retry superseded are left out. `client`: an MlflowClient."""
    experiment = client.get_experiment_by_name(model_name)
    assert experiment is not None, f"no MLflow experiment {model_name!r}"
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`airflow.run_id` = '{run_id}'"
    )
    return [run for run in runs if "superseded_by" not in run.data.tags]


def failure_report(run_id: str, state: str, tasks: dict[str, str], logs: dict[str, str]) -> str:
    """The run's state, its tasks' states and the last lines of each failed task's log."""
    parts = [f"run {run_id}: {state}; tasks: {tasks}"]
    for label in [label for label, s in tasks.items() if s == "failed"]:
        tail = "\n".join(logs.get(label, "").splitlines()[-40:])
        parts.append(f"--- {label} (last lines) ---\n{tail}")
    return "\n".join(parts)


def assert_deploy_skipped(tasks: dict[str, str]) -> None:
    """A run that found no better model: the deploy branch skipped, the skip branch ran."""
    assert tasks.get("deploy") == "skipped", tasks
    assert tasks.get("skip_deploy") == "success", tasks


def assert_failed_at_validation(tasks: dict[str, str], logs: dict[str, str]) -> None:
    """validate failed on the broken column, no training succeeded, nothing was deployed."""
    assert tasks.get(VALIDATE) == "failed", tasks
    assert "trainer validate: error:" in logs.get(VALIDATE, ""), logs.get(VALIDATE)
    assert "age" in logs[VALIDATE], logs[VALIDATE]
    trained = {label: state for label, state in tasks.items() if label.startswith("train")}
    assert trained and all(state != "success" for state in trained.values()), trained
    assert tasks.get("deploy") != "success", tasks


def log_failing_model(client: Any, model_name: str, version: str) -> str:
    """A run in the model's experiment holding a model with the champion's signature and
    input example whose predictions all fail (failing_model.py); its run id. `client`: an
    MlflowClient of the tracking server the `mlflow` module is pointed at too."""
    import mlflow
    import pandas as pd
    from mlflow.models import Model

    from deployer.smoke import smoke_request

    uri = f"models:/{model_name}/{version}"
    source = Model.load(uri)
    payload = smoke_request(uri, source).payload
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        frame = pd.DataFrame(split["data"], columns=split["columns"])
    elif "dataframe_records" in payload:
        frame = pd.DataFrame(payload["dataframe_records"])
    else:
        raise AssertionError(f"{uri}: input example not in a dataframe form: {sorted(payload)}")
    experiment = client.get_experiment_by_name(model_name)
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="e2e-failing") as run:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(FAILING_MODEL),
            signature=source.signature,
            input_example=frame,
            pip_requirements=["mlflow-skinny", "pandas"],
        )
    return run.info.run_id


def assert_no_failed_request(
    records: list[dict[str, Any]], started: float, ended: float, rows: int, where: str
) -> None:
    """A client polled the endpoint throughout the deploy (`started`..`ended`, epoch
    seconds): enough requests during it, and not one failed from the moment it started."""
    during = [r for r in records if started <= r["t"] <= ended]
    assert len(during) >= 10, f"only {len(during)} requests during the deploy; see {where}"
    assert records[0]["t"] < started and records[-1]["t"] > ended, "the poll did not span it"
    since_start = [r for r in records if r["t"] >= started]
    failed = failed_requests(since_start, rows)
    by_kind: dict[str, int] = {}
    for record in failed:
        key = f"HTTP {record['status']}" if record["status"] else (record["error"] or "")[:60]
        by_kind[key] = by_kind.get(key, 0) + 1
    assert not failed, (
        f"{len(failed)} of {len(since_start)} requests failed while the failing version was "
        f"rolled out and back ({by_kind}); first: {failed[0]}; see {where}"
    )
