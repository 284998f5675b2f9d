"""The SDK for a team's own trainer: XCom and one-line errors, the data under the contract, and
an MLflow run that a retry of the same Airflow task reuses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import sklearn
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from trainer_helpers import SHOP_SPECS, file_uri, unique

from ml_contract import ModelSpec, metrics_for
from trainer import sdk
from trainer.metrics import class_indexes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="team-trainer")
    sdk.add_train_flags(parser)
    parser.add_argument("--c", type=float, default=1.0)
    return parser


def _entrypoint(handler, tmp_path: Path, prepared: Path, capsys, *flags: str):
    """Runs sdk.entrypoint; returns the exit code, the XCom (None if absent) and stderr."""
    xcom = tmp_path / "xcom" / "return.json"
    argv = ["--data-uri", str(prepared), "--experiment", "x", "--xcom-path", str(xcom), *flags]
    capsys.readouterr()
    code = sdk.entrypoint(_parser(), handler, argv)
    err = capsys.readouterr().err
    return code, json.loads(xcom.read_text()) if xcom.exists() else None, err


def test_entrypoint_writes_the_handlers_result_as_the_xcom(
    tmp_path: Path, prepared: Path, capsys, churn_spec: ModelSpec
):
    def handler(args: argparse.Namespace) -> dict:
        loaded = sdk.load_prepared(args.data_uri, sdk.spec_from_args(args))
        return {"model": loaded.spec.model, "train_rows": len(loaded.split("train").frame)}

    code, xcom, err = _entrypoint(handler, tmp_path, prepared, capsys)

    manifest = json.loads((prepared / "manifest.json").read_text())
    assert code == 0, err
    assert xcom == {"model": churn_spec.model, "train_rows": manifest["rows"]["train"]}
    assert f"team-trainer: {json.dumps(xcom, sort_keys=True)}" in err  # the summary line


def test_an_sdk_error_is_one_line_and_exit_one_without_an_xcom(
    tmp_path: Path, prepared: Path, capsys
):
    def handler(args: argparse.Namespace) -> dict:
        raise sdk.SdkError(f"--c must be positive,\n  got {args.c}")

    code, xcom, err = _entrypoint(handler, tmp_path, prepared, capsys, "--c", "-1")

    assert code == 1
    assert xcom is None
    assert err.strip().splitlines()[-1] == "team-trainer: error: --c must be positive, got -1.0"
    assert "Traceback" not in err


def test_the_sdk_reads_data_under_the_contract_and_fails_like_the_trainer(
    tmp_path: Path, prepared: Path, raw_partition: Path, capsys, churn_spec: ModelSpec
):
    bad = tmp_path / "bad"
    bad.mkdir()
    frame = pd.read_parquet(raw_partition / "data.parquet")
    frame.loc[4, "age"] = 7
    frame.to_parquet(bad / "data.parquet", index=False)

    def read_bad(args: argparse.Namespace) -> dict:
        return {"rows": len(sdk.read_partition(str(bad), sdk.spec_from_args(args)))}

    def other_contract(args: argparse.Namespace) -> dict:
        sdk.load_prepared(args.data_uri, sdk.spec_from_args(args))
        return {}

    good = sdk.read_partition(str(raw_partition), churn_spec)
    assert len(good) == len(frame)
    code, _, err = _entrypoint(read_bad, tmp_path, prepared, capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"team-trainer: error: {file_uri(bad)}/data.parquet: column 'age' has 1 value(s) "
        "outside [18, 100] (e.g. 7)"
    )
    spec = ("--spec", str(SHOP_SPECS["binary"]))
    code, _, err = _entrypoint(other_contract, tmp_path, prepared, capsys, *spec)
    assert code == 1
    assert err.strip().splitlines()[-1].endswith("preprocess again under this spec")


def _airflow_try(monkeypatch: pytest.MonkeyPatch, try_number: int) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "team_pipeline")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2026-11-21T00:00:00+00:00")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "train")
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", str(try_number))


def team_train(args: argparse.Namespace) -> dict:
    """A team's train step as the SDK's docstring has it: logistic regression on raw rows."""
    spec = sdk.spec_from_args(args)
    prepared = sdk.load_prepared(args.data_uri, spec)
    params = {"c": args.c}
    with sdk.tracked_run(args.experiment, params, prepared) as run:
        if run.reused is not None:
            return sdk.result_of(run.reused, spec, params)
        train = prepared.split("train")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c))
        model.fit(train.features, class_indexes(train.labels, spec.classes))
        example = train.features.head(5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=sdk.signature(spec, example, model.predict_proba(example)),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            # Pinned, as a team image would: inferring them runs a subprocess (seconds).
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
        sdk.check_model(spec, info.model_uri, example)
        run.model_logged(info.model_uri)
        metrics = sdk.log_scores(prepared, info.model_uri)
    return sdk.train_result(run, metrics, params)


@pytest.mark.slow  # logs real models to MLflow
def test_tracked_run_reuses_the_finished_try_of_its_task_instance(
    tmp_path: Path,
    prepared: Path,
    capsys,
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    churn_spec: ModelSpec,
):
    experiment = unique("team-retry")

    def attempt(try_number: int, *flags: str) -> dict:
        _airflow_try(monkeypatch, try_number)
        code, xcom, err = _entrypoint(
            team_train, tmp_path, prepared, capsys, "--experiment", experiment, *flags
        )
        assert code == 0, err
        return xcom

    first, second = attempt(1), attempt(2)

    assert first["reused"] is False and second["reused"] is True
    assert first["model_uri"].startswith("models:/m-")
    assert set(first["metrics"]) == {
        f"{split}_{m}" for split in ("val", "test") for m in metrics_for("binary")
    }
    assert first["metrics"]["test_roc_auc"] > 0.75
    same = ("run_id", "model_uri", "metrics", "device")
    assert {k: second[k] for k in same} == {k: first[k] for k in same}
    # MLflow keeps params as text; the retry reports the typed ones it was started with.
    assert second["params"] == first["params"] == {"c": 1.0}
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (run,) = client.search_runs([experiment_id])
    assert run.data.tags["airflow.try_number"] == "1"
    assert run.data.tags["ml_platform.model"] == churn_spec.model
    assert run.data.params == {"c": "1.0", "task": "binary"}
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/model_spec.json") == (
        churn_spec.to_dict()
    )
    # Every candidate, a team trainer's too, carries the profile of its training split.
    profile = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/reference_profile.json")
    assert profile["rows"] == len(pd.read_parquet(prepared / "train.parquet"))
    assert set(profile["columns"]) == set(churn_spec.column_names) - {churn_spec.key}
    # The logged model answers what the platform expects of a binary model.
    rows = pd.read_parquet(prepared / "test.parquet")
    outputs = sdk.check_model(churn_spec, first["model_uri"], rows)
    assert outputs.shape == (len(rows),) and np.all((outputs >= 0) & (outputs <= 1))

    # Other params in the same task instance: a new run, and the old one is superseded.
    changed = attempt(3, "--c", "0.1")
    assert changed["reused"] is False and changed["run_id"] != first["run_id"]
    assert client.get_run(first["run_id"]).data.tags["superseded_by"] == changed["run_id"]
