"""Feature drift of a current sample against a reference sample, or against a reference
profile (trainer.profile): PSI and the KS statistic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ml_contract import Column
from trainer.profile import category_key

PSI_BINS = 10
# Empty bins would make PSI infinite; a small floor keeps it finite and comparable.
_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `current` against `reference`, on reference deciles."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant reference: any change of value is a full shift
        return 0.0 if np.all(current == edges[0]) else float("inf")
    # Open the outer bins so values beyond the reference's range still count.
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    return _psi_of_shares(expected, actual)


def _psi_of_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    expected, actual = np.maximum(expected, _FLOOR), np.maximum(actual, _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def category_psi(reference: pd.Series, current: pd.Series, categories: Sequence[Any]) -> float:
    """PSI over a categorical column's categories (missing values count as one more)."""
    return _psi_of_shares(_shares(reference, categories), _shares(current, categories))


def _shares(values: pd.Series, categories: Sequence[Any]) -> np.ndarray:
    counts = [int((values == c).sum()) for c in categories] + [int(values.isna().sum())]
    return np.asarray(counts, dtype=float) / max(len(values), 1)


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: Iterable[Column]
) -> dict[str, dict[str, float]]:
    """PSI and KS (statistic and p-value) per numeric feature; PSI per categorical one."""
    report: dict[str, dict[str, float]] = {}
    for column in features:
        name = column.name
        if column.is_categorical:
            categories = column.categories or ()
            value = category_psi(reference[name], current[name], categories)
            report[name] = {"psi": round(value, 6)}
            continue
        ref = pd.to_numeric(reference[name]).dropna().to_numpy(np.float64)
        cur = pd.to_numeric(current[name]).dropna().to_numpy(np.float64)
        ks = stats.ks_2samp(ref, cur)
        report[name] = {
            "psi": round(psi(ref, cur), 6),
            "ks": round(float(ks.statistic), 6),
            "ks_pvalue": float(ks.pvalue),
        }
    return report


def profile_drift(
    profile: Mapping[str, Any], frame: pd.DataFrame, features: Iterable[Column]
) -> dict[str, dict[str, float]]:
    """PSI (and a KS bound) of each feature of `frame` against a reference profile.

    A profile keeps quantiles, not rows: numeric features are binned on the profile's
    interior quantiles, the reference's share of each bin read off the quantile levels, and
    the KS statistic is taken at those edges (a lower bound of the exact one). Categorical
    features compare category shares, nulls counted as one more category. Features the
    profile lacks (a new input) are left out.
    """
    report: dict[str, dict[str, float]] = {}
    columns = profile.get("columns", {})
    for column in features:
        stats = columns.get(column.name)
        if stats is None or column.name not in frame.columns:
            continue
        values = frame[column.name]
        if stats["kind"] == "categorical":
            null_rate = float(stats.get("null_rate", 0.0))
            reference = {k: v * (1 - null_rate) for k, v in stats["frequencies"].items()}
            present = values[values.notna()].map(category_key)
            keys = sorted(set(reference) | set(present.unique().tolist()))
            counts = present.value_counts()
            actual = [counts.get(k, 0) / max(len(values), 1) for k in keys]
            actual.append(float(values.isna().mean()) if len(values) else 0.0)
            expected = [reference.get(k, 0.0) for k in keys] + [null_rate]
            value = _psi_of_shares(np.asarray(expected), np.asarray(actual))
            report[column.name] = {"psi": round(value, 6)}
            continue
        quantiles = stats.get("quantiles")
        numbers = pd.to_numeric(values).to_numpy(np.float64)
        numbers = numbers[np.isfinite(numbers)]
        if not quantiles or not len(numbers):
            continue
        levels = sorted((float(q), v) for q, v in quantiles.items() if v is not None)
        edges = np.unique([v for q, v in levels if 0.0 < q < 1.0])
        # The reference CDF at each edge: the highest quantile level at or below it.
        ref_cdf = np.asarray([max((q for q, v in levels if v <= e), default=0.0) for e in edges])
        cur_cdf = np.searchsorted(np.sort(numbers), edges, side="right") / len(numbers)
        expected = np.diff(np.concatenate([[0.0], ref_cdf, [1.0]]))
        actual = np.diff(np.concatenate([[0.0], cur_cdf, [1.0]]))
        report[column.name] = {
            "psi": round(_psi_of_shares(expected, actual), 6),
            "ks": round(float(np.max(np.abs(ref_cdf - cur_cdf))) if len(edges) else 0.0, 6),
        }
    return report
