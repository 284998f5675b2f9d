"""The evaluate subcommand: candidate vs. the registry's champion on the same test split."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from trainer import schema
from trainer.errors import TrainerError
from trainer.metrics import binary_metrics
from trainer.prepared import load_prepared

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"


def champion_version(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version behind @champion; None when the model or the alias does not exist."""
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    # Reading the alias map avoids get_model_version_by_alias, which reports a missing
    # alias as INVALID_PARAMETER_VALUE rather than RESOURCE_DOES_NOT_EXIST.
    version = registered.aliases.get(CHAMPION_ALIAS)
    return None if version is None else client.get_model_version(model_name, str(version))


def load_model(model_uri: str) -> mlflow.pyfunc.PyFuncModel:
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainerError(f"{model_uri}: cannot load the model ({first_line})") from exc


def predict_probabilities(
    model: mlflow.pyfunc.PyFuncModel, model_uri: str, raw: pd.DataFrame
) -> np.ndarray:
    """Churn probabilities from a logged model that takes raw feature columns."""
    try:
        output = model.predict(raw)
    except (MlflowException, ValueError, TypeError, RuntimeError) as exc:
        # Schema errors quote the whole frame first; the reason follows the last "Error: ".
        reason = " ".join(str(exc).split()).rpartition("Error: ")[2][:300]
        raise TrainerError(f"{model_uri}: predicting raw features failed ({reason})") from exc
    probabilities = np.asarray(output, dtype=np.float64).reshape(-1)
    if len(probabilities) != len(raw) or not np.all((probabilities >= 0) & (probabilities <= 1)):
        raise TrainerError(
            f"{model_uri}: expected one churn probability in [0, 1] per row, "
            f"got {len(probabilities)} value(s) for {len(raw)} row(s)"
        )
    return probabilities


def decide(
    metric: str,
    candidate: float,
    champion: float | None,
    champion_label: str,
    min_metric: float,
    min_improvement: float,
) -> tuple[bool, str]:
    """should_deploy and the reason, as a sentence."""
    if candidate < min_metric:
        return False, f"candidate {metric} {candidate:.4f} is below the minimum {min_metric:.4f}"
    if champion is None:
        return True, (
            f"no champion yet; candidate {metric} {candidate:.4f} meets the minimum "
            f"{min_metric:.4f}"
        )
    gain = candidate - champion
    if gain >= min_improvement:
        return True, (
            f"candidate {metric} {candidate:.4f} beats {champion_label} ({champion:.4f}) "
            f"by {gain:+.4f}, at least the required {min_improvement:.4f}"
        )
    return False, (
        f"candidate {metric} {candidate:.4f} does not beat {champion_label} ({champion:.4f}) "
        f"by the required {min_improvement:.4f} (change {gain:+.4f})"
    )


def run_evaluate(
    model_uri: str,
    data_uri: str,
    model_name: str,
    run_id: str | None,
    metric: str,
    min_metric: float,
    min_improvement: float,
) -> dict:
    client = MlflowClient()
    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException as exc:
            raise TrainerError(f"--run-id {run_id}: no such MLflow run") from exc

    prepared = load_prepared(data_uri)
    test = prepared.split("test")
    # test.parquet holds scaled features; both models expect raw ones.
    raw = prepared.scaler.inverse(test.frame)
    labels = test.frame[schema.LABEL.name].to_numpy()

    log.info("scoring candidate %s on %d test rows", model_uri, len(raw))
    candidate = load_model(model_uri)
    candidate_probabilities = predict_probabilities(candidate, model_uri, raw)
    candidate_score = binary_metrics(labels, candidate_probabilities)[metric]
    champion = champion_version(client, model_name)
    champion_result = None
    if champion is not None:
        champion_uri = f"models:/{model_name}/{champion.version}"
        log.info("scoring champion %s", champion_uri)
        champion_probabilities = predict_probabilities(load_model(champion_uri), champion_uri, raw)
        champion_score = binary_metrics(labels, champion_probabilities)[metric]
        champion_result = {
            "version": str(champion.version),
            "model_uri": champion_uri,
            "score": champion_score,
        }
    else:
        log.info("model %r has no @%s version", model_name, CHAMPION_ALIAS)

    should_deploy, reason = decide(
        metric,
        candidate_score,
        None if champion_result is None else champion_result["score"],
        f"champion version {champion.version}" if champion is not None else "",
        min_metric,
        min_improvement,
    )
    log.info("should_deploy=%s: %s", should_deploy, reason)
    if run_id is not None:
        client.log_metric(run_id, f"eval_{metric}", candidate_score)
        if champion_result is not None:
            client.log_metric(run_id, f"eval_champion_{metric}", champion_result["score"])
        client.set_tag(run_id, "should_deploy", str(should_deploy).lower())
        client.set_tag(run_id, "eval.reason", reason)
    return {
        "should_deploy": should_deploy,
        "reason": reason,
        "metric": metric,
        "thresholds": {"min_metric": min_metric, "min_improvement": min_improvement},
        "candidate": {
            "model_uri": model_uri,
            # Without --run-id, report the run the model was logged from.
            "run_id": run_id or candidate.metadata.run_id,
            "score": candidate_score,
        },
        "champion": champion_result,
    }
