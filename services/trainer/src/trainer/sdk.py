"""The platform SDK for a team's own trainer image (an image built FROM the trainer image).

A team's `train` step follows the same conventions as the platform's, in a few calls:

    parser = argparse.ArgumentParser(prog="wine-trainer")
    sdk.add_train_flags(parser)                 # --data-uri, --experiment, --spec, ...
    parser.add_argument("--max-depth", type=int, default=3)

    def train(args):
        prepared = sdk.load_prepared(args.data_uri, sdk.spec_from_args(args))
        params = {"max_depth": args.max_depth}
        with sdk.tracked_run(args.experiment, params, prepared) as run:
            if run.reused:                      # an earlier try of this task finished
                return sdk.result_of(run.reused, prepared.spec, params)
            ...fit on prepared.split("train").features / .labels, log the model with
            MLflow's own flavour, then:
            outputs = sdk.check_model(prepared.spec, model_uri, prepared.split("val").features)
            run.model_logged(model_uri)
            metrics = sdk.log_scores(prepared, model_uri)
        return sdk.train_result(run, metrics, params)

    if __name__ == "__main__":
        sys.exit(sdk.entrypoint(parser, train))

What each call guarantees: the day's data is read under the model's contract (a partition is
validated like `trainer validate` does; prepared splits are checked against the spec); the
MLflow run carries the Airflow task's tags, so a retry reuses a finished try or supersedes
failed ones; the result lands where KubernetesPodOperator reads XComs; and an SdkError (bad
input, flags, data) ends the process with one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from ml_contract import ModelSpec, metrics_for
from trainer.errors import TrainerError
from trainer.golden import log_golden_set
from trainer.prepared import Prepared
from trainer.prepared import load_prepared as _load_prepared
from trainer.profile import PROFILE_ARTIFACT, profile_frame
from trainer.specs import SPEC_ARTIFACT, resolve_spec
from trainer.tracking import MODEL_TAG, MODEL_URI_TAG, TrackedRun
from trainer.tracking import tracked_run as _tracked_run
from trainer.xcom import write_xcom, xcom_path

log = logging.getLogger("trainer.sdk")

SdkError = TrainerError  # raise it for anything the user can fix: one line, exit code 1


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every train step takes: --data-uri, --experiment, --spec, --model-name,
    --xcom-path."""
    parser.add_argument("--data-uri", required=True, help="a preprocess output folder")
    parser.add_argument("--experiment", required=True, help="MLflow experiment")
    add_spec_flags(parser)
    parser.add_argument("--xcom-path", help="where to write the result JSON")


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", help="the model spec (default: $ML_MODEL_SPEC, MLflow, data)")
    parser.add_argument("--model-name", help="registered model whose logged spec to use")


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The spec: --spec, $ML_MODEL_SPEC, --model-name's logged spec, or the prepared data's."""
    return resolve_spec(
        getattr(args, "spec", None),
        getattr(args, "model_name", None),
        getattr(args, "data_uri", None),
    )


def load_prepared(data_uri: str, spec: ModelSpec) -> Prepared:
    """The preprocess output under `spec`: `.split(name)` gives raw `.features` and `.labels`."""
    return _load_prepared(data_uri, spec)


def read_partition(uri: str, spec: ModelSpec) -> pd.DataFrame:
    """A raw partition (folder or file), validated under the contract; SdkError when bad."""
    from trainer.validation import validate_input

    validation = validate_input(uri, spec)
    if not validation.valid:
        raise validation.error()
    assert validation.frame is not None
    return validation.frame


@contextmanager
def tracked_run(
    experiment: str, params: Mapping[str, Any], prepared: Prepared
) -> Iterator[TrackedRun]:
    """The task instance's MLflow run (trainer.tracking.tracked_run), with the spec logged."""
    import mlflow

    with _tracked_run(
        experiment,
        params,
        prepared.data_uri,
        prepared.dataset_version,
        tags={MODEL_TAG: prepared.spec.model},
    ) as run:
        if run.reused is None:
            mlflow.log_params({"task": prepared.spec.task})
            mlflow.log_dict(prepared.spec.to_dict(), SPEC_ARTIFACT)
            # Every candidate carries its reference profile, to validate later days against.
            train = prepared.split("train").frame
            mlflow.log_dict(profile_frame(train, prepared.spec), PROFILE_ARTIFACT)
            # Every team candidate passes here: its test split becomes its golden set.
            log_golden_set(prepared.split("test"), prepared.dataset_version)
        yield run


def score(spec: ModelSpec, labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Every metric of the spec's task (trainer.metrics.score)."""
    from trainer.metrics import score as _score

    return _score(spec, labels, outputs)


def signature(spec: ModelSpec, example: pd.DataFrame, outputs: np.ndarray) -> Any:
    """The signature to log: inputs from the contract, outputs inferred from `outputs`."""
    from trainer.signature import model_signature

    return model_signature(spec, example, outputs)


def check_model(spec: ModelSpec, model_uri: str, rows: pd.DataFrame) -> np.ndarray:
    """Load the logged model as the platform will and check its outputs fit the task.

    Binary: one probability of the second class per row (or both columns, as predict_proba
    gives); multiclass: one probability per class in the contract's order; regression: one
    value per row. SdkError otherwise, before anything is registered.
    """
    from trainer.evaluate import load_model, predict_outputs

    return predict_outputs(load_model(model_uri), model_uri, rows, spec)


def log_scores(prepared: Prepared, model_uri: str) -> dict[str, float]:
    """Score the logged model on the val and test splits; log and return val_*/test_*."""
    import mlflow

    metrics: dict[str, float] = {}
    for name in ("val", "test"):
        split = prepared.split(name)
        outputs = check_model(prepared.spec, model_uri, split.features)
        scores = score(prepared.spec, split.labels, outputs)
        metrics.update({f"{name}_{metric}": value for metric, value in scores.items()})
    mlflow.log_metrics(metrics)
    log.info("metrics: %s", ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics


def train_result(run: TrackedRun, metrics: Mapping[str, float], params: Mapping[str, Any]) -> dict:
    """The train XCom every platform step downstream reads (select_best, evaluate, deploy)."""
    if run.model_uri is None:
        raise SdkError(f"run {run.run_id}: no model logged (call run.model_logged(uri))")
    return {
        "run_id": run.run_id,
        "model_uri": run.model_uri,
        "metrics": dict(metrics),
        "params": dict(params),
        "device": "cpu",
        "reused": run.reused is not None,
    }


def result_of(run: Any, spec: ModelSpec, params: Mapping[str, Any] | None = None) -> dict:
    """The train XCom of a finished earlier try (TrackedRun.reused).

    Pass the params the try was started with to report them with their types: MLflow keeps
    params as text, and a retry's XCom should read like the first try's.
    """
    names = [f"{split}_{m}" for split in ("val", "test") for m in metrics_for(spec.task)]
    return {
        "run_id": run.info.run_id,
        "model_uri": run.data.tags[MODEL_URI_TAG],
        "metrics": {k: run.data.metrics[k] for k in names if k in run.data.metrics},
        "params": dict(params)
        if params is not None
        else {k: v for k, v in run.data.params.items() if k != "task"},
        "device": run.data.params.get("device", "cpu"),
        "reused": True,
    }


def entrypoint(
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], dict],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, run `handler`, write its result as the XCom; one-line errors, exit 1."""
    from ml_dependencies import bounded_dependencies
    from trainer.cli import configure_logging, one_line_error

    args = parser.parse_args(argv)
    configure_logging()
    try:
        with bounded_dependencies():
            path = xcom_path(getattr(args, "xcom_path", None))
            result = handler(args)
            write_xcom(result, path)
    except Exception as exc:
        message = one_line_error(exc)
        if message is None:
            raise
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 1
    log.info("%s: %s", parser.prog, json.dumps(result, sort_keys=True, default=str))
    return 0
