"""generate: deterministic per date, different across dates, and drift that a model notices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from trainer import schema
from trainer.generate import generate_frame

FEATURES = list(schema.FEATURE_NAMES)


def test_generate_writes_the_partition_and_is_deterministic_per_date(run_cli, tmp_path: Path):
    first = run_cli("generate", "--date", "2026-11-21", "--output-uri", str(tmp_path / "a"))
    again = run_cli("generate", "--date", "2026-11-21", "--output-uri", str(tmp_path / "b"))
    other = run_cli("generate", "--date", "2026-11-22", "--output-uri", str(tmp_path / "c"))

    assert first.code == again.code == other.code == 0
    assert first.xcom == {
        "uri": f"file://{tmp_path}/a/data.parquet",
        "rows": 4000,
        "date": "2026-11-21",
        "drift": 0.0,
    }
    a, b, c = (tmp_path / name / "data.parquet" for name in "abc")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()

    frame = pd.read_parquet(a)
    assert list(frame.columns) == list(schema.COLUMN_NAMES)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        column.name: column.dtype for column in schema.COLUMNS
    }
    assert frame["customer_id"].is_unique
    assert 0.15 < frame["churned"].mean() < 0.45
    assert not pd.read_parquet(c)["customer_id"].equals(frame["customer_id"])


def test_generated_data_passes_validation(run_cli, tmp_path: Path):
    run_cli("generate", "--date", "2026-01-05", "--output-uri", str(tmp_path), "--rows", "500")
    drifted = tmp_path / "drifted"
    run_cli("generate", "--date", "2026-01-05", "--output-uri", str(drifted), "--drift", "2")

    assert run_cli("validate", "--input-uri", str(tmp_path / "data.parquet")).code == 0
    assert run_cli("validate", "--input-uri", str(drifted)).code == 0


def test_drift_shifts_feature_distributions():
    reference = generate_frame("2026-03-01", 5000, 0.0)
    drifted = generate_frame("2026-03-01", 5000, 1.0)

    for name in ("monthly_charges", "support_calls", "data_usage_gb", "late_payments"):
        spread = reference[name].std()
        assert drifted[name].mean() - reference[name].mean() > 0.4 * spread, name
    assert drifted["tenure_months"].mean() < 0.8 * reference["tenure_months"].mean()
    assert (drifted["contract_months"] == 1).mean() > (reference["contract_months"] == 1).mean()


def test_drift_changes_the_churn_relationship_so_an_old_model_degrades():
    train = generate_frame("2026-03-01", 6000, 0.0)
    same = generate_frame("2026-03-02", 6000, 0.0)
    drifted = generate_frame("2026-03-02", 6000, 1.0)

    scaler = StandardScaler().fit(train[FEATURES])
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(train[FEATURES]), train.churned)

    def auc(frame: pd.DataFrame) -> float:
        scores = model.predict_proba(scaler.transform(frame[FEATURES]))[:, 1]
        return roc_auc_score(frame.churned, scores)

    assert 0.8 < auc(same) < 0.92  # learnable, but not trivially
    assert auc(drifted) < auc(same) - 0.15


def test_generate_rejects_a_bad_date_in_one_line(run_cli, tmp_path: Path):
    result = run_cli("generate", "--date", "2026-13-01", "--output-uri", str(tmp_path / "x"))

    assert result.code == 1
    assert result.error_line == (
        "trainer generate: error: --date '2026-13-01' is not a date in YYYY-MM-DD form"
    )
    assert not (tmp_path / "x").exists()
