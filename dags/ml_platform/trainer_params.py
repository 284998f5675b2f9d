"""The trainer's hyperparameters as DAG params, with defaults from the DAG or a preset file.

A team's DAG passes its defaults (a dict in the DAG file, or `<dag>.trainer.json` beside it
from `make new-dag TRAINER=1`); each becomes a Param a run can override, and the `train`
step's arguments read them from the run's params. A bad default fails the parse, naming the
key (and the preset file's line).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
from airflow.sdk import Param

# `trainer train` flag and JSON schema per hyperparameter (services/trainer/README.md).
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


class TrainerParamsError(ValueError):
    """A hyperparameter default is unknown or out of range; the message names where."""


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if f'"{key}"' in line:
            return number
    return 1


def check_hyperparameters(values: Mapping[str, Any], where: str = "trainer defaults") -> None:
    """Raise TrainerParamsError naming the first unknown key or bad value."""
    for key, value in values.items():
        if key not in TRAIN_FLAGS:
            raise TrainerParamsError(
                f"{where}: {key!r} is not a trainer hyperparameter "
                f"(known: {', '.join(TRAIN_FLAGS)})"
            )
        try:
            jsonschema.validate(value, TRAIN_FLAGS[key][1])
        except jsonschema.ValidationError as exc:
            raise TrainerParamsError(f"{where}: {key}: {exc.message}") from None


def load_trainer_preset(path: Path) -> dict[str, Any]:
    """The hyperparameter defaults of a `<dag>.trainer.json` preset, checked."""
    text = Path(path).read_text()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainerParamsError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(values, dict):
        raise TrainerParamsError(f"{path}:1: expected a JSON object of hyperparameters")
    for key, value in values.items():
        check_hyperparameters({key: value}, f"{path}:{_line_of(text, key)}")
    return values


def train_params(defaults: Mapping[str, Any]) -> dict[str, Param]:
    """One Param per hyperparameter, defaulting to `defaults`, validated like the trainer does."""
    check_hyperparameters(defaults)
    return {key: Param(value, **TRAIN_FLAGS[key][1]) for key, value in defaults.items()}


def train_arguments(data_uri: str, experiment: str, names: Iterable[str]) -> list[str]:
    """`trainer train` arguments reading each hyperparameter from the run's params."""
    arguments = ["train", "--data-uri", data_uri, "--experiment", experiment]
    for name in names:
        arguments += [TRAIN_FLAGS[name][0], "{{ params." + name + " }}"]
    return arguments
