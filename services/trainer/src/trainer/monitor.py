"""The monitor subcommand: should the model be retrained?

Two signals, each against its own threshold:
- data drift: PSI of each feature of the newest partition against the training reference
  (by default the raw partition the champion was trained on, found through its MLflow run);
  numeric features on reference deciles, categorical ones on their categories;
- model decay: the champion's deciding metric on the newest partition, which carries labels,
  against the spec's threshold (at least, or at most for error metrics).

With an `slo` in the spec it also watches the champion's live endpoint for the SLO's window
and reports its p99 latency, error rate and throughput and any breach (trainer.monitor_slo).
"""

from __future__ import annotations

import logging

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from ml_contract import ModelSpec
from trainer.drift import feature_drift
from trainer.errors import TrainerError
from trainer.evaluate import deciding_metric, load_model, predict_outputs
from trainer.metrics import score
from trainer.monitor_slo import champion_slo
from trainer.prepared import load_prepared
from trainer.registry import champion_version
from trainer.tracking import DATASET_URI_TAG
from trainer.validation import validate_input

log = logging.getLogger(__name__)


def _valid_frame(uri: str, role: str, spec: ModelSpec) -> pd.DataFrame:
    validation = validate_input(uri, spec)
    if not validation.valid:
        raise validation.error()
    log.info("%s data: %s (%d rows)", role, uri, len(validation.frame))
    return validation.frame


def champion_reference_uri(client: MlflowClient, run_id: str, spec: ModelSpec) -> str:
    """The raw partition a run was trained on: run tag -> preprocess manifest -> source."""
    prepared_uri = client.get_run(run_id).data.tags.get(DATASET_URI_TAG)
    if not prepared_uri:
        raise TrainerError(f"run {run_id}: no {DATASET_URI_TAG} tag to find its training data")
    return load_prepared(prepared_uri, spec).manifest["source_uri"]


def run_monitor(
    current_uri: str,
    model_name: str,
    reference_uri: str | None,
    spec: ModelSpec,
    metric_name: str | None,
    psi_threshold: float,
    threshold: float | None,
) -> dict:
    metric = deciding_metric(spec, metric_name)
    threshold = spec.promotion.threshold if threshold is None else threshold
    client = MlflowClient()
    champion = champion_version(client, model_name)
    if champion is None and reference_uri is None:
        reason = f"model {model_name!r} has no champion: train one"
        log.info(reason)
        return {
            "should_retrain": True,
            "reason": reason,
            "champion": None,
            "drift": {},
            "slo": _slo_report(spec, model_name, None),
        }

    reference_uri = reference_uri or champion_reference_uri(client, champion.run_id, spec)
    reference = _valid_frame(reference_uri, "reference", spec)
    current = _valid_frame(current_uri, "current", spec)
    drift = feature_drift(reference, current, spec.features)
    drifted = sorted(name for name, d in drift.items() if d["psi"] >= psi_threshold)
    max_psi = max(d["psi"] for d in drift.values())

    live = None
    if champion is not None:
        champion_uri = f"models:/{model_name}/{champion.version}"
        raw = current[list(spec.feature_names)]
        outputs = predict_outputs(load_model(champion_uri), champion_uri, raw, spec)
        value = score(spec, current[spec.label].to_numpy(), outputs)[metric.name]
        live = {"version": str(champion.version), "metric": metric.name, "score": value}

    # After the drift report's inputs are read: bad data fails the task before the window.
    slo = _slo_report(spec, model_name, champion)

    reasons = []
    if drifted:
        reasons.append(f"PSI >= {psi_threshold:g} on {', '.join(drifted)} (max {max_psi:.3f})")
    if live and not metric.meets(live["score"], threshold):
        side = "fell below" if metric.higher_is_better else "rose above"
        reasons.append(f"champion {metric.name} {live['score']:.4f} {side} {threshold:.4f}")
    should_retrain = bool(reasons)
    if not reasons:
        shown = f"; champion {metric.name} {live['score']:.4f}" if live else ""
        reasons.append(f"no drift (max PSI {max_psi:.3f} < {psi_threshold:g}){shown}")
    reason = "; ".join(reasons)
    log.info("should_retrain=%s: %s", should_retrain, reason)
    return {
        "should_retrain": should_retrain,
        "reason": reason,
        "reference_uri": reference_uri,
        "current_uri": current_uri,
        "thresholds": {"psi": psi_threshold, "threshold": threshold},
        "drift": drift,
        "drifted_features": drifted,
        "max_psi": max_psi,
        "champion": live,
        "slo": slo,
    }


def _slo_report(spec: ModelSpec, model_name: str, champion: ModelVersion | None) -> dict | None:
    """The SLO part of the report: None without an slo in the spec; unchecked without a
    champion; else the champion's endpoint watched for the SLO's window."""
    if spec.slo is None:
        return None
    if champion is None:
        reason = f"model {model_name!r} has no champion: no endpoint to hold to the SLO"
        return {"checked": False, "breached": False, "reason": reason}
    return champion_slo(champion, spec.slo)
