"""Feature drift between a reference sample and a current one: PSI and the KS statistic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ml_contract import Column

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
