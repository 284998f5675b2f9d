"""evaluate: the candidate against the registry's @champion on the same test split."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from trainer_helpers import unique

pytestmark = pytest.mark.slow  # trains real models against MLflow


def _train(run_cli, data: Path) -> dict:
    result = run_cli(
        "train",
        "--data-uri",
        str(data),
        "--experiment",
        unique("evaluate"),
        "--epochs",
        "3",
        "--learning-rate",
        "0.01",
    )
    assert result.code == 0, result.stderr
    return result.xcom


def _evaluate(run_cli, prepared: Path, candidate: dict, model_name: str, *flags: str) -> dict:
    result = run_cli(
        "evaluate",
        "--model-uri",
        candidate["model_uri"],
        "--data-uri",
        str(prepared),
        "--model-name",
        model_name,
        *flags,
    )
    assert result.code == 0, result.stderr
    return result.xcom


def _crown(model_name: str, candidate: dict) -> str:
    version = mlflow.register_model(candidate["model_uri"], model_name).version
    MlflowClient().set_registered_model_alias(model_name, "champion", version)
    return str(version)


@pytest.fixture
def shuffled_labels(prepared_copy: Path) -> Path:
    """The prepared data with train and val labels shuffled: a model learns nothing from it."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        path = prepared_copy / f"{split}.parquet"
        frame = pd.read_parquet(path)
        frame["churned"] = rng.permutation(frame["churned"].to_numpy())
        frame.to_parquet(path, index=False)
    return prepared_copy


def test_the_first_model_that_passes_wins_when_there_is_no_champion(
    run_cli, prepared: Path, mlflow_uri: str
):
    candidate = _train(run_cli, prepared)
    model_name = unique("churn")

    fresh = _evaluate(run_cli, prepared, candidate, model_name, "--run-id", candidate["run_id"])

    score = candidate["metrics"]["test_roc_auc"]
    importance = fresh.pop("importance")
    assert importance["on"] == "test split"  # no champion: the candidate's own golden set
    assert fresh == {
        "should_deploy": True,
        "needs_approval": False,
        "reason": f"no champion yet; candidate roc_auc {score:.4f} meets the minimum 0.7000",
        "metric": "roc_auc",
        "higher_is_better": True,
        "thresholds": {
            "threshold": 0.7,
            "min_improvement": 0.005,
            "golden_tolerance": 0.02,
            "suspect_drop": 0.1,
            "breaking_change": False,
            "drift_threshold": 0.25,
            "max_importance_share": None,
        },
        "candidate": {
            "model_uri": candidate["model_uri"],
            "run_id": candidate["run_id"],
            "score": pytest.approx(score, abs=1e-9),
        },
        "champion": None,
        "golden": None,
        "suspect_data": False,
        "signature": {"breaks": [], "allowed": True},
        "drift": None,
    }
    run = MlflowClient().get_run(candidate["run_id"])
    assert run.data.metrics["eval_roc_auc"] == pytest.approx(score)
    assert run.data.tags["should_deploy"] == "true"

    # A registered model without the alias has no champion either.
    mlflow.register_model(candidate["model_uri"], model_name)
    registered = _evaluate(run_cli, prepared, candidate, model_name, "--metric", "accuracy")
    assert registered["champion"] is None
    assert registered["should_deploy"] is True
    assert registered["candidate"]["score"] == pytest.approx(candidate["metrics"]["test_accuracy"])
    assert registered["candidate"]["run_id"] == candidate["run_id"]  # read from the model

    too_strict = _evaluate(run_cli, prepared, candidate, model_name, "--threshold", "0.99")
    assert too_strict["should_deploy"] is False
    assert too_strict["reason"] == (f"candidate roc_auc {score:.4f} is below the minimum 0.9900")
    assert too_strict["thresholds"]["threshold"] == 0.99
    # --min-metric is the old name of --threshold, still accepted.
    old_flag = _evaluate(run_cli, prepared, candidate, model_name, "--min-metric", "0.99")
    assert old_flag["reason"] == too_strict["reason"]


def test_a_worse_challenger_is_refused_and_a_better_one_accepted(
    run_cli, prepared: Path, shuffled_labels: Path, mlflow_uri: str
):
    good = _train(run_cli, prepared)
    weak = _train(run_cli, shuffled_labels)
    model_name = unique("churn")
    good_version = _crown(model_name, good)
    good_score = good["metrics"]["test_roc_auc"]

    below_minimum = _evaluate(run_cli, prepared, weak, model_name)
    weak_score = below_minimum["candidate"]["score"]
    assert weak_score < 0.65 < 0.8 < good_score
    assert below_minimum["should_deploy"] is False
    assert "is below the minimum 0.7000" in below_minimum["reason"]
    assert below_minimum["champion"] == {
        "version": good_version,
        "model_uri": f"models:/{model_name}/{good_version}",
        "score": pytest.approx(good_score, abs=1e-9),
    }

    not_better = _evaluate(run_cli, prepared, weak, model_name, "--min-metric", "0")
    assert not_better["should_deploy"] is False
    assert not_better["reason"] == (
        f"candidate roc_auc {weak_score:.4f} does not beat champion version {good_version} "
        f"({good_score:.4f}) by the required 0.0050 (change {weak_score - good_score:+.4f})"
    )

    itself = _evaluate(run_cli, prepared, good, model_name)
    assert itself["should_deploy"] is False  # no improvement at all
    assert "(change +0.0000)" in itself["reason"]

    weak_version = _crown(model_name, weak)
    better = _evaluate(run_cli, prepared, good, model_name)
    assert better["should_deploy"] is True
    assert better["champion"]["version"] == weak_version
    assert better["reason"] == (
        f"candidate roc_auc {good_score:.4f} beats champion version {weak_version} "
        f"({weak_score:.4f}) by {good_score - weak_score:+.4f}, at least the required 0.0050"
    )


def test_an_unloadable_candidate_or_unknown_run_fails_in_one_line(
    run_cli, prepared: Path, mlflow_uri: str
):
    missing = run_cli(
        "evaluate",
        "--model-uri",
        "models:/m-0123456789abcdef0123456789abcdef",
        "--data-uri",
        str(prepared),
        "--model-name",
        unique("churn"),
    )
    assert missing.code == 1
    assert missing.error_line.startswith(
        "trainer evaluate: error: models:/m-0123456789abcdef0123456789abcdef: "
        "cannot load the model ("
    )

    unknown_run = run_cli(
        "evaluate",
        "--model-uri",
        "models:/m-0123456789abcdef0123456789abcdef",
        "--data-uri",
        str(prepared),
        "--model-name",
        unique("churn"),
        "--run-id",
        "0" * 32,
    )
    assert unknown_run.code == 1
    assert (
        unknown_run.error_line
        == f"trainer evaluate: error: --run-id {'0' * 32}: no such MLflow run"
    )
