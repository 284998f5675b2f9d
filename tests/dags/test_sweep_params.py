"""The sweep params expand into trainer invocations; a bad param fails with its name first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import DAG

from ml_platform.settings import (
    DEFAULT_CONFIG_FILE,
    PlatformConfigError,
    parse_config,
    platform_config,
)
from ml_platform.sweep import SweepParamError, build_combinations, trainer_arguments

LIMIT = platform_config().max_sweep_combinations  # the platform document's limits


@pytest.fixture
def defaults(pipeline_dag: DAG) -> dict[str, Any]:
    """The pipeline's params as a manual trigger without changes would pass them."""
    return pipeline_dag.params.validate()


def test_defaults_give_one_training_per_learning_rate(defaults: dict[str, Any]):
    combos = build_combinations(defaults, LIMIT)
    assert len(combos) == len(defaults["learning_rates"]) == 2
    assert [combo["learning_rates"] for combo in combos] == [0.001, 0.003]
    assert all(combo["epochs"] == defaults["epochs"] for combo in combos)


def test_trainer_arguments_of_the_first_default_combination(defaults: dict[str, Any]):
    combo = build_combinations(defaults, LIMIT)[0]
    args = trainer_arguments(combo, "s3://ml-datasets/prepared/2026-01-01", "churn-classifier")
    assert args == [
        "train",
        "--data-uri",
        "s3://ml-datasets/prepared/2026-01-01",
        "--experiment",
        "churn-classifier",
        "--learning-rate",
        "0.001",
        "--batch-size",
        "128",
        "--hidden-sizes",
        "64,32",
        "--optimizer",
        "adam",
        "--dropout",
        "0.1",
        "--epochs",
        "15",
    ]


def test_grid_is_the_cartesian_product(defaults: dict[str, Any]):
    params = {
        **defaults,
        "learning_rates": [0.001, 0.01, 0.1],
        "batch_sizes": [64, 256],
        "optimizers": ["adam", "sgd"],
    }
    combos = build_combinations(params, LIMIT)
    assert len(combos) == 12
    assert len({tuple(sorted(c.items())) for c in combos}) == 12


def test_boundaries_are_accepted(defaults: dict[str, Any]):
    params = {**defaults, "learning_rates": [1], "dropouts": [0.0], "hidden_sizes": [" 64, 32 "]}
    (combo,) = build_combinations(params, LIMIT)
    assert combo["dropouts"] == 0.0
    assert combo["hidden_sizes"] == "64,32"


BAD = {
    "negative learning rate": ("learning_rates", [-0.001]),
    "zero learning rate": ("learning_rates", [0]),
    "learning rate not a list": ("learning_rates", 0.001),
    "empty learning rates": ("learning_rates", []),
    "learning rate as text": ("learning_rates", ["0.001"]),
    "boolean batch size": ("batch_sizes", [True]),
    "fractional batch size": ("batch_sizes", [12.5]),
    "unknown optimizer": ("optimizers", ["rmsprop"]),
    "optimizer not a list": ("optimizers", "adam"),
    "hidden sizes not numbers": ("hidden_sizes", ["64,wide"]),
    "hidden size zero": ("hidden_sizes", ["64,0"]),
    "hidden size too wide": ("hidden_sizes", ["8192"]),
    "dropout too high": ("dropouts", [0.95]),
    "epochs 0": ("epochs", 0),
    "epochs as text": ("epochs", "15"),
}


@pytest.mark.parametrize(("name", "value"), BAD.values(), ids=BAD.keys())
def test_bad_param_is_named_first(name: str, value: Any, defaults: dict[str, Any]):
    with pytest.raises(SweepParamError) as raised:
        build_combinations({**defaults, name: value}, LIMIT)
    assert str(raised.value).startswith(f"param {name}: ")


def test_grid_over_the_platform_limit_fails_before_building_it(defaults: dict[str, Any]):
    params = {
        **defaults,
        "learning_rates": [0.001, 0.003, 0.01, 0.03, 0.1],
        "batch_sizes": [32, 64, 128, 256],
    }
    assert "max_combinations" not in defaults  # no run param can raise the limit
    assert LIMIT == 16 < 5 * 4
    with pytest.raises(SweepParamError) as raised:
        build_combinations(params, LIMIT)
    assert str(raised.value).startswith("sweep: the grid has 20 combinations (5 learning_rates")
    assert "limit 16 (limits.max_sweep_combinations)" in str(raised.value)
    # Sized from the lists' lengths: a grid of 10^12 fails at once, not after building it.
    huge = {**defaults, "batch_sizes": list(range(1, 1001))}
    huge["learning_rates"] = [i / 2000 for i in range(1, 1001)]
    huge["dropouts"] = [i / 2000 for i in range(1, 1001)]
    huge["hidden_sizes"] = [str(i) for i in range(1, 1001)]
    with pytest.raises(SweepParamError, match="the grid has 1000000000000 combinations"):
        build_combinations(huge, LIMIT)


def test_the_limit_is_read_from_the_platform_document():
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    config = parse_config({**doc, "limits": {"max_sweep_combinations": 4}})
    assert config.max_sweep_combinations == 4
    with pytest.raises(PlatformConfigError, match="limits.max_sweep_combinations must be"):
        parse_config({**doc, "limits": {"max_sweep_combinations": 0}})
