"""Binary-classification metrics from churn probabilities, shared by train and evaluate."""

from __future__ import annotations

import numpy as np

# Metrics an evaluation may gate on; all are "higher is better".
GATING_METRICS = ("roc_auc", "accuracy", "f1")
_THRESHOLD = 0.5


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """roc_auc, accuracy, f1 (at 0.5) and log_loss."""
    # Imported here so the CLI can list GATING_METRICS without loading scikit-learn.
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = np.asarray(labels).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = (probabilities >= _THRESHOLD).astype(np.int64)
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "log_loss": float(log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }
