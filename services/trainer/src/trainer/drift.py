"""Feature drift between a reference sample and a current one: PSI and the KS statistic."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

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
    expected, actual = np.maximum(expected, _FLOOR), np.maximum(actual, _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: Iterable[str]
) -> dict[str, dict[str, float]]:
    """PSI and KS (statistic and p-value) per feature."""
    report = {}
    for name in features:
        ks = stats.ks_2samp(reference[name].to_numpy(), current[name].to_numpy())
        report[name] = {
            "psi": round(psi(reference[name].to_numpy(), current[name].to_numpy()), 6),
            "ks": round(float(ks.statistic), 6),
            "ks_pvalue": float(ks.pvalue),
        }
    return report
