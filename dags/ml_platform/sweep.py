"""Hyperparameter sweeps: validate DAG params and expand them into trainer invocations."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from airflow.sdk import Param

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


def check_grid_size(sizes: Mapping[str, int], limit: int) -> None:
    """The grid's size from its axes' lengths, checked before any combination is built."""
    total = math.prod(sizes.values())
    if total > limit:
        shape = " x ".join(f"{n} {name}" for name, n in sizes.items())
        raise SweepParamError(
            f"sweep: the grid has {total} combinations ({shape}), over the platform's limit "
            f"{limit} (limits.max_sweep_combinations): shorten a list"
        )


def build_combinations(params: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """Every combination of the sweep axes, after checking each param and the grid's size."""
    validated = {name: validate(name, params[name]) for name, (_, validate) in AXES.items()}
    epochs = params["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 1000:
        raise SweepParamError(f"param epochs: {epochs!r} is not an integer in [1, 1000]")
    check_grid_size({name: len(values) for name, values in validated.items()}, limit)
    names = list(validated)
    return [
        {**dict(zip(names, values, strict=True)), "epochs": epochs}
        for values in itertools.product(*validated.values())
    ]


def trainer_arguments(combo: Mapping[str, Any], data_uri: str, experiment: str) -> list[str]:
    """The trainer image's arguments for one combination."""
    args = ["train", "--data-uri", data_uri, "--experiment", experiment]
    for name, (hyperparameter, _) in AXES.items():
        args += [TRAIN_FLAGS[hyperparameter][0], str(combo[name])]
    return args + [TRAIN_FLAGS["epochs"][0], str(combo["epochs"])]


# --- the sweep as DAG params ----------------------------------------------------------------

# The platform trainer's sweep: each list param is one axis of the grid (AXES).
PLATFORM_SWEEP_DEFAULTS: dict[str, Any] = {
    "learning_rates": [0.001, 0.003],
    "batch_sizes": [128],
    "hidden_sizes": ["64,32"],
    "optimizers": ["adam"],
    "dropouts": [0.1],
    "epochs": 15,
}
_ITEM_TYPES = {
    "learning_rates": "number",
    "batch_sizes": "integer",
    "hidden_sizes": "string",
    "optimizers": "string",
    "dropouts": "number",
}
# Flags every `train` call already gets, and the pipeline's other params: not sweepable.
RESERVED = frozenset(
    {"data_uri", "experiment", "spec", "model_name", "xcom_path", "metric", "max_combinations"}
    | {"threshold", "min_metric", "min_improvement"}
)
_HYPERPARAMETER = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def platform_sweep_params(overrides: Mapping[str, Any] | None, limit: int) -> dict[str, Param]:
    """The platform trainer's sweep params, defaults changed by `overrides`, checked now.

    A bad default fails the parse with the param's name, as a bad run param fails the run.
    """
    unknown = sorted(set(overrides or {}) - set(PLATFORM_SWEEP_DEFAULTS))
    if unknown:
        raise SweepParamError(
            f"param {unknown[0]}: not a sweep param of the platform trainer "
            f"(known: {', '.join(PLATFORM_SWEEP_DEFAULTS)})"
        )
    defaults = {**PLATFORM_SWEEP_DEFAULTS, **(overrides or {})}
    build_combinations(defaults, limit)
    params = {
        name: Param(defaults[name], type="array", items={"type": item})
        for name, item in _ITEM_TYPES.items()
    }
    params["epochs"] = Param(defaults["epochs"], type="integer", minimum=1)
    return params


def _item_type(name: str, values: Any) -> str:
    if not isinstance(values, list) or not values:
        raise SweepParamError(f"param {name}: expected a non-empty list of values, got {values!r}")
    kinds = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise SweepParamError(
                f"param {name}: {value!r} is not a number or a string (a flag's value)"
            )
        kinds.add("string" if isinstance(value, str) else "number")
    if len(kinds) > 1:
        raise SweepParamError(f"param {name}: mixes numbers and strings: {values!r}")
    if kinds == {"number"} and all(isinstance(v, int) for v in values):
        return "integer"
    return kinds.pop()


def team_sweep_params(sweep: Mapping[str, Any] | None, limit: int) -> dict[str, Param]:
    """A team image's sweep: one list param per hyperparameter (`max_depth` -> --max-depth)."""
    params: dict[str, Param] = {}
    for name, values in (sweep or {}).items():
        if not isinstance(name, str) or not _HYPERPARAMETER.match(name) or name in RESERVED:
            raise SweepParamError(
                f"param {name}: a hyperparameter is lowercase letters, digits and underscores "
                f"(it becomes a --flag), and none of {', '.join(sorted(RESERVED))}"
            )
        params[name] = Param(
            list(values), type="array", minItems=1, items={"type": _item_type(name, values)}
        )
    build_team_combinations({k: p.value for k, p in params.items()}, list(sweep or {}), limit)
    return params


def build_team_combinations(
    params: Mapping[str, Any], names: list[str], limit: int
) -> list[dict[str, Any]]:
    """Every combination of a team image's hyperparameter lists, after checking the grid's size."""
    for name in names:
        _item_type(name, params[name])
    check_grid_size({name: len(params[name]) for name in names}, limit)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(params[name] for name in names))
    ]


def team_trainer_arguments(combo: Mapping[str, Any], data_uri: str, experiment: str) -> list[str]:
    """A team image's `train` arguments for one combination: --<name> <value> per key."""
    args = ["train", "--data-uri", data_uri, "--experiment", experiment]
    for name, value in combo.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return args
