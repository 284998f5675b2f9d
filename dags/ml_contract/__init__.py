"""Model specs: one reviewed YAML file per model (docs/ml-teams.md, "The model spec")."""

from ml_contract.metrics import METRICS, Metric, metrics_for
from ml_contract.spec import (
    DTYPES,
    MAX_SPEC_BYTES,
    PLATFORM_TRAINER,
    SPEC_ENV,
    SPEC_SUFFIX,
    TASKS,
    Column,
    ModelSpec,
    Promotion,
    SpecError,
    TrainerRef,
    Validation,
    load_spec,
    spec_from_dict,
    spec_from_json,
)

__all__ = [
    "DTYPES",
    "MAX_SPEC_BYTES",
    "METRICS",
    "PLATFORM_TRAINER",
    "SPEC_ENV",
    "SPEC_SUFFIX",
    "TASKS",
    "Column",
    "Metric",
    "ModelSpec",
    "Promotion",
    "SpecError",
    "TrainerRef",
    "Validation",
    "load_spec",
    "metrics_for",
    "spec_from_dict",
    "spec_from_json",
]
