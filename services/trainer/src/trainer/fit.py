"""The training loop, as a function a benchmark can time against a bare PyTorch loop.

Lean on purpose: the data sits on the device as two tensors, each epoch draws one seeded
permutation and slices it into batches (no DataLoader), the epoch loss stays on the device
until the epoch ends, and validation is a single forward pass under no_grad.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from trainer.hyperparams import OPTIMIZERS, Hyperparams

_SGD_MOMENTUM = 0.9  # plain SGD crawls on this problem at the learning rates people try


@dataclass(frozen=True)
class TensorData:
    """Features (float32) and targets already on the training device: float32 0/1 labels
    (binary), int64 class indexes (multiclass) or float32 standardised values (regression)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @classmethod
    def from_numpy(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
        device: torch.device,
    ) -> TensorData:
        def put(array: np.ndarray | None) -> torch.Tensor | None:
            if array is None:
                return None
            dtype = np.int64 if np.issubdtype(np.asarray(array).dtype, np.integer) else np.float32
            return torch.as_tensor(np.ascontiguousarray(array, dtype=dtype), device=device)

        return cls(put(x_train), put(y_train), put(x_val), put(y_val))


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    seconds: float
    val_loss: float | None = None
    val_scores: dict[str, float] = field(default_factory=dict)  # e.g. val_roc_auc

    def as_mlflow(self) -> dict[str, float]:
        values = {"train_loss": self.train_loss, "val_loss": self.val_loss, **self.val_scores}
        return {name: value for name, value in values.items() if value is not None}


# Scores of the validation outputs (logits, targets on the device) for the epoch's log line.
ValScorer = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "binary": nn.BCEWithLogitsLoss,
    "multiclass": nn.CrossEntropyLoss,
    "regression": nn.MSELoss,
}


def binary_val_scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    probabilities = torch.sigmoid(logits).cpu().numpy()
    targets = labels.cpu().numpy()
    return {
        "val_roc_auc": float(roc_auc_score(targets, probabilities)),
        "val_accuracy": float(((probabilities >= 0.5) == (targets >= 0.5)).mean()),
    }


def make_optimizer(model: nn.Module, hp: Hyperparams) -> torch.optim.Optimizer:
    params = model.parameters()
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    if hp.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=hp.learning_rate, momentum=_SGD_MOMENTUM, weight_decay=hp.weight_decay
        )
    raise ValueError(f"unknown optimizer {hp.optimizer!r}, expected one of {OPTIMIZERS}")


def predict_logits(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """One forward pass in eval mode, without autograd."""
    model.eval()
    with torch.no_grad():
        return model(features)


def fit(
    model: nn.Module,
    data: TensorData,
    hp: Hyperparams,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    task: str = "binary",
    val_scores: ValScorer | None = binary_val_scores,
) -> list[EpochMetrics]:
    """Trains `model` (already on the data's device) for hp.epochs; returns per-epoch metrics.

    `on_epoch` runs after each epoch (the trainer logs to MLflow there); validation runs only
    when data has x_val/y_val, scored by `val_scores` (binary by default).
    """
    optimizer = optimizer or make_optimizer(model, hp)
    loss_fn = LOSSES[task]()
    x, y = data.x_train, data.y_train
    rows = x.shape[0]
    generator = torch.Generator(device=x.device).manual_seed(hp.seed)
    history: list[EpochMetrics] = []
    for epoch in range(1, hp.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(rows, generator=generator, device=x.device)
        loss_sum = torch.zeros((), device=x.device)
        for start in range(0, rows, hp.batch_size):
            index = order[start : start + hp.batch_size]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * index.numel()
        train_loss = float(loss_sum) / rows  # the epoch's only host sync
        metrics = EpochMetrics(epoch, train_loss, 0.0)
        if data.x_val is not None and data.y_val is not None:
            metrics = _with_validation(metrics, model, data.x_val, data.y_val, loss_fn, val_scores)
        metrics = replace(metrics, seconds=time.perf_counter() - started)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history


def _with_validation(
    metrics: EpochMetrics,
    model: nn.Module,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    loss_fn: nn.Module,
    val_scores: ValScorer | None,
) -> EpochMetrics:
    logits = predict_logits(model, x_val)
    val_loss = float(loss_fn(logits, y_val))
    scores = val_scores(logits, y_val) if val_scores is not None else {}
    return replace(metrics, val_loss=val_loss, val_scores=scores)
