"""The evaluate subcommand: candidate vs. the registry's champion on the same test split."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_contract import Metric, ModelSpec, metrics_for
from trainer.drift import profile_drift
from trainer.errors import TrainerError
from trainer.golden import (
    GOLDEN_ARTIFACT,
    load_golden_set,
    log_importance,
    permutation_importance,
    sample_rows,
    signature_breaks,
)
from trainer.metrics import score
from trainer.prepared import load_prepared
from trainer.profile import PROFILE_ARTIFACT
from trainer.registry import CHAMPION_ALIAS, champion_version, run_artifact_dict

log = logging.getLogger(__name__)

# Permutation importance: a few hundred rows and repeats keep it to seconds.
IMPORTANCE_ROWS = 500
IMPORTANCE_REPEATS = 3
IMPORTANCE_SEED = 0


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
    """Candidate vs. @champion on the test split and on the champion's golden set.

    The spec gives metric and thresholds. Refused, whatever today's split says: an input
    schema that breaks the champion's (unless promotion.breaking_change), a day on which the
    champion falls below its own recorded golden score by more than promotion.suspect_drop
    (suspect data), a candidate that falls below the champion on the golden set by more
    than promotion.golden_tolerance, and one feature carrying more than
    promotion.max_importance_share of the candidate's permutation importance. A deploy on a
    day whose PSI against the champion's profile reaches promotion.drift_threshold needs a
    person's approval (`needs_approval`; the DAG asks for it).
    """
    metric = deciding_metric(spec, metric_name)
    threshold = spec.promotion.threshold if threshold is None else threshold
    if min_improvement is None:
        min_improvement = spec.promotion.min_improvement
    tolerance = spec.promotion.golden_tolerance
    suspect_drop = spec.promotion.suspect_drop
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
    golden_result = None
    golden_rows: pd.DataFrame | None = None
    breaks: list[str] = []
    checks: list[str] = []  # refusals that overrule today's scores, in order
    if champion is not None:
        label = f"champion version {champion.version}"
        champion_uri = f"models:/{model_name}/{champion.version}"
        log.info("scoring champion %s", champion_uri)
        champion_model = load_model(champion_uri)
        breaks = signature_breaks(
            champion_model.metadata.get_input_schema(),
            candidate.metadata.get_input_schema(),
            label,
        )
        if breaks and not spec.promotion.breaking_change:
            checks.append(
                f"the candidate's inputs break {label}: {'; '.join(breaks)} "
                "(set promotion.breaking_change: true if that is intended)"
            )
        try:
            outputs = predict_outputs(champion_model, champion_uri, raw, spec)
            today_score: float | None = score(spec, labels, outputs)[metric.name]
        except TrainerError:
            if not breaks:
                raise
            # Today's split lacks an input only the champion takes: compare on the golden set.
            log.info("%s cannot score today's split (its inputs differ)", champion_uri)
            today_score = None
        champion_result = {
            "version": str(champion.version),
            "model_uri": champion_uri,
            "score": today_score,
        }
        golden_result, golden_rows = _golden(
            client, spec, metric, (champion_model, champion_uri), (candidate, model_uri)
        )
        if golden_result is not None and today_score is not None:
            recorded = golden_result["champion_recorded_score"]
            collapse = metric.better(champion_result["score"], recorded)
            golden_result["champion_change_today"] = collapse
            golden_result["suspect_data"] = collapse < -suspect_drop
            if golden_result["suspect_data"]:
                checks.append(
                    f"the day's data is suspect: {label} scores {metric.name} "
                    f"{champion_result['score']:.4f} on it, {collapse:+.4f} against its "
                    f"recorded {recorded:.4f} on its golden set "
                    f"(promotion.suspect_drop {suspect_drop:.4f})"
                )
        elif golden_result is not None:
            golden_result["champion_change_today"] = None
            golden_result["suspect_data"] = False
    else:
        label = ""
        log.info("model %r has no @%s version", model_name, CHAMPION_ALIAS)
    drift = _drift(spec, champion, label, prepared)

    should_deploy, reason = decide(
        metric,
        candidate_score,
        None if champion_result is None else champion_result["score"],
        label,
        threshold,
        min_improvement,
    )
    if champion_result is not None and champion_result["score"] is None and should_deploy:
        reason = reason.replace(
            "no champion yet", f"breaking change allowed; {label} cannot score today's split"
        )
    # Order: a broken signature or a suspect day make today's scores moot; then today's
    # verdict; a golden-set regression only matters once today's split says deploy.
    if checks:
        should_deploy, reason = False, checks[0]
    elif should_deploy and golden_result is not None and golden_result["change"] < -tolerance:
        should_deploy, reason = (
            False,
            (
                f"candidate {metric.name} {golden_result['candidate_score']:.4f} on the golden set "
                f"of {label} falls {golden_result['change']:+.4f} below the champion's "
                f"{golden_result['champion_score']:.4f}, beyond the tolerance {tolerance:.4f}"
            ),
        )

    candidate_run = run_id or candidate.metadata.run_id
    # On the champion's golden set; with no champion, on the candidate's own (today's split).
    if golden_rows is not None:
        importance = _importance(
            spec, metric, candidate, model_uri, golden_rows, f"golden set of {label}"
        )
    else:
        importance = _importance(spec, metric, candidate, model_uri, test.frame, "test split")
    dominant = _dominant_feature(importance, spec.promotion.max_importance_share)
    if should_deploy and dominant:
        should_deploy, reason = False, dominant
    needs_approval = bool(should_deploy and drift and drift["drifted"])
    if needs_approval:
        drifted = ", ".join(drift["drifted"])
        reason += (
            f"; but the day drifted from {label}'s training data (PSI >= {drift['threshold']:g} "
            f"on {drifted}, max {drift['max_psi']:.3f}): deploying needs a person's approval"
        )
    log.info("should_deploy=%s needs_approval=%s: %s", should_deploy, needs_approval, reason)
    if run_id is not None:
        metrics = {f"eval_{metric.name}": candidate_score}
        if champion_result is not None and champion_result["score"] is not None:
            metrics[f"eval_champion_{metric.name}"] = champion_result["score"]
        if golden_result is not None:
            metrics[f"eval_golden_{metric.name}"] = golden_result["candidate_score"]
            metrics[f"eval_golden_champion_{metric.name}"] = golden_result["champion_score"]
            metrics["eval_golden_change"] = golden_result["change"]
        if drift:
            metrics["eval_max_psi"] = drift["max_psi"]
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.set_tag(run_id, "should_deploy", str(should_deploy).lower())
        client.set_tag(run_id, "eval.needs_approval", str(needs_approval).lower())
        client.set_tag(run_id, "eval.reason", reason)
        client.set_tag(
            run_id,
            "eval.suspect_data",
            str(bool(golden_result and golden_result["suspect_data"])).lower(),
        )
        log_importance(client, run_id, importance.pop("all"), importance)
        if breaks:
            client.set_tag(run_id, "eval.signature_breaks", "; ".join(breaks)[:5000])
        if golden_result is not None:
            client.set_tag(run_id, "eval.golden_run_id", golden_result["run_id"])
            client.set_tag(run_id, "eval.golden_dataset_version", golden_result["dataset_version"])
    return {
        "should_deploy": should_deploy,
        "needs_approval": needs_approval,
        "reason": reason,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "thresholds": {
            "threshold": threshold,
            "min_improvement": min_improvement,
            "golden_tolerance": tolerance,
            "suspect_drop": suspect_drop,
            "breaking_change": spec.promotion.breaking_change,
            "drift_threshold": spec.promotion.drift_threshold,
            "max_importance_share": spec.promotion.max_importance_share,
        },
        "candidate": {
            "model_uri": model_uri,
            # Without --run-id, report the run the model was logged from.
            "run_id": candidate_run,
            "score": candidate_score,
        },
        "champion": champion_result,
        "golden": golden_result,
        "suspect_data": bool(golden_result and golden_result["suspect_data"]),
        "signature": {"breaks": breaks, "allowed": not breaks or spec.promotion.breaking_change},
        "drift": drift,
        "importance": importance,
    }


def _drift(spec: ModelSpec, champion, label: str, prepared) -> dict | None:
    """The day's PSI per feature against the champion's reference profile; None without one."""
    profile = run_artifact_dict(champion, PROFILE_ARTIFACT)
    if profile is None:
        return None
    day = pd.concat(
        [prepared.split(name).frame for name in ("train", "val", "test")], ignore_index=True
    )
    features = profile_drift(profile, day, spec.features)
    if not features:
        return None
    threshold = spec.promotion.drift_threshold
    max_psi = max(d["psi"] for d in features.values())
    drifted = sorted(name for name, d in features.items() if d["psi"] >= threshold)
    log.info(
        "drift against the profile of %s: max PSI %.3f (threshold %g)", label, max_psi, threshold
    )
    return {
        "reference": f"profile of {label}",
        "threshold": threshold,
        "max_psi": max_psi,
        "drifted": drifted,
        "features": features,
    }


def _dominant_feature(importance: dict, max_share: float | None) -> str | None:
    """The refusal when one feature carries more than `max_share` of the importance."""
    shares = importance.get("shares") or {}
    if max_share is None or not shares:
        return None
    feature, share = max(shares.items(), key=lambda item: item[1])
    if share <= max_share:
        return None
    return (
        f"feature {feature!r} carries {share:.0%} of the candidate's permutation importance "
        f"on the {importance['on']}, above promotion.max_importance_share {max_share:g}"
    )


def _model_inputs(model: mlflow.pyfunc.PyFuncModel, frame: pd.DataFrame, spec: ModelSpec):
    """The columns of `frame` the model takes: its signature's, else the spec's features."""
    schema = model.metadata.get_input_schema()
    names = schema.input_names() if schema is not None and schema.has_input_names() else None
    wanted = names or list(spec.feature_names)
    return frame[[name for name in wanted if name in frame.columns]]


def _golden(
    client: MlflowClient,
    spec: ModelSpec,
    metric: Metric,
    champion: tuple[mlflow.pyfunc.PyFuncModel, str],
    candidate: tuple[mlflow.pyfunc.PyFuncModel, str],
) -> tuple[dict | None, pd.DataFrame | None]:
    """Both models on the champion's golden set, and the champion's recorded score on it."""
    (champion_model, champion_uri), (candidate_model, candidate_uri) = champion, candidate
    run_id = champion_model.metadata.run_id
    loaded = load_golden_set(client, run_id)
    if loaded is None:
        log.info("%s has no golden set: comparing on today's split only", champion_uri)
        return None, None
    frame, version = loaded
    labels_ok = spec.label in frame.columns and (
        spec.task == "regression" or set(frame[spec.label].unique().tolist()) <= set(spec.classes)
    )
    if not labels_ok:
        log.warning("the golden set of %s does not fit the spec's label: skipped", champion_uri)
        return None, None
    labels = frame[spec.label].to_numpy()
    scores = {}
    for name, model, uri in (
        ("candidate", candidate_model, candidate_uri),
        ("champion", champion_model, champion_uri),
    ):
        rows = _model_inputs(model, frame, spec)
        scores[name] = score(spec, labels, predict_outputs(model, uri, rows, spec))[metric.name]
    # What the champion's run recorded on this very split when it was trained.
    recorded = client.get_run(run_id).data.metrics.get(f"test_{metric.name}", scores["champion"])
    result = {
        "run_id": run_id,
        "artifact": GOLDEN_ARTIFACT,
        "dataset_version": version,
        "rows": len(frame),
        "candidate_score": scores["candidate"],
        "champion_score": scores["champion"],
        "champion_recorded_score": float(recorded),
        "change": metric.better(scores["candidate"], scores["champion"]),
    }
    return result, frame


def _importance(
    spec: ModelSpec,
    metric: Metric,
    model: mlflow.pyfunc.PyFuncModel,
    model_uri: str,
    frame: pd.DataFrame,
    on: str,
) -> dict:
    """Permutation importance of the candidate on `frame` (raw rows with the label)."""
    rows = sample_rows(frame, IMPORTANCE_ROWS, IMPORTANCE_SEED)
    labels = rows[spec.label].to_numpy()
    inputs = _model_inputs(model, rows, spec)

    def score_rows(shuffled: pd.DataFrame) -> float:
        return score(spec, labels, predict_outputs(model, model_uri, shuffled, spec))[metric.name]

    values = permutation_importance(
        score_rows, inputs, list(inputs.columns), metric, IMPORTANCE_SEED, IMPORTANCE_REPEATS
    )
    ranked = sorted(values.items(), key=lambda item: item[1], reverse=True)
    # Shares of the positive importance: a feature whose shuffling helps carries nothing.
    total = sum(max(value, 0.0) for value in values.values())
    shares = {name: max(value, 0.0) / total for name, value in values.items()} if total else {}
    return {
        "on": on,
        "metric": metric.name,
        "rows": len(rows),
        "repeats": IMPORTANCE_REPEATS,
        "top": [
            {"feature": name, "importance": value, "share": shares.get(name)}
            for name, value in ranked[:5]
        ],
        "shares": shares,
        "all": values,
    }


def deciding_metric(spec: ModelSpec, name: str | None) -> Metric:
    """The spec's metric, or `name` when given and valid for the task."""
    known = metrics_for(spec.task)
    if name is None:
        return spec.deciding_metric
    if name not in known:
        raise TrainerError(
            f"--metric {name}: not a {spec.task} metric (use one of {', '.join(known)})"
        )
    return known[name]
