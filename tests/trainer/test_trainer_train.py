"""train against the real MLflow server: what gets logged, the logged model, retry semantics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from sklearn.metrics import roc_auc_score
from trainer_helpers import SHOP_SPECS, file_uri, unique

import trainer.train
from ml_contract import ModelSpec
from trainer.profile import PROFILE_ARTIFACT, profile_frame
from trainer.specs import SPEC_ARTIFACT

pytestmark = pytest.mark.slow  # trains real models against MLflow

EPOCHS = "3"
FINAL_METRICS = {
    f"{split}_{name}"
    for split in ("val", "test")
    for name in ("roc_auc", "accuracy", "f1", "log_loss")
}
EXPECTED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _train(run_cli, data: Path, experiment: str, *flags: str):
    # A high learning rate: three epochs on 1050 rows then reach a test ROC AUC above 0.8.
    result = run_cli(
        "train",
        "--data-uri",
        str(data),
        "--experiment",
        experiment,
        "--epochs",
        EPOCHS,
        "--learning-rate",
        "0.01",
        *flags,
    )
    assert result.code == 0, result.stderr
    return result.xcom


def _airflow_try(monkeypatch: pytest.MonkeyPatch, try_number: int, map_index: int = 0) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "ml_training_pipeline")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2026-11-21T00:00:00+00:00")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "train")
    monkeypatch.setenv("AIRFLOW_CTX_MAP_INDEX", str(map_index))
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", str(try_number))


def _runs(experiment: str) -> list:
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return list(client.search_runs([experiment_id], run_view_type=mlflow.entities.ViewType.ALL))


def test_train_logs_params_metrics_dataset_and_tags(
    run_cli, prepared: Path, mlflow_uri: str, churn_spec: ModelSpec
):
    experiment = unique("train-logs")

    xcom = _train(run_cli, prepared, experiment, "--hidden-sizes", "16,8", "--optimizer", "adamw")

    assert xcom["reused"] is False
    assert xcom["device"] == EXPECTED_DEVICE
    assert xcom["model_uri"].startswith("models:/m-")
    assert set(xcom["metrics"]) == FINAL_METRICS
    assert xcom["metrics"]["test_roc_auc"] > 0.75
    assert xcom["params"] == {
        "learning_rate": 0.01,
        "batch_size": 128,
        "optimizer": "adamw",
        "epochs": 3,
        "hidden_sizes": "16,8",
        "dropout": 0.1,
        "weight_decay": 0.0,
        "seed": 42,
        "device": EXPECTED_DEVICE,
    }
    client = MlflowClient()
    run = client.get_run(xcom["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {
        **{k: str(v) for k, v in xcom["params"].items()},
        "task": "binary",
    }
    for name in FINAL_METRICS:
        assert run.data.metrics[name] == pytest.approx(xcom["metrics"][name])
    for name in ("train_loss", "val_loss", "val_roc_auc", "val_accuracy"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == [1, 2, 3], name
    losses = [
        m.value
        for m in sorted(
            client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step
        )
    ]
    assert losses[-1] < losses[0]

    manifest = json.loads((prepared / "manifest.json").read_text())
    assert run.data.tags["dataset.uri"] == file_uri(prepared)
    assert run.data.tags["dataset.version"] == manifest["dataset_version"]
    assert run.data.tags["trainer.model_uri"] == xcom["model_uri"]
    assert run.data.tags["ml_platform.model"] == "churn-classifier"
    assert not any(tag.startswith("airflow.") for tag in run.data.tags)  # not inside Airflow
    # The spec is logged with the model: `--model-name` finds the contract through it.
    logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/{SPEC_ARTIFACT}")
    assert logged == churn_spec.to_dict()
    # ... and the training split's profile: the reference a later day is validated against.
    profile = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/{PROFILE_ARTIFACT}")
    train_rows = pd.read_parquet(prepared / "train.parquet")
    assert profile == json.loads(json.dumps(profile_frame(train_rows, churn_spec)))
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "churn-classifier-train"
    assert file_uri(prepared) in dataset_input.dataset.source
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert tags["mlflow.data.context"] == "training"
    assert tags["dataset.version"] == manifest["dataset_version"]


def test_the_logged_model_predicts_churn_from_raw_rows(
    run_cli, prepared: Path, raw_partition: Path, mlflow_uri: str, churn_spec: ModelSpec
):
    xcom = _train(run_cli, prepared, unique("train-model"))
    raw = pd.read_parquet(raw_partition / "data.parquet")  # unscaled, with id and label too

    model = mlflow.pyfunc.load_model(xcom["model_uri"])
    probabilities = np.asarray(model.predict(raw)).reshape(-1)

    assert probabilities.shape == (len(raw),)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert roc_auc_score(raw["churned"], probabilities) > 0.75
    test_ids = set(pd.read_parquet(prepared / "test.parquet")["customer_id"])
    on_test = raw["customer_id"].isin(test_ids).to_numpy()
    assert roc_auc_score(raw["churned"][on_test], probabilities[on_test]) == pytest.approx(
        xcom["metrics"]["test_roc_auc"], abs=1e-6
    )
    # Columns are matched by name, not position.
    shuffled = raw[list(reversed(raw.columns))]
    np.testing.assert_allclose(np.asarray(model.predict(shuffled)).reshape(-1), probabilities)
    assert model.metadata.get_input_schema().input_names() == list(churn_spec.feature_names)


def test_the_logged_model_pins_its_requirements_and_needs_no_trainer_package(
    run_cli, prepared: Path, raw_partition: Path, mlflow_uri: str, churn_spec: ModelSpec
):
    xcom = _train(run_cli, prepared, unique("train-reqs"))
    local = Path(mlflow.artifacts.download_artifacts(xcom["model_uri"]))

    requirements = (local / "requirements.txt").read_text().split()
    assert requirements == trainer.train.pip_requirements()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert f"mlflow-skinny=={mlflow.__version__}" in requirements
    assert all("==" in line for line in requirements)
    # The model server smoke-tests with the saved serving example, parsed by the signature.
    serving = (local / "serving_input_example.json").read_text()
    example = json.loads(serving)["dataframe_split"]
    assert example["columns"] == list(churn_spec.feature_names)
    ages = [row[0] for row in example["data"]]
    assert all(18 <= age <= 100 for age in ages)  # raw years, not standardised values
    model = mlflow.pyfunc.load_model(str(local))
    parsed = infer_and_parse_data(json.loads(serving), model.metadata.get_input_schema())
    assert np.asarray(model.predict(parsed)).shape == (len(ages),)  # one probability per row

    # A model server has mlflow and torch but not this repository's code.
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class NoTrainer(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "trainer" or name.startswith("trainer."):
                    raise ImportError("trainer is not installed here")
        sys.meta_path.insert(0, NoTrainer())
        import mlflow, numpy as np, pandas as pd
        model = mlflow.pyfunc.load_model({str(local)!r})
        frame = pd.read_parquet({str(raw_partition / "data.parquet")!r}).head(20)
        print(float(np.asarray(model.predict(frame)).mean()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 < float(done.stdout.strip().splitlines()[-1]) < 1


def test_a_retry_reuses_the_finished_run_of_its_task_instance(
    run_cli, prepared: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
):
    experiment = unique("train-retry")
    _airflow_try(monkeypatch, try_number=1)
    first = _train(run_cli, prepared, experiment)
    _airflow_try(monkeypatch, try_number=2)
    second = _train(run_cli, prepared, experiment)

    assert first["reused"] is False
    assert second["reused"] is True
    assert {k: second[k] for k in ("run_id", "model_uri", "metrics", "params", "device")} == {
        k: first[k] for k in ("run_id", "model_uri", "metrics", "params", "device")
    }
    (run,) = _runs(experiment)
    assert run.info.status == "FINISHED"
    assert run.data.tags["airflow.dag_id"] == "ml_training_pipeline"
    assert run.data.tags["airflow.run_id"] == "scheduled__2026-11-21T00:00:00+00:00"
    assert run.data.tags["airflow.task_id"] == "train"
    assert run.data.tags["airflow.map_index"] == "0"
    assert run.data.tags["airflow.try_number"] == "1"

    # Another mapped index is another task instance: it trains.
    _airflow_try(monkeypatch, try_number=1, map_index=1)
    sibling = _train(run_cli, prepared, experiment)
    assert sibling["reused"] is False
    assert sibling["run_id"] != first["run_id"]
    # The same task instance with other params trains again; the old run is superseded.
    _airflow_try(monkeypatch, try_number=3)
    changed = _train(run_cli, prepared, experiment, "--learning-rate", "0.02")
    assert changed["reused"] is False
    old = MlflowClient().get_run(first["run_id"])
    assert old.data.tags["superseded_by"] == changed["run_id"]


def test_failed_and_abandoned_tries_are_superseded_by_the_successful_one(
    run_cli, prepared: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
):
    experiment = unique("train-supersede")
    client = MlflowClient()

    # Try 1 crashes inside training: the run ends FAILED.
    _airflow_try(monkeypatch, try_number=1)
    with monkeypatch.context() as crash:
        crash.setattr(trainer.train, "fit", _crash)
        with pytest.raises(RuntimeError, match="worker lost"):
            run_cli("train", "--data-uri", str(prepared), "--experiment", experiment)
    (failed,) = _runs(experiment)
    assert failed.info.status == "FAILED"
    # Try 2's pod was killed outright: its run stays RUNNING.
    abandoned = client.create_run(
        failed.info.experiment_id,
        tags={**failed.data.tags, "airflow.try_number": "2"},
    )

    _airflow_try(monkeypatch, try_number=3)
    success = _train(run_cli, prepared, experiment)

    runs = {run.info.run_id: run for run in _runs(experiment)}
    assert len(runs) == 3
    assert runs[success["run_id"]].info.status == "FINISHED"
    assert "superseded_by" not in runs[success["run_id"]].data.tags
    for old in (failed.info.run_id, abandoned.info.run_id):
        assert runs[old].info.status == "KILLED"
        assert runs[old].data.tags["superseded_by"] == success["run_id"]
    assert [r.info.status for r in runs.values()].count("FINISHED") == 1


def _crash(*args: object, **kwargs: object) -> None:
    raise RuntimeError("worker lost")


@pytest.mark.parametrize(
    ("split", "change", "problem"),
    [
        (
            "train",
            lambda frame: frame.assign(churned=frame["churned"].where(frame.index != 3, 2)),
            "column 'churned' holds ['2'], not among the classes [0, 1]",
        ),
        ("val", lambda frame: frame.drop(columns=["age"]), "missing column(s) 'age'"),
        ("test", lambda frame: frame.head(0), "has 0 rows"),
    ],
)
def test_train_refuses_broken_prepared_data_before_starting_a_run(
    run_cli, prepared_copy: Path, mlflow_uri: str, split: str, change, problem: str
):
    split_file = prepared_copy / f"{split}.parquet"
    change(pd.read_parquet(split_file)).to_parquet(split_file, index=False)
    experiment = unique("train-broken")

    result = run_cli("train", "--data-uri", str(prepared_copy), "--experiment", experiment)

    assert result.code == 1
    assert result.error_line == f"trainer train: error: {file_uri(split_file)}: {problem}"
    assert MlflowClient().get_experiment_by_name(experiment) is None


def test_train_refuses_data_prepared_under_another_contract(
    run_cli, prepared: Path, mlflow_uri: str
):
    experiment = unique("train-other-spec")
    other = SHOP_SPECS["binary"]

    result = run_cli(
        "train", "--data-uri", str(prepared), "--experiment", experiment, "--spec", str(other)
    )

    assert result.code == 1
    assert result.error_line.startswith(
        f"trainer train: error: {file_uri(prepared)}/manifest.json: prepared for features "
    )
    assert result.error_line.endswith("preprocess again under this spec")
    assert MlflowClient().get_experiment_by_name(experiment) is None


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--hidden-sizes", "64,x", "is not a comma-separated list of layer widths"),
        ("--hidden-sizes", "64,0", "every layer width must be at least 1"),
        ("--learning-rate", "0", "must be greater than 0"),
        ("--optimizer", "rmsprop", "invalid choice: 'rmsprop'"),
        ("--dropout", "1", "must be at least 0 and below 1"),
        ("--epochs", "0", "must be at least 1"),
    ],
)
def test_bad_hyperparameters_are_usage_errors(run_cli, prepared, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("train", "--data-uri", str(prepared), "--experiment", "x", flag, value)

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err
    assert message in err


def test_a_deleted_experiment_is_a_one_line_error(run_cli, prepared: Path, mlflow_uri: str):
    experiment = unique("train-deleted")
    client = MlflowClient()
    client.delete_experiment(client.create_experiment(experiment))

    result = run_cli("train", "--data-uri", str(prepared), "--experiment", experiment)

    assert result.code == 1
    assert result.error_line == (
        f"trainer train: error: --experiment {experiment!r}: the experiment is deleted; "
        "restore it or use another name"
    )
