"""Trials of one sweep start together and log the same training dataset to one experiment.
The tracking store then sees two inserts of one (experiment, name, digest): the trainer logs
the dataset again instead of failing the trial (seen on the local platform's parallel sweep).
"""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ml_contract import ModelSpec
from trainer import train
from trainer.prepared import load_prepared

TRIALS = 8


def _log_together(prepared_dir: Path, spec: ModelSpec, experiment: str) -> list[object]:
    prepared = load_prepared(f"file://{prepared_dir}", spec)
    split = prepared.split("train")
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    barrier = threading.Barrier(TRIALS)
    outcomes: list[object] = [None] * TRIALS

    def trial(index: int) -> None:
        try:
            with mlflow.start_run(experiment_id=experiment_id) as run:
                barrier.wait(timeout=60)
                train._log_dataset(prepared, split)
                outcomes[index] = run.info.run_id
        except Exception as exc:  # handed to the assertion with the others
            outcomes[index] = exc

    threads = [threading.Thread(target=trial, args=(i,)) for i in range(TRIALS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_trials_logging_one_dataset_at_once_all_succeed(
    mlflow_uri: str, prepared: Path, churn_spec: ModelSpec
) -> None:
    outcomes = _log_together(prepared, churn_spec, "dataset-race")
    failed = [o for o in outcomes if not isinstance(o, str)]
    assert not failed, failed
    client = MlflowClient(mlflow_uri)
    for run_id in outcomes:
        inputs = client.get_run(str(run_id)).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == [f"{churn_spec.model}-train"], run_id


def test_another_store_error_is_not_retried(
    mlflow_uri: str, prepared: Path, churn_spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def refused(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise mlflow.exceptions.MlflowException("PERMISSION_DENIED: no access")

    monkeypatch.setattr(train.mlflow, "log_input", refused)
    prepared_set = load_prepared(f"file://{prepared}", churn_spec)
    experiment_id = mlflow.set_experiment("dataset-refused").experiment_id
    with (
        mlflow.start_run(experiment_id=experiment_id),
        pytest.raises(mlflow.exceptions.MlflowException, match="PERMISSION_DENIED"),
    ):
        train._log_dataset(prepared_set, prepared_set.split("train"))
    assert len(calls) == 1
