"""The metrics of each task, from a model's outputs on raw labels; train and evaluate share them.

Outputs are what the platform's logged models return: binary, the probability of the second
class of the contract; multiclass, one probability per class in the contract's order;
regression, the prediction. ml_contract.metrics says which way each metric is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml_contract import ModelSpec

_THRESHOLD = 0.5
_EPS = 1e-7


def class_indexes(labels: np.ndarray, classes: tuple[Any, ...]) -> np.ndarray:
    index = {value: i for i, value in enumerate(classes)}
    return np.array([index[v] for v in np.asarray(labels).tolist()], dtype=np.int64)


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """roc_auc, accuracy, f1 (at 0.5) and log_loss for 0/1 labels."""
    # Imported here so the CLI can start without loading scikit-learn.
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = np.asarray(labels).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = (probabilities >= _THRESHOLD).astype(np.int64)
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "log_loss": float(log_loss(labels, np.clip(probabilities, _EPS, 1 - _EPS), labels=[0, 1])),
    }


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """accuracy, macro f1, macro one-vs-rest roc_auc (over the classes present) and log_loss."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = np.asarray(labels).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    aucs = [
        roc_auc_score(labels == k, probabilities[:, k])
        for k in range(classes)
        if 0 < int((labels == k).sum()) < len(labels)
    ]
    clipped = np.clip(probabilities, _EPS, 1.0)
    return {
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "log_loss": float(
            log_loss(
                labels, clipped / clipped.sum(axis=1, keepdims=True), labels=list(range(classes))
            )
        ),
    }


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    targets = np.asarray(targets, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    return {
        "rmse": float(np.sqrt(mean_squared_error(targets, predictions))),
        "mae": float(mean_absolute_error(targets, predictions)),
        "r2": float(r2_score(targets, predictions)),
    }


def score(spec: ModelSpec, labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Every metric of the spec's task for outputs (see the module doc) against raw labels."""
    if spec.task == "regression":
        return regression_metrics(labels, outputs)
    indexes = class_indexes(labels, spec.classes)
    if spec.task == "binary":
        return binary_metrics(indexes, outputs)
    return multiclass_metrics(indexes, outputs)
