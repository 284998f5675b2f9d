"""validate against the champion's reference profile: a corrupted day cannot pass (issue 11).

The contract alone bounds monthly_charges below only, so a day multiplied by 1e12 met it; the
reference profile (the champion's training split, trainer.profile) catches it, and every other
kind of bad day still fails in one line naming the file and the column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from trainer_helpers import file_uri, unique

from ml_contract import SPEC_ENV, ModelSpec, spec_from_dict
from trainer.errors import ValidationError
from trainer.preprocess import run_preprocess
from trainer.profile import (
    PROFILE_ARTIFACT,
    QUANTILES,
    category_key,
    champion_profile,
    profile_frame,
)
from trainer.sources.churn_synthetic import generate_frame
from trainer.validation import validate_input

DAY = "2026-02-03"


@pytest.fixture(scope="module")
def reference(churn_spec: ModelSpec) -> dict:
    # contract_months 24 left out: a day holding it has a category the champion never saw.
    frame = generate_frame("2026-02-02", 1000, 0.0)
    return profile_frame(frame[frame["contract_months"] != 24], churn_spec)


@pytest.fixture(scope="module")
def nullable_spec(churn_spec: ModelSpec) -> ModelSpec:
    """churn with total_charges nullable: only the reference bounds its null rate."""
    document = churn_spec.to_dict()
    document["dataset"]["columns"]["total_charges"]["nullable"] = True
    return spec_from_dict(document, "nullable")


def _day(rows: int = 400) -> pd.DataFrame:
    frame = generate_frame(DAY, rows, 0.0)
    return frame[frame["contract_months"] != 24].reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _floats(column: str, bad: float) -> Callable[[Path], None]:
    """Real NaN/inf floating values (pandas would write NaN as a null)."""

    def write(path: Path) -> None:
        frame = _day()
        values = frame[column].to_numpy(np.float64).copy()
        values[[3, 7]] = bad
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.set_column(table.column_names.index(column), column, pa.array(values))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

    return write


def _edited(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    return lambda path: _write(edit(_day()), path)


def _set(frame: pd.DataFrame, column: str, rows: slice | list[int], value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[rows, column] = value
    return frame


def _with_24(frame: pd.DataFrame) -> pd.DataFrame:
    return _set(frame, "contract_months", list(range(0, len(frame), 10)), 24)


def _null_jump(frame: pd.DataFrame) -> pd.DataFrame:
    return _set(frame, "total_charges", slice(0, 119), None)


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    return _set(frame, "customer_id", [10], frame.loc[0, "customer_id"])


# name -> (writes a bad data.parquet, the column the line names, what it says)
BAD_DAYS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "scale_1e12": (
        _edited(lambda f: f.assign(monthly_charges=f["monthly_charges"] * 1e12)),
        "monthly_charges",
        "100% of values above the reference max",
    ),
    "shifted": (
        _edited(lambda f: f.assign(data_usage_gb=f["data_usage_gb"] + 200)),
        "data_usage_gb",
        "of values above the reference max",
    ),
    "unseen_category": (_edited(_with_24), "contract_months", "'24' never seen in the reference"),
    "tiny": (_edited(lambda f: f.head(10)), "", "has 10 rows, the spec's minimum is 100"),
    "inf": (_floats("monthly_charges", float("inf")), "monthly_charges", "2 infinite value(s)"),
    "nan": (_floats("data_usage_gb", float("nan")), "data_usage_gb", "2 NaN value(s)"),
    # An int column holding infinities reads as floats: named as infinite, not as a dtype.
    "inf_in_int": (_floats("age", float("inf")), "age", "2 infinite value(s)"),
    "nan_in_int": (_floats("support_calls", float("nan")), "support_calls", "2 NaN value(s)"),
    "duplicate_keys": (_edited(_duplicate), "customer_id", "duplicate key"),
    "null_rate_jump": (
        _edited(_null_jump),
        "total_charges",
        "% null, the reference 0% (tolerance +0.1)",
    ),
    "negative": (
        _edited(lambda f: _set(f, "tenure_months", [4], -5)),
        "tenure_months",
        "outside [0, 600] (e.g. -5)",
    ),
    "wrong_dtype": (
        _edited(lambda f: f.assign(age=f["age"].astype(str))),
        "age",
        "has dtype str, expected int64",
    ),
    "label_outside_classes": (
        _edited(lambda f: _set(f, "churned", [5], 2)),
        "churned",
        "outside its classes {0, 1} (e.g. 2)",
    ),
    "single_class": (_edited(lambda f: f.assign(churned=0)), "churned", "a single class (0)"),
    "missing_column": (
        _edited(lambda f: f.drop(columns=["late_payments"])),
        "late_payments",
        "missing column(s)",
    ),
}


@pytest.mark.parametrize(("write", "column", "says"), BAD_DAYS.values(), ids=list(BAD_DAYS))
def test_a_bad_day_fails_in_one_line_and_is_not_preprocessed(
    tmp_path: Path,
    nullable_spec: ModelSpec,
    reference: dict,
    write: Callable[[Path], None],
    column: str,
    says: str,
) -> None:
    data = tmp_path / "daily" / DAY / "data.parquet"
    write(data)
    result = validate_input(str(data.parent), nullable_spec, reference)
    assert not result.valid
    line = result.problems[0]
    assert len(line.splitlines()) == 1
    assert line.startswith(f"{file_uri(data)}: "), line
    assert f"'{column}'" in line if column else "column" not in line, line
    assert says in line, line
    failed = [c for c in result.report()["checks"] if c["status"] == "failed"]
    assert failed and failed[0]["problems"][0] == line

    output = tmp_path / "prepared"
    with pytest.raises(ValidationError, match="^" + re.escape(file_uri(data))):
        run_preprocess(str(data.parent), str(output), 42, 0.15, 0.15, nullable_spec, reference)
    assert not output.exists()


def test_a_good_day_passes_against_the_reference(
    tmp_path: Path, nullable_spec: ModelSpec, reference: dict
) -> None:
    data = tmp_path / "data.parquet"
    _write(_day(), data)
    result = validate_input(str(data), nullable_spec, reference)
    assert result.valid, result.problems
    ran = {c["name"]: c["status"] for c in result.report()["checks"]}
    assert ran["reference_ranges"] == ran["reference_categories"] == "passed"
    assert ran["min_rows"] == "passed"
    # Without a reference the reference checks are skipped, and the corrupted day passes the
    # contract alone: what issue 11 was about.
    _write(_day().assign(monthly_charges=lambda f: f["monthly_charges"] * 1e12), data)
    alone = validate_input(str(data), nullable_spec)
    assert alone.valid and not validate_input(str(data), nullable_spec, reference).valid
    assert {c["name"]: c["status"] for c in alone.report()["checks"]}["reference_ranges"] == (
        "skipped"
    )


def test_the_profile_describes_numbers_and_categories(churn_spec: ModelSpec, reference: dict):
    assert reference["rows"] > 600 and churn_spec.key not in reference["columns"]
    charges = reference["columns"]["monthly_charges"]
    assert charges["kind"] == "numeric" and charges["null_rate"] == 0.0
    assert list(charges["quantiles"]) == [str(q) for q in QUANTILES]
    assert charges["quantiles"]["0.0"] == charges["min"] < charges["mean"] < charges["max"]
    contract = reference["columns"]["contract_months"]
    assert contract["kind"] == "categorical" and set(contract["frequencies"]) == {"1", "12"}
    assert sum(contract["frequencies"].values()) == pytest.approx(1.0)
    # A nullable int column reads back as floats: 12.0 is still the category 12.
    assert [category_key(v) for v in (12.0, 12, 0.5, True, "a")] == ["12", "12", "0.5", "True", "a"]


def _champion_with_profile(name: str, profile: dict | None) -> None:
    """A registered version whose run logged `profile` (no model: only the profile is read)."""
    with mlflow.start_run(experiment_id=mlflow.create_experiment(unique("ref"))) as run:
        if profile is not None:
            mlflow.log_dict(profile, PROFILE_ARTIFACT)
    client = MlflowClient()
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)


def test_validate_with_model_name_checks_against_the_champions_profile(
    run_cli, tmp_path: Path, mlflow_uri: str, reference: dict, churn_spec: ModelSpec
) -> None:
    name = unique("churn-ref")
    _champion_with_profile(name, reference)
    assert champion_profile(name) == reference
    corrupted = tmp_path / "daily" / DAY
    _write(
        _day().assign(monthly_charges=lambda f: f["monthly_charges"] * 1e12),
        corrupted / "d.parquet",
    )
    good = tmp_path / "good"
    _write(_day(), good / "d.parquet")
    assert SPEC_ENV in os.environ  # the DAG's spec, the registry's profile

    refused = run_cli("validate", "--input-uri", str(corrupted), "--model-name", name)
    assert refused.code == 1
    # The one line main() prints last: the file, the column, the numbers.
    where = f"{file_uri(corrupted / 'd.parquet')}: column 'monthly_charges'"
    assert refused.error_line.endswith("allowed)") and where in refused.error_line
    assert "100% of values above the reference max" in refused.error_line
    output = tmp_path / "prepared"
    args = ("--input-uri", str(corrupted), "--model-name", name, "--output-uri", str(output))
    preprocessed = run_cli("preprocess", *args)
    assert preprocessed.code == 1 and "reference max" in preprocessed.error_line
    assert not output.exists()

    passed = run_cli("validate", "--input-uri", str(good), "--model-name", name)
    assert passed.code == 0, passed.stderr
    # Without --model-name, or with a champion that logged no profile: the contract alone.
    assert run_cli("validate", "--input-uri", str(corrupted)).code == 0
    bare = unique("churn-bare")
    _champion_with_profile(bare, None)
    assert champion_profile(bare) is None and champion_profile(unique("nothing")) is None
    assert run_cli("validate", "--input-uri", str(corrupted), "--model-name", bare).code == 0
