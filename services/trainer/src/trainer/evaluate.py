"""The evaluate subcommand: candidate vs. the registry's champion on the same test split."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ml_contract import Metric, ModelSpec, metrics_for
from trainer.errors import TrainerError
from trainer.metrics import score
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


def predict_outputs(
    model: mlflow.pyfunc.PyFuncModel, model_uri: str, raw: pd.DataFrame, spec: ModelSpec
) -> np.ndarray:
    """The task's outputs for raw rows (see trainer.metrics), checked against the contract.

    A binary classifier may answer both class probabilities (scikit-learn's predict_proba):
    the second column is the contract's second class.
    """
    try:
        output = model.predict(raw)
    except (MlflowException, ValueError, TypeError, RuntimeError, KeyError) as exc:
        # Schema errors quote the whole frame first; the reason follows the last "Error: ".
        reason = " ".join(str(exc).split()).rpartition("Error: ")[2][:300]
        raise TrainerError(f"{model_uri}: predicting raw rows failed ({reason})") from exc
    values = np.asarray(output, dtype=np.float64)
    rows = len(raw)
    if spec.task == "binary" and values.ndim == 2 and values.shape[1] == 2:
        values = values[:, 1]
    if spec.task == "multiclass":
        expected = f"{len(spec.classes)} class probabilities in [0, 1] per row"
        ok = values.ndim == 2 and values.shape == (rows, len(spec.classes))
        ok = ok and bool(np.all((values >= 0) & (values <= 1)))
    elif spec.task == "binary":
        values = values.reshape(-1)
        expected = f"one probability of class {spec.classes[1]!r} in [0, 1] per row"
        ok = len(values) == rows and bool(np.all((values >= 0) & (values <= 1)))
    else:
        values = values.reshape(-1)
        expected = "one finite prediction per row"
        ok = len(values) == rows and bool(np.all(np.isfinite(values)))
    if not ok:
        raise TrainerError(
            f"{model_uri}: expected {expected} for {spec.task} model {spec.model}, "
            f"got shape {list(values.shape)} for {rows} row(s)"
        )
    return values


def decide(
    metric: Metric,
    candidate: float,
    champion: float | None,
    champion_label: str,
    threshold: float,
    min_improvement: float,
) -> tuple[bool, str]:
    """should_deploy and the reason, as a sentence; `metric` says which way is better."""
    name = metric.name
    if not metric.meets(candidate, threshold):
        side = "below the minimum" if metric.higher_is_better else "above the maximum"
        return False, f"candidate {name} {candidate:.4f} is {side} {threshold:.4f}"
    if champion is None:
        bar = "minimum" if metric.higher_is_better else "maximum"
        return (
            True,
            f"no champion yet; candidate {name} {candidate:.4f} meets the {bar} {threshold:.4f}",
        )
    gain = metric.better(candidate, champion)
    if gain >= min_improvement:
        return True, (
            f"candidate {name} {candidate:.4f} beats {champion_label} ({champion:.4f}) "
            f"by {gain:+.4f}, at least the required {min_improvement:.4f}"
        )
    return False, (
        f"candidate {name} {candidate:.4f} does not beat {champion_label} ({champion:.4f}) "
        f"by the required {min_improvement:.4f} (change {gain:+.4f})"
    )


def run_evaluate(
    model_uri: str,
    data_uri: str,
    model_name: str,
    run_id: str | None,
    spec: ModelSpec,
    metric_name: str | None = None,
    threshold: float | None = None,
    min_improvement: float | None = None,
) -> dict:
    """Candidate vs. @champion on the test split; the spec gives metric and thresholds."""
    metric = _metric(spec, metric_name)
    threshold = spec.promotion.threshold if threshold is None else threshold
    if min_improvement is None:
        min_improvement = spec.promotion.min_improvement
    client = MlflowClient()
    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException as exc:
            raise TrainerError(f"--run-id {run_id}: no such MLflow run") from exc

    prepared = load_prepared(data_uri, spec)
    test = prepared.split("test")
    raw, labels = test.features, test.labels  # raw rows: what both models take

    log.info("scoring candidate %s on %d test rows", model_uri, len(raw))
    candidate = load_model(model_uri)
    candidate_score = score(spec, labels, predict_outputs(candidate, model_uri, raw, spec))[
        metric.name
    ]
    champion = champion_version(client, model_name)
    champion_result = None
    if champion is not None:
        champion_uri = f"models:/{model_name}/{champion.version}"
        log.info("scoring champion %s", champion_uri)
        outputs = predict_outputs(load_model(champion_uri), champion_uri, raw, spec)
        champion_result = {
            "version": str(champion.version),
            "model_uri": champion_uri,
            "score": score(spec, labels, outputs)[metric.name],
        }
    else:
        log.info("model %r has no @%s version", model_name, CHAMPION_ALIAS)

    should_deploy, reason = decide(
        metric,
        candidate_score,
        None if champion_result is None else champion_result["score"],
        f"champion version {champion.version}" if champion is not None else "",
        threshold,
        min_improvement,
    )
    log.info("should_deploy=%s: %s", should_deploy, reason)
    if run_id is not None:
        client.log_metric(run_id, f"eval_{metric.name}", candidate_score)
        if champion_result is not None:
            client.log_metric(run_id, f"eval_champion_{metric.name}", champion_result["score"])
        client.set_tag(run_id, "should_deploy", str(should_deploy).lower())
        client.set_tag(run_id, "eval.reason", reason)
    return {
        "should_deploy": should_deploy,
        "reason": reason,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "thresholds": {"threshold": threshold, "min_improvement": min_improvement},
        "candidate": {
            "model_uri": model_uri,
            # Without --run-id, report the run the model was logged from.
            "run_id": run_id or candidate.metadata.run_id,
            "score": candidate_score,
        },
        "champion": champion_result,
    }


def _metric(spec: ModelSpec, name: str | None) -> Metric:
    known = metrics_for(spec.task)
    if name is None:
        return spec.deciding_metric
    if name not in known:
        raise TrainerError(
            f"--metric {name}: not a {spec.task} metric (use one of {', '.join(known)})"
        )
    return known[name]
