"""Hyperparameter sweeps: validate DAG params and expand them into trainer invocations."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from ml_platform.trainer_params import TRAIN_FLAGS

OPTIMIZERS = tuple(TRAIN_FLAGS["optimizer"][1]["enum"])


class SweepParamError(ValueError):
    """A sweep param is invalid; the message starts with the param's name."""


def _numbers(name: str, values: Any, low: float, high: float, integer: bool = False) -> list:
    if not isinstance(values, list) or not values:
        raise SweepParamError(f"param {name}: expected a non-empty list, got {values!r}")
    for value in values:
        kind_ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not kind_ok or not low < value <= high:
            kind = "integers" if integer else "numbers"
            raise SweepParamError(f"param {name}: {value!r} is not in ({low}, {high}] ({kind})")
    return values


def _hidden_sizes(name: str, values: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        raise SweepParamError(f"param {name}: expected a non-empty list, got {values!r}")
    for value in values:
        parts = str(value).split(",")
        if not all(p.strip().isdigit() and 0 < int(p) <= 4096 for p in parts):
            raise SweepParamError(
                f"param {name}: {value!r} is not a comma-separated list of layer widths (1..4096)"
            )
    return [str(v).replace(" ", "") for v in values]


def _optimizers(name: str, values: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        raise SweepParamError(f"param {name}: expected a non-empty list, got {values!r}")
    for value in values:
        if value not in OPTIMIZERS:
            raise SweepParamError(f"param {name}: {value!r} is not one of {', '.join(OPTIMIZERS)}")
    return values


# Sweep param (a list) -> (the trainer hyperparameter it varies, validator of the list).
AXES: dict[str, tuple[str, Callable[[str, Any], list]]] = {
    "learning_rates": ("learning_rate", lambda n, v: _numbers(n, v, 0, 1)),
    "batch_sizes": ("batch_size", lambda n, v: _numbers(n, v, 0, 65536, integer=True)),
    "hidden_sizes": ("hidden_sizes", _hidden_sizes),
    "optimizers": ("optimizer", _optimizers),
    "dropouts": ("dropout", lambda n, v: _numbers(n, v, -1e-12, 0.9)),
}


def build_combinations(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the sweep axes, after checking each param and the grid's size."""
    validated = {name: validate(name, params[name]) for name, (_, validate) in AXES.items()}
    epochs = params["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 1000:
        raise SweepParamError(f"param epochs: {epochs!r} is not an integer in [1, 1000]")
    limit = params["max_combinations"]
    names = list(validated)
    combos = [
        {**dict(zip(names, values, strict=True)), "epochs": epochs}
        for values in itertools.product(*validated.values())
    ]
    if len(combos) > limit:
        raise SweepParamError(
            f"param max_combinations: the grid has {len(combos)} combinations, over the cap {limit}"
        )
    return combos


def trainer_arguments(combo: Mapping[str, Any], data_uri: str, experiment: str) -> list[str]:
    """The trainer image's arguments for one combination."""
    args = ["train", "--data-uri", data_uri, "--experiment", experiment]
    for name, (hyperparameter, _) in AXES.items():
        args += [TRAIN_FLAGS[hyperparameter][0], str(combo[name])]
    return args + [TRAIN_FLAGS["epochs"][0], str(combo["epochs"])]
