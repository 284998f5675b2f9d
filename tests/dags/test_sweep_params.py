"""The sweep params expand into trainer invocations; a bad param fails with its name first."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import DAG

from ml_platform.sweep import SweepParamError, build_combinations, trainer_arguments


@pytest.fixture
def defaults(pipeline_dag: DAG) -> dict[str, Any]:
    """The pipeline's params as a manual trigger without changes would pass them."""
    return pipeline_dag.params.validate()


def test_defaults_give_one_training_per_learning_rate(defaults: dict[str, Any]):
    combos = build_combinations(defaults)
    assert len(combos) == len(defaults["learning_rates"]) == 2
    assert [combo["learning_rates"] for combo in combos] == [0.001, 0.003]
    assert all(combo["epochs"] == defaults["epochs"] for combo in combos)


def test_trainer_arguments_of_the_first_default_combination(defaults: dict[str, Any]):
    combo = build_combinations(defaults)[0]
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
    combos = build_combinations(params)
    assert len(combos) == 12
    assert len({tuple(sorted(c.items())) for c in combos}) == 12


def test_boundaries_are_accepted(defaults: dict[str, Any]):
    params = {**defaults, "learning_rates": [1], "dropouts": [0.0], "hidden_sizes": [" 64, 32 "]}
    (combo,) = build_combinations(params)
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
        build_combinations({**defaults, name: value})
    assert str(raised.value).startswith(f"param {name}: ")


def test_grid_over_the_cap(defaults: dict[str, Any]):
    params = {
        **defaults,
        "learning_rates": [0.001, 0.003, 0.01, 0.03, 0.1],
        "batch_sizes": [32, 64, 128, 256],
    }
    assert params["max_combinations"] < 5 * 4
    with pytest.raises(SweepParamError) as raised:
        build_combinations(params)
    assert str(raised.value).startswith("param max_combinations: the grid has 20 combinations")
