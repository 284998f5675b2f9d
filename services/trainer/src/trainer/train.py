"""The train subcommand: fit the MLP, track everything in MLflow, log a raw-feature model."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import cloudpickle
import mlflow
import mlflow.data
import mlflow.pytorch
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.models import infer_signature
from mlflow.utils.async_logging.run_operations import RunOperations

from trainer import model as model_module
from trainer import schema
from trainer.device import seed_everything, select_device
from trainer.fit import EpochMetrics, TensorData, fit, predict_logits
from trainer.hyperparams import Hyperparams
from trainer.metrics import binary_metrics
from trainer.model import build_mlp, raw_feature_model
from trainer.prepared import Prepared, Split, load_prepared
from trainer.tracking import (
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    MODEL_URI_TAG,
    AirflowContext,
    earlier_tries,
    experiment_id_for,
    reusable_run,
    supersede,
)

log = logging.getLogger(__name__)

FINAL_METRICS = tuple(
    f"{split}_{name}"
    for split in ("val", "test")
    for name in ("roc_auc", "accuracy", "f1", "log_loss")
)
_INPUT_EXAMPLE_ROWS = 5


def pip_requirements() -> list[str]:
    """Exact pins for the model's environment: what it was trained and tested with."""
    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow-skinny=={mlflow.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def run_train(data_uri: str, experiment: str, hp: Hyperparams) -> dict:
    """Trains unless an earlier try of this Airflow task already did; returns the XCom."""
    prepared = load_prepared(data_uri)
    splits = {name: prepared.split(name) for name in ("train", "val", "test")}
    client = MlflowClient()
    experiment_id = experiment_id_for(client, experiment)
    ctx = AirflowContext.from_env()
    dataset_tags = {
        DATASET_URI_TAG: prepared.data_uri,
        DATASET_VERSION_TAG: prepared.dataset_version,
    }

    previous = earlier_tries(client, experiment_id, ctx)
    reused = reusable_run(previous, hp.as_params(), {DATASET_VERSION_TAG: prepared.dataset_version})
    if reused is not None:
        log.info("reusing finished run %s of this task instance", reused.info.run_id)
        return _result(reused, hp, reused=True)

    device = select_device()
    log.info("training on %s (%d train rows)", device, len(splits["train"].frame))
    with mlflow.start_run(experiment_id=experiment_id, tags={**ctx.tags(), **dataset_tags}) as run:
        supersede(client, previous, run.info.run_id)
        mlflow.log_params({**hp.as_params(), "device": device.type})
        _log_dataset(prepared, splits["train"])
        model_uri = _train_and_log(prepared, splits, hp, device)
        mlflow.set_tag(MODEL_URI_TAG, model_uri)
        run_id = run.info.run_id
    return _result(client.get_run(run_id), hp, reused=False)


def _log_dataset(prepared: Prepared, train: Split) -> None:
    with warnings.catch_warnings():
        # file:// sources match two equivalent source types, and the frame's int columns
        # (id, label) trigger a hint about missing values; both are noise here.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            train.frame, source=prepared.data_uri, targets=schema.LABEL.name, name="churn-train"
        )
        mlflow.log_input(
            dataset, context="training", tags={DATASET_VERSION_TAG: prepared.dataset_version}
        )


def _train_and_log(
    prepared: Prepared, splits: dict[str, Split], hp: Hyperparams, device: torch.device
) -> str:
    seed_everything(hp.seed)
    network = build_mlp(len(schema.FEATURE_NAMES), hp.hidden_sizes, hp.dropout).to(device)
    train, val, test = splits["train"], splits["val"], splits["test"]
    data = TensorData.from_numpy(train.features, train.labels, val.features, val.labels, device)

    pending: list[RunOperations] = []

    def log_epoch(metrics: EpochMetrics) -> None:
        # One MLflow call per epoch, nothing per batch, and off the training thread: a
        # synchronous request costs a server round trip per epoch (tests/benchmarks/
        # bench_trainer.py: ~20-60 ms against a local server, 2x the epoch at 4000 rows).
        pending.append(
            mlflow.log_metrics(metrics.as_mlflow(), step=metrics.epoch, synchronous=False)
        )
        log.info(
            "epoch %d/%d: train_loss %.4f val_loss %.4f val_roc_auc %.4f (%.2fs)",
            metrics.epoch,
            hp.epochs,
            metrics.train_loss,
            metrics.val_loss,
            metrics.val_roc_auc,
            metrics.seconds,
        )

    history = fit(network, data, hp, on_epoch=log_epoch)
    for operation in pending:
        operation.wait()  # a failed request raises here, as the synchronous call would

    final: dict[str, float] = {}
    for name, split in (("val", val), ("test", test)):
        features = torch.as_tensor(split.features, device=device)
        probabilities = torch.sigmoid(predict_logits(network, features)).cpu().numpy()
        scores = binary_metrics(split.labels, probabilities)
        final.update({f"{name}_{metric}": value for metric, value in scores.items()})
    # The last epoch already logged val_roc_auc/val_accuracy of this very model at this step.
    already_logged = history[-1].as_mlflow()
    mlflow.log_metrics({k: v for k, v in final.items() if k not in already_logged}, step=hp.epochs)
    log.info("final metrics: %s", ", ".join(f"{k} {v:.4f}" for k, v in final.items()))

    return _log_model(network, prepared, train)


def _log_model(network: torch.nn.Module, prepared: Prepared, train: Split) -> str:
    """Logs Standardize -> MLP -> Sigmoid, which takes raw feature columns by name."""
    scaler = prepared.scaler
    deployable = raw_feature_model(network, scaler.mean, scaler.scale)
    example = scaler.inverse(train.frame.head(_INPUT_EXAMPLE_ROWS))
    with torch.no_grad():
        scaled = torch.as_tensor(train.features[:_INPUT_EXAMPLE_ROWS])
        expected = torch.sigmoid(deployable[1](scaled))  # the trained MLP's CPU copy
        probabilities = deployable(torch.as_tensor(example.to_numpy(np.float32)))
    # The example went scaled -> raw -> scaled again: only float32 rounding may differ.
    if not torch.allclose(probabilities, expected, atol=1e-4):
        raise RuntimeError("the raw-feature model disagrees with the trained network")
    # The signature is the raw schema (int64 -> long, float64 -> double), so frames read
    # from a partition predict as they are; MLflow refuses int64 -> double as lossy.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, probabilities.numpy())
    log.info("logging the model to MLflow")
    with _pickled_by_value(model_module):
        info = mlflow.pytorch.log_model(
            deployable,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            # pt2 would need a tensor signature, which ignores column names; pickle keeps
            # the named-column signature the model server relies on.
            serialization_format="pickle",
        )
    return info.model_uri


@contextmanager
def _pickled_by_value(module: ModuleType) -> Iterator[None]:
    """Embed `module`'s classes in the pickle, so loading does not need this package."""
    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _result(run: Run, hp: Hyperparams, reused: bool) -> dict:
    metrics = {k: run.data.metrics[k] for k in FINAL_METRICS if k in run.data.metrics}
    device = run.data.params.get("device", "")
    return {
        "run_id": run.info.run_id,
        "model_uri": run.data.tags[MODEL_URI_TAG],
        "metrics": metrics,
        "params": {**hp.as_params(), "device": device},
        "device": device,
        "reused": reused,
    }
