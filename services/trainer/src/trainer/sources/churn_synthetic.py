"""Synthetic daily customer-churn partitions whose distributions and churn drivers can drift.

The demo data of the platform's own pipeline (dags/churn_classifier.model.yaml is its
contract); a source like the others in this package, not something the trainer depends on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.errors import TrainerError
from trainer.sources.dates import seed_for_date

# The columns and dtypes this source writes (the churn spec's contract).
DTYPES = {
    "customer_id": "int64",
    "age": "int64",
    "tenure_months": "int64",
    "monthly_charges": "float64",
    "total_charges": "float64",
    "support_calls": "int64",
    "data_usage_gb": "float64",
    "late_payments": "int64",
    "contract_months": "int64",
    "churned": "int64",
}

# Churn log-odds per standardised feature. Without drift price, support and contract drive
# churn; with drift the drivers rotate (data usage and late payments take over, tenure stops
# protecting), so a model trained on old data ranks new customers worse.
_BASE_WEIGHTS = {
    "age": -0.25,
    "tenure_months": -0.9,
    "monthly_charges": 0.8,
    "total_charges": -0.2,
    "support_calls": 0.7,
    "data_usage_gb": -0.1,
    "late_payments": 0.5,
    "contract_months": -0.9,
}
_DRIFTED_WEIGHTS = {
    "age": 0.3,
    "tenure_months": 0.4,
    "monthly_charges": 0.1,
    "total_charges": 0.1,
    "support_calls": 0.2,
    "data_usage_gb": 1.1,
    "late_payments": 1.0,
    "contract_months": -0.2,
}
# Fixed reference centre and spread for the logit, so drifted inputs also move the churn rate.
_REFERENCE = {
    "age": (45.0, 15.0),
    "tenure_months": (30.0, 25.0),
    "monthly_charges": (65.0, 22.0),
    "total_charges": (2000.0, 2000.0),
    "support_calls": (1.2, 1.1),
    "data_usage_gb": (14.0, 10.0),
    "late_payments": (0.5, 0.7),
    "contract_months": (8.0, 9.0),
}
_INTERCEPT = -1.3
_LOGIT_NOISE = 0.6


def generate_frame(date: str, rows: int, drift: float) -> pd.DataFrame:
    """`rows` customers for `date`: the same frame for the same arguments, always."""
    if rows < 1:
        raise TrainerError(f"--rows must be at least 1, got {rows}")
    if not 0.0 <= drift <= 5.0:
        raise TrainerError(f"--drift must be between 0 and 5, got {drift}")
    rng = np.random.default_rng(seed_for_date(date))
    mix = min(drift, 1.0)  # how far the churn drivers have rotated; distributions keep moving

    customer_id = rng.choice(9_000_000, size=rows, replace=False).astype(np.int64) + 1_000_000
    age = np.clip(np.round(rng.normal(45 - 8 * drift, 15, rows)), 18, 100).astype(np.int64)
    contract_p = np.array([0.45 + 0.25 * mix, 0.30 - 0.1 * mix, 0.25 - 0.15 * mix])
    contract = rng.choice(np.array([1, 12, 24], dtype=np.int64), size=rows, p=contract_p)
    tenure = rng.gamma(1.4, 22 * (1 - 0.4 * mix), rows)
    tenure = np.minimum(tenure, (age - 18) * 12)  # nobody is a customer before adulthood
    tenure = np.clip(np.round(tenure), 0, 600).astype(np.int64)
    monthly = np.clip(rng.normal(65 + 20 * drift, 22, rows), 5, None)
    monthly = np.round(monthly + 4 * (contract == 1), 2)
    total = np.round(monthly * tenure * rng.uniform(0.9, 1.1, rows), 2)
    support = rng.poisson(1.2 + 1.2 * drift + 0.015 * np.maximum(monthly - 65, 0)).astype(np.int64)
    usage = np.round(rng.lognormal(2.4 + 0.5 * drift, 0.6, rows), 2)
    late = rng.poisson(0.5 + 0.6 * drift, rows).astype(np.int64)

    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support,
            "data_usage_gb": usage,
            "late_payments": late,
            "contract_months": contract,
        }
    )
    logit = np.full(rows, _INTERCEPT) + rng.normal(0, _LOGIT_NOISE, rows)
    for name, (centre, spread) in _REFERENCE.items():
        weight = (1 - mix) * _BASE_WEIGHTS[name] + mix * _DRIFTED_WEIGHTS[name]
        logit += weight * (frame[name].to_numpy(np.float64) - centre) / spread
    churn_probability = 1 / (1 + np.exp(-logit))
    frame["churned"] = (rng.uniform(size=rows) < churn_probability).astype(np.int64)
    return frame.astype(DTYPES)
