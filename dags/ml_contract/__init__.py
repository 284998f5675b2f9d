"""Model specs: one reviewed YAML file per model (docs/ml-teams.md, "The model spec")."""

from ml_contract.metrics import METRICS, Metric, metrics_for
from ml_contract.spec import (
    DTYPES,
    SPEC_ENV,
    SPEC_SUFFIX,
    TASKS,
    Column,
    ModelSpec,
    Promotion,
    SpecError,
    TrainerRef,
    load_spec,
    spec_from_dict,
    spec_from_json,
)

__all__ = [
    "DTYPES",
    "METRICS",
    "SPEC_ENV",
    "SPEC_SUFFIX",
    "TASKS",
    "Column",
    "Metric",
    "ModelSpec",
    "Promotion",
    "SpecError",
    "TrainerRef",
    "load_spec",
    "metrics_for",
    "spec_from_dict",
    "spec_from_json",
]
