"""evaluate against the champion's golden set: suspect days, golden regressions, signatures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.types import ColSpec, Schema
from trainer_helpers import unique

from ml_contract import SPEC_ENV, ModelSpec
from trainer.evaluate import load_model
from trainer.golden import GOLDEN_ARTIFACT, GOLDEN_VERSION_TAG, signature_breaks
from trainer.preprocess import run_preprocess

pytestmark = pytest.mark.slow  # trains real models against MLflow


def _train(run_cli, data: Path, *flags: str) -> dict:
    result = run_cli(
        "train", "--data-uri", str(data), "--experiment", unique("golden"),
        "--epochs", "3", "--learning-rate", "0.01", *flags,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return result.xcom


def _evaluate(run_cli, data: Path, candidate: dict, model_name: str) -> dict:
    result = run_cli(
        "evaluate", "--model-uri", candidate["model_uri"], "--data-uri", str(data),
        "--model-name", model_name, "--run-id", candidate["run_id"],
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return result.xcom


def _crown(model_name: str, candidate: dict) -> str:
    version = mlflow.register_model(candidate["model_uri"], model_name).version
    MlflowClient().set_registered_model_alias(model_name, "champion", version)
    return str(version)


def _with_spec(monkeypatch, spec: ModelSpec, **promotion) -> ModelSpec:
    changed = dataclasses.replace(spec, promotion=dataclasses.replace(spec.promotion, **promotion))
    monkeypatch.setenv(SPEC_ENV, changed.to_json())
    return changed


def _rewrite_test(folder: Path, change) -> None:
    path = folder / "test.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def test_train_logs_its_test_split_as_the_golden_set(run_cli, prepared: Path, mlflow_uri: str):
    candidate = _train(run_cli, prepared)
    client = MlflowClient()
    local = client.download_artifacts(candidate["run_id"], GOLDEN_ARTIFACT, str(prepared.parent))
    golden = pd.read_parquet(local)
    pd.testing.assert_frame_equal(golden, pd.read_parquet(prepared / "test.parquet"))
    tags = client.get_run(candidate["run_id"]).data.tags
    assert tags[GOLDEN_VERSION_TAG] == tags["dataset.version"]


def test_a_corrupted_day_is_suspect_and_a_golden_regression_is_refused(
    run_cli, prepared: Path, prepared_copy: Path, mlflow_uri: str, monkeypatch, churn_spec
):
    good = _train(run_cli, prepared)
    model_name = unique("churn")
    version = _crown(model_name, good)

    # A day whose test labels are noise: the champion collapses against its golden set.
    rng = np.random.default_rng(1)
    _rewrite_test(prepared_copy, lambda f: f.assign(churned=rng.permutation(f["churned"])))
    suspect = _evaluate(run_cli, prepared_copy, good, model_name)
    today = suspect["champion"]["score"]
    recorded = good["metrics"]["test_roc_auc"]
    assert recorded - today > churn_spec.promotion.suspect_drop
    assert suspect["should_deploy"] is False
    assert suspect["suspect_data"] is True
    assert suspect["reason"].startswith(
        f"the day's data is suspect: champion version {version} scores roc_auc {today:.4f}"
    )
    assert suspect["golden"]["champion_recorded_score"] == pytest.approx(recorded)
    tags = MlflowClient().get_run(good["run_id"]).data.tags
    assert tags["eval.suspect_data"] == "true"

    # A day where today's split favours a weaker candidate: the positives it ranks highest
    # and the negatives it ranks lowest. The golden set still shows it is worse.
    weak = _train(run_cli, prepared, "--epochs", "1", "--learning-rate", "0.0001")
    rows = pd.read_parquet(prepared / "test.parquet")
    probabilities = np.asarray(load_model(weak["model_uri"]).predict(rows)).reshape(-1)
    cut = np.median(probabilities)
    keep = ((rows["churned"] == 1) & (probabilities > cut)) | (
        (rows["churned"] == 0) & (probabilities <= cut)
    )
    _rewrite_test(prepared_copy, lambda f: rows[keep.to_numpy()].reset_index(drop=True))
    _with_spec(monkeypatch, churn_spec, golden_tolerance=0.1)
    flattered = _evaluate(run_cli, prepared_copy, weak, model_name)
    assert flattered["candidate"]["score"] - flattered["champion"]["score"] >= 0.005
    assert flattered["suspect_data"] is False
    assert flattered["golden"]["change"] < -0.1
    assert flattered["should_deploy"] is False
    assert "on the golden set of champion version" in flattered["reason"]
    assert "beyond the tolerance 0.1000" in flattered["reason"]
    metrics = MlflowClient().get_run(weak["run_id"]).data.metrics
    assert metrics["eval_golden_roc_auc"] == pytest.approx(flattered["golden"]["candidate_score"])
    assert {f"importance_{name}" for name in ("age", "tenure_months")} <= set(metrics)


def test_a_dropped_input_is_refused_unless_breaking_change(
    run_cli, prepared: Path, raw_partition: Path, tmp_path: Path, mlflow_uri: str,
    monkeypatch, churn_spec: ModelSpec,
):  # fmt: skip
    model_name = unique("churn")
    weak = _train(run_cli, prepared, "--epochs", "1", "--learning-rate", "0.0001")
    version = _crown(model_name, weak)

    # A spec without data_usage_gb: the candidate no longer takes an input the champion does.
    dropped_spec = dataclasses.replace(
        churn_spec, columns=tuple(c for c in churn_spec.columns if c.name != "data_usage_gb")
    )
    monkeypatch.setenv(SPEC_ENV, dropped_spec.to_json())
    narrow = tmp_path / "narrow"
    run_preprocess(str(raw_partition), str(narrow), 42, 0.15, 0.15, dropped_spec)
    candidate = _train(run_cli, narrow)
    refused = _evaluate(run_cli, narrow, candidate, model_name)
    problem = f"input 'data_usage_gb' of champion version {version} is missing"
    assert refused["should_deploy"] is False
    assert refused["reason"] == (
        f"the candidate's inputs break champion version {version}: {problem} "
        "(set promotion.breaking_change: true if that is intended)"
    )
    assert refused["signature"] == {"breaks": [problem], "allowed": False}
    tags = MlflowClient().get_run(candidate["run_id"]).data.tags
    assert tags["eval.signature_breaks"] == problem

    _with_spec(monkeypatch, dropped_spec, breaking_change=True)
    allowed = _evaluate(run_cli, narrow, candidate, model_name)
    assert allowed["should_deploy"] is True, allowed["reason"]
    assert allowed["signature"] == {"breaks": [problem], "allowed": True}


def test_signature_breaks_names_each_retyped_dropped_or_new_required_input():
    champion = Schema([ColSpec("long", "age"), ColSpec("double", "x"), ColSpec("string", "c")])
    candidate = Schema(
        [ColSpec("double", "age"), ColSpec("string", "c"), ColSpec("long", "new", required=False)]
    )
    assert signature_breaks(champion, candidate, "champion version 3") == [
        "input 'age': long in champion version 3, double in the candidate",
        "input 'x' of champion version 3 is missing",
    ]
    required = Schema([*champion.inputs, ColSpec("long", "z")])
    assert signature_breaks(champion, required, "champion version 3") == [
        "input 'z' is required by the candidate, not by champion version 3"
    ]
    assert signature_breaks(champion, champion, "champion version 3") == []
    assert signature_breaks(None, candidate, "champion version 3") == []


def test_one_feature_carrying_too_much_importance_is_refused(
    run_cli, prepared: Path, mlflow_uri: str, monkeypatch, churn_spec: ModelSpec
):
    candidate = _train(run_cli, prepared)
    model_name = unique("churn")  # no champion: only the candidate's own gates apply
    # Eight features: the largest share is at least 1/8, so 0.1 refuses any model.
    _with_spec(monkeypatch, churn_spec, max_importance_share=0.1)
    refused = _evaluate(run_cli, prepared, candidate, model_name)
    shares = refused["importance"]["shares"]
    top, share = max(shares.items(), key=lambda item: item[1])
    assert sum(shares.values()) == pytest.approx(1.0)
    assert refused["should_deploy"] is False
    assert refused["reason"] == (
        f"feature {top!r} carries {share:.0%} of the candidate's permutation importance "
        "on the test split, above promotion.max_importance_share 0.1"
    )
    assert refused["thresholds"]["max_importance_share"] == 0.1

    _with_spec(monkeypatch, churn_spec, max_importance_share=1.0)
    allowed = _evaluate(run_cli, prepared, candidate, model_name)
    assert allowed["should_deploy"] is True, allowed["reason"]
    assert allowed["drift"] is None and allowed["needs_approval"] is False
