"""The reference profile: what a model's training split looked like, column by column.

`trainer train` (and sdk.tracked_run for team trainers) logs it with every run, so the
champion's profile is what a new day is validated against (validation.validate_input).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from ml_contract import ModelSpec

log = logging.getLogger(__name__)

PROFILE_ARTIFACT = "reference_profile.json"
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def _number(value: Any) -> float | None:
    """JSON has no NaN or infinity: an undefined statistic is null."""
    value = float(value)
    return value if math.isfinite(value) else None


def category_key(value: Any) -> str:
    """A category as the profile keys it: 12 whether read as 12 or as 12.0 (a nullable int
    column reads back as floats), so a day with nulls matches a reference without."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def profile_frame(frame: pd.DataFrame, spec: ModelSpec) -> dict[str, Any]:
    """Per column but the key (ids always move on): numbers' quantiles, min, max, mean, std
    and null rate; categoricals (and numbers with categories) their category frequencies
    (keyed by str(value)) and null rate; and the row count."""
    rows = len(frame)
    columns: dict[str, Any] = {}
    for column in spec.columns:
        if column.name == spec.key or column.name not in frame.columns:
            continue
        values = frame[column.name]
        present = values[values.notna()]
        null_rate = float(values.isna().mean()) if rows else 0.0
        if column.is_numeric and column.categories is None:  # a closed set: frequencies
            numbers = present.to_numpy(np.float64)
            numbers = numbers[np.isfinite(numbers)]
            stats: dict[str, Any] = {"kind": "numeric", "null_rate": null_rate}
            if len(numbers):
                stats |= {
                    "min": _number(numbers.min()),
                    "max": _number(numbers.max()),
                    "mean": _number(numbers.mean()),
                    "std": _number(numbers.std()),
                    "quantiles": {
                        str(q): _number(v)
                        for q, v in zip(QUANTILES, np.quantile(numbers, QUANTILES), strict=True)
                    },
                }
            columns[column.name] = stats
        else:
            counts = present.map(category_key).value_counts()
            total = int(counts.sum())
            columns[column.name] = {
                "kind": "categorical",
                "null_rate": null_rate,
                "frequencies": {str(k): int(v) / total for k, v in counts.items()} if total else {},
            }
    return {"model": spec.model, "rows": rows, "columns": columns}


def champion_profile(model_name: str, client: Any = None) -> dict[str, Any] | None:
    """The profile logged with the run of `model_name`@champion; None when the model has no
    champion or its run logged no profile (a champion trained before profiles existed)."""
    from mlflow.tracking import MlflowClient

    from trainer.registry import champion_version, run_artifact_dict

    version = champion_version(client or MlflowClient(), model_name)
    if version is None:
        log.info("%s has no champion: validating against the spec alone", model_name)
        return None
    profile = run_artifact_dict(version, PROFILE_ARTIFACT)
    if profile is not None:
        log.info("validating against the profile of %s version %s", model_name, version.version)
    return profile
