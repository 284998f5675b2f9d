"""The train subcommand: fit an MLP for the task, track it in MLflow, log a raw-row model."""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import cloudpickle
import mlflow
import mlflow.data
import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.utils.async_logging.run_operations import RunOperations

from ml_contract import ModelSpec, metrics_for
from trainer import encoding, served
from trainer import model as model_module
from trainer.device import seed_everything, select_device
from trainer.fit import EpochMetrics, TensorData, ValScorer, binary_val_scores, fit
from trainer.golden import log_golden_set
from trainer.hyperparams import Hyperparams
from trainer.metrics import score
from trainer.model import build_mlp
from trainer.prepared import Prepared, Split, load_prepared
from trainer.profile import PROFILE_ARTIFACT, profile_frame
from trainer.served import TabularModel
from trainer.signature import model_signature
from trainer.specs import SPEC_ARTIFACT
from trainer.tracking import DATASET_VERSION_TAG, MODEL_TAG, MODEL_URI_TAG, tracked_run

log = logging.getLogger(__name__)

_INPUT_EXAMPLE_ROWS = 5
DATASET_LOG_ATTEMPTS = 4


def final_metric_names(task: str) -> tuple[str, ...]:
    return tuple(f"{split}_{name}" for split in ("val", "test") for name in metrics_for(task))


def pip_requirements() -> list[str]:
    """Exact pins for the model's environment: what it was trained and tested with."""
    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow-skinny=={mlflow.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def run_train(data_uri: str, experiment: str, hp: Hyperparams, spec: ModelSpec) -> dict:
    """Trains unless an earlier try of this Airflow task already did; returns the XCom."""
    prepared = load_prepared(data_uri, spec)
    splits = {name: prepared.split(name) for name in ("train", "val", "test")}
    with tracked_run(
        experiment,
        hp.as_params(),
        prepared.data_uri,
        prepared.dataset_version,
        tags={MODEL_TAG: spec.model},
    ) as run:
        if run.reused is not None:
            return _result(run.reused, hp, spec, reused=True)
        device = select_device()
        log.info("training on %s (%d train rows)", device, len(splits["train"].frame))
        mlflow.log_params({"device": device.type, "task": spec.task})
        mlflow.log_dict(spec.to_dict(), SPEC_ARTIFACT)
        mlflow.log_dict(profile_frame(splits["train"].frame, spec), PROFILE_ARTIFACT)
        _log_dataset(prepared, splits["train"])
        log_golden_set(splits["test"], prepared.dataset_version)
        run.model_logged(_train_and_log(prepared, splits, hp, device))
    return _result(MlflowClient().get_run(run.run_id), hp, spec, reused=False)


def _log_dataset(prepared: Prepared, train: Split) -> None:
    with warnings.catch_warnings():
        # file:// sources match two equivalent source types, and the frame's int columns
        # (id, label) trigger a hint about missing values; both are noise here.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            train.frame,
            source=prepared.data_uri,
            targets=prepared.spec.label,
            name=f"{prepared.spec.model}-train",
        )
        tags = {DATASET_VERSION_TAG: prepared.dataset_version}
        for attempt in range(1, DATASET_LOG_ATTEMPTS + 1):
            try:
                mlflow.log_input(dataset, context="training", tags=tags)
                return
            except MlflowException as exc:
                # Trials of one sweep start together and log the same dataset: the tracking
                # store looks it up, finds none, and both insert it; the later insert breaks
                # the unique (experiment, name, digest) key and rolls back. Once the other
                # trial's insert is in, the same call finds the dataset and links it.
                if attempt == DATASET_LOG_ATTEMPTS or not _duplicate_dataset(exc):
                    raise
                log.info("the dataset was being logged by another trial; logging it again")
                time.sleep(random.uniform(0.1, 0.5) * attempt)


def _duplicate_dataset(exc: MlflowException) -> bool:
    """A unique-key violation of the tracking store (SQLite, PostgreSQL, MySQL wording)."""
    text = str(exc).lower()
    return "unique constraint" in text or "duplicate key" in text or "duplicate entry" in text


def val_scorer(prepared: Prepared) -> ValScorer:
    """The per-epoch validation scores of the task (cheap: one forward pass is already done)."""
    task, codec = prepared.spec.task, prepared.label_codec
    if task == "binary":
        return binary_val_scores
    if task == "multiclass":

        def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
            return {"val_accuracy": float((logits.argmax(dim=1) == targets).float().mean())}

        return accuracy

    def rmse(predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"val_rmse": float(torch.sqrt(((predictions - targets) ** 2).mean())) * codec.scale}

    return rmse


def _train_and_log(
    prepared: Prepared, splits: dict[str, Split], hp: Hyperparams, device: torch.device
) -> str:
    seed_everything(hp.seed)
    spec, codec = prepared.spec, prepared.label_codec
    network = build_mlp(prepared.encoder.width, hp.hidden_sizes, hp.dropout, codec.outputs)
    network = network.to(device)
    train, val, test = splits["train"], splits["val"], splits["test"]
    x_train, y_train = prepared.encoded(train)
    x_val, y_val = prepared.encoded(val)
    data = TensorData.from_numpy(x_train, y_train, x_val, y_val, device)

    pending: list[RunOperations] = []

    def log_epoch(metrics: EpochMetrics) -> None:
        # One MLflow call per epoch, nothing per batch, and off the training thread: a
        # synchronous request costs a server round trip per epoch (tests/benchmarks/
        # bench_trainer.py: ~20-60 ms against a local server, 2x the epoch at 4000 rows).
        pending.append(
            mlflow.log_metrics(metrics.as_mlflow(), step=metrics.epoch, synchronous=False)
        )
        scores = " ".join(f"{k} {v:.4f}" for k, v in metrics.val_scores.items())
        log.info(
            "epoch %d/%d: train_loss %.4f val_loss %.4f %s (%.2fs)",
            metrics.epoch,
            hp.epochs,
            metrics.train_loss,
            metrics.val_loss,
            scores,
            metrics.seconds,
        )

    history = fit(
        network, data, hp, on_epoch=log_epoch, task=spec.task, val_scores=val_scorer(prepared)
    )
    for operation in pending:
        operation.wait()  # a failed request raises here, as the synchronous call would

    # Final scores come from the model that gets logged, on raw rows: what serving will see.
    deployable = TabularModel(network, prepared.encoder, codec)
    final: dict[str, float] = {}
    for name, split in (("val", val), ("test", test)):
        scores = score(spec, split.labels, deployable.forward(split.features))
        final.update({f"{name}_{metric}": value for metric, value in scores.items()})
    # The last epoch already logged some val_* scores of this very model at this step.
    already_logged = history[-1].as_mlflow()
    mlflow.log_metrics({k: v for k, v in final.items() if k not in already_logged}, step=hp.epochs)
    log.info("final metrics: %s", ", ".join(f"{k} {v:.4f}" for k, v in final.items()))

    return _log_model(deployable, spec, train)


def _log_model(deployable: TabularModel, spec: ModelSpec, train: Split) -> str:
    """Logs the raw-row model: encoding, network and output head in one pyfunc."""
    example = train.features.head(_INPUT_EXAMPLE_ROWS).reset_index(drop=True)
    outputs = deployable.forward(example)
    signature = model_signature(spec, example, outputs)
    log.info("logging the model to MLflow")
    with _pickled_by_value(served, encoding, model_module):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=deployable,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
        )
    return info.model_uri


@contextmanager
def _pickled_by_value(*modules: ModuleType) -> Iterator[None]:
    """Embed the modules' classes in the pickle, so loading does not need this package."""
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


def _result(run: Run, hp: Hyperparams, spec: ModelSpec, reused: bool) -> dict:
    names = final_metric_names(spec.task)
    metrics = {k: run.data.metrics[k] for k in names if k in run.data.metrics}
    device = run.data.params.get("device", "")
    return {
        "run_id": run.info.run_id,
        "model_uri": run.data.tags[MODEL_URI_TAG],
        "metrics": metrics,
        "params": {**hp.as_params(), "device": device},
        "device": device,
        "reused": reused,
    }
