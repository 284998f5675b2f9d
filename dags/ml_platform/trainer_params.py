"""The platform trainer's hyperparameters: its `train` flag and JSON schema per name.

ml_platform.sweep turns DAG params into these flags (services/trainer/README.md has them).
"""

from __future__ import annotations

from typing import Any

TRAIN_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "learning_rate": ("--learning-rate", {"type": "number", "exclusiveMinimum": 0}),
    "batch_size": ("--batch-size", {"type": "integer", "minimum": 1}),
    "optimizer": ("--optimizer", {"type": "string", "enum": ["adam", "adamw", "sgd"]}),
    "epochs": ("--epochs", {"type": "integer", "minimum": 1}),
    "hidden_sizes": ("--hidden-sizes", {"type": "string", "pattern": r"^[1-9]\d*(,[1-9]\d*)*$"}),
    "dropout": ("--dropout", {"type": "number", "minimum": 0, "exclusiveMaximum": 1}),
    "weight_decay": ("--weight-decay", {"type": "number", "minimum": 0}),
    "seed": ("--seed", {"type": "integer", "minimum": 0}),
}
