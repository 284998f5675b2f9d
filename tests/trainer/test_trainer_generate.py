"""generate: deterministic per date, different across dates, and drift that a model notices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from trainer_helpers import CHURN_SPEC_FILE, REPO

from ml_contract import ModelSpec, load_spec
from trainer.drift import feature_drift
from trainer.sources.churn_synthetic import generate_frame

FEATURES = list(load_spec(CHURN_SPEC_FILE).feature_names)
# The examples team's specs for the scikit-learn sources, and each dataset's size.
SKLEARN_SOURCES = {
    "sklearn-diabetes": (REPO / "dags" / "teams" / "examples" / "diabetes.model.yaml", 442),
    "sklearn-wine": (REPO / "dags" / "teams" / "examples" / "wine.model.yaml", 178),
}


def test_generate_writes_the_partition_and_is_deterministic_per_date(
    run_cli, tmp_path: Path, churn_spec: ModelSpec
):
    first = run_cli("generate", "--date", "2026-11-21", "--output-uri", str(tmp_path / "a"))
    again = run_cli("generate", "--date", "2026-11-21", "--output-uri", str(tmp_path / "b"))
    other = run_cli("generate", "--date", "2026-11-22", "--output-uri", str(tmp_path / "c"))

    assert first.code == again.code == other.code == 0
    assert first.xcom == {
        "uri": f"file://{tmp_path}/a/data.parquet",
        "rows": 4000,
        "date": "2026-11-21",
        "drift": 0.0,
        "source": "churn-synthetic",
    }
    a, b, c = (tmp_path / name / "data.parquet" for name in "abc")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()

    frame = pd.read_parquet(a)
    assert list(frame.columns) == list(churn_spec.column_names)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        column.name: column.dtype for column in churn_spec.columns
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


@pytest.mark.parametrize("source", sorted(SKLEARN_SOURCES))
def test_an_sklearn_source_is_deterministic_per_date_and_valid_under_its_spec(
    run_cli, tmp_path: Path, source: str
):
    spec_file, dataset_rows = SKLEARN_SOURCES[source]

    def generate(name: str, date: str, *flags: str):
        out = tmp_path / name
        result = run_cli(
            "generate", "--source", source, "--date", date, "--output-uri", str(out), *flags
        )
        assert result.code == 0, result.stderr
        return result, out

    first, a = generate("a", "2026-11-21")
    _, b = generate("b", "2026-11-21")
    _, c = generate("c", "2026-11-22")
    _, drifted = generate("drifted", "2026-11-21", "--drift", "1")
    small, d = generate("small", "2026-11-21", "--rows", "40")

    assert first.xcom["source"] == source
    assert first.xcom["rows"] == round(0.8 * dataset_rows)  # the default daily share
    assert small.xcom["rows"] == 40
    assert (a / "data.parquet").read_bytes() == (b / "data.parquet").read_bytes()
    spec = load_spec(spec_file)
    frames = {p.name: pd.read_parquet(p / "data.parquet") for p in (a, c, drifted, d)}
    assert list(frames["a"].columns) == list(spec.column_names)
    # Another day is another sample of the same rows: keys are the dataset's own row numbers.
    keys_a, keys_c = set(frames["a"][spec.key]), set(frames["c"][spec.key])
    assert keys_a != keys_c and len(keys_a & keys_c) > 0.5 * len(keys_a)
    assert keys_a <= set(range(dataset_rows))
    for name, folder in (("a", a), ("c", c), ("drifted", drifted)):
        validated = run_cli("validate", "--input-uri", str(folder), "--spec", str(spec_file))
        assert validated.code == 0, (name, validated.stderr)
        assert validated.xcom["model"] == spec.model
    # 40 rows are fewer than the spec's validation.min_rows (default 100).
    refused = run_cli("validate", "--input-uri", str(d), "--spec", str(spec_file))
    assert refused.code == 1
    assert refused.error_line.endswith("has 40 rows, the spec's minimum is 100")
    # Drift shifts the numeric features, never the labels.
    pd.testing.assert_series_equal(frames["drifted"][spec.label], frames["a"][spec.label])
    drift = feature_drift(frames["a"], frames["drifted"], spec.features)
    numeric = [c.name for c in spec.features if c.dtype == "float64"]
    assert min(drift[name]["psi"] for name in numeric) > 0.2
