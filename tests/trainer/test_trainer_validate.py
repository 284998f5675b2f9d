"""validate: a good partition passes; every kind of bad data fails in one line, naming the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from trainer_helpers import SHOP_SPECS, file_uri, shop_frame, snapshot, unique

from trainer.sources.churn_synthetic import generate_frame


def _good_frame() -> pd.DataFrame:
    return generate_frame("2026-02-02", 400, 0.0)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _with_float_values(frame: pd.DataFrame, column: str, bad: float, path: Path) -> None:
    """Writes NaN/inf as real floating values: pandas would turn NaN into a null."""
    values = frame[column].to_numpy(np.float64).copy()
    values[[3, 7]] = bad
    table = pa.Table.from_pandas(frame, preserve_index=False)
    index = table.column_names.index(column)
    table = table.set_column(index, column, pa.array(values, from_pandas=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _missing_column(path: Path) -> None:
    _write(_good_frame().drop(columns=["tenure_months"]), path)


def _wrong_dtype(path: Path) -> None:
    frame = _good_frame()
    _write(frame.assign(age=frame["age"].astype(str)), path)


def _all_null_column(path: Path) -> None:
    _write(_good_frame().assign(monthly_charges=None), path)


def _some_nulls(path: Path) -> None:
    frame = _good_frame()
    frame["support_calls"] = frame["support_calls"].astype("Int64")
    frame.loc[[1, 2], "support_calls"] = pd.NA
    _write(frame, path)


def _empty(path: Path) -> None:
    _write(_good_frame().head(0), path)


def _single_class(path: Path) -> None:
    _write(_good_frame().assign(churned=0), path)


def _label_out_of_set(path: Path) -> None:
    frame = _good_frame()
    frame.loc[5, "churned"] = 2
    _write(frame, path)


def _nan(path: Path) -> None:
    _with_float_values(_good_frame(), "data_usage_gb", float("nan"), path)


def _inf(path: Path) -> None:
    _with_float_values(_good_frame(), "monthly_charges", float("inf"), path)


def _out_of_range(path: Path) -> None:
    frame = _good_frame()
    frame.loc[9, "age"] = 150
    _write(frame, path)


def _bad_contract(path: Path) -> None:
    frame = _good_frame()
    frame.loc[9, "contract_months"] = 6
    _write(frame, path)


def _duplicate_ids(path: Path) -> None:
    frame = _good_frame()
    frame.loc[10, "customer_id"] = frame.loc[0, "customer_id"]
    _write(frame, path)


def _corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    good = path.with_name("good.tmp")
    _write(_good_frame(), good)
    path.write_bytes(good.read_bytes()[:200])  # a truncated upload
    good.unlink()


# name -> (writes a bad data.parquet, text the one-line error must contain)
BAD_DATASETS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing_column": (_missing_column, "missing column(s) 'tenure_months'"),
    "wrong_dtype": (_wrong_dtype, "column 'age' has dtype str, expected int64"),
    "all_null_column": (_all_null_column, "column 'monthly_charges' is entirely null"),
    "some_nulls": (
        _some_nulls,
        "column 'support_calls' has 2 null value(s) and is not nullable",
    ),
    "empty_file": (_empty, "has 0 rows"),
    "single_class": (_single_class, "column 'churned' has a single class (0)"),
    "label_not_binary": (
        _label_out_of_set,
        "column 'churned' has values outside its classes {0, 1} (e.g. 2)",
    ),
    "nan": (_nan, "column 'data_usage_gb' has 2 NaN value(s)"),
    "inf": (_inf, "column 'monthly_charges' has 2 infinite value(s)"),
    "out_of_range": (_out_of_range, "column 'age' has 1 value(s) outside [18, 100] (e.g. 150)"),
    "not_allowed_value": (
        _bad_contract,
        "column 'contract_months' has 1 value(s) outside {1, 12, 24} (e.g. 6)",
    ),
    "duplicate_ids": (_duplicate_ids, "appears 2 times"),
    "corrupt_parquet": (_corrupt, "not a readable Parquet file"),
}


def test_a_good_partition_passes_and_gets_a_report(run_cli, raw_partition: Path, tmp_path: Path):
    partition = tmp_path / "2026-11-21"
    shutil.copytree(raw_partition, partition)

    result = run_cli("validate", "--input-uri", file_uri(partition))

    assert result.code == 0, result.stderr
    report_uri = f"{file_uri(partition)}/_validation.json"
    assert result.xcom is not None
    assert result.xcom["valid"] is True
    assert result.xcom["rows"] == 1500
    assert result.xcom["report_uri"] == report_uri
    assert result.xcom["input_uri"] == file_uri(partition)
    report = json.loads((partition / "_validation.json").read_text())
    assert report["valid"] is True
    assert report["dataset_version"] == result.xcom["dataset_version"]
    assert report["files"] == [f"{file_uri(partition)}/data.parquet"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses.pop("min_rows") == "passed"
    # The reference checks run only against a champion's profile (validate --model-name).
    reference = ("reference_ranges", "reference_categories", "reference_null_rates")
    assert [statuses.pop(name) for name in reference] == ["skipped"] * 3
    assert list(statuses.values()) == ["passed"] * 11
    # The version is the content hash: the same bytes elsewhere give the same version.
    elsewhere = tmp_path / "elsewhere" / "data.parquet"
    elsewhere.parent.mkdir()
    shutil.copy(partition / "data.parquet", elsewhere)
    again = run_cli("validate", "--input-uri", str(elsewhere))
    assert again.xcom["dataset_version"] == result.xcom["dataset_version"]
    assert again.xcom["report_uri"] == f"{file_uri(elsewhere.parent)}/data.validation.json"
    assert (elsewhere.parent / "data.validation.json").exists()


def test_every_file_of_a_partition_is_read_and_ids_must_be_unique_across_files(
    run_cli, tmp_path: Path
):
    frame = _good_frame()
    _write(frame.iloc[:200], tmp_path / "part-0.parquet")
    _write(frame.iloc[200:], tmp_path / "part-1.parquet")
    ok = run_cli("validate", "--input-uri", str(tmp_path))
    assert ok.code == 0, ok.stderr
    assert ok.xcom["rows"] == 400

    _write(frame.iloc[195:205], tmp_path / "part-2.parquet")
    bad = run_cli("validate", "--input-uri", str(tmp_path))
    assert bad.code == 1
    assert "part-0.parquet and " in bad.error_line
    assert "part-2.parquet" in bad.error_line
    assert "appears 2 times" in bad.error_line


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_bad_data_fails_in_one_line_naming_file_and_problem(run_cli, tmp_path: Path, case: str):
    write_bad, expected = BAD_DATASETS[case]
    partition = tmp_path / "daily" / "2026-11-21"
    write_bad(partition / "data.parquet")
    data_uri = f"{file_uri(partition)}/data.parquet"

    result = run_cli("validate", "--input-uri", file_uri(partition))

    assert result.code == 1
    assert result.xcom is None
    assert result.error_line.startswith(f"trainer validate: error: {data_uri}: ")
    assert expected in result.error_line
    assert "Traceback" not in result.stderr
    report = json.loads((partition / "_validation.json").read_text())
    assert report["valid"] is False
    failed = [c for c in report["checks"] if c["status"] == "failed"]
    assert failed and any(expected in problem for c in failed for problem in c["problems"])


def test_a_missing_partition_fails_and_creates_nothing(run_cli, tmp_path: Path):
    missing = tmp_path / "daily" / "2026-11-22"

    result = run_cli("validate", "--input-uri", str(missing))

    assert result.code == 1
    assert result.error_line == f"trainer validate: error: {file_uri(missing)}: not found"
    assert not (tmp_path / "daily").exists()


def test_a_missing_file_fails(run_cli, tmp_path: Path):
    result = run_cli("validate", "--input-uri", str(tmp_path / "nope.parquet"))

    assert result.code == 1
    assert result.error_line.endswith(f"{file_uri(tmp_path)}/nope.parquet: not found")


def test_a_folder_without_parquet_files_fails(run_cli, tmp_path: Path):
    (tmp_path / "notes.txt").write_text("no data here")

    result = run_cli("validate", "--input-uri", str(tmp_path))

    assert result.code == 1
    assert "the folder holds no .parquet files" in result.error_line


def test_all_problems_land_in_the_report_and_the_error_counts_them(run_cli, tmp_path: Path):
    frame = _good_frame()
    frame.loc[1, "age"] = 5
    frame.loc[2, "late_payments"] = -1
    _write(frame, tmp_path / "data.parquet")
    report_path = tmp_path / "reports" / "check.json"

    result = run_cli(
        "validate", "--input-uri", str(tmp_path), "--report-uri", f"file://{report_path}"
    )

    assert result.code == 1
    assert result.error_line.endswith(f"(+1 more problem, see file://{report_path})")
    problems = [p for c in json.loads(report_path.read_text())["checks"] for p in c["problems"]]
    assert len(problems) == 2


def test_bad_data_never_reaches_a_trained_model(run_cli, tmp_path: Path, mlflow_uri: str):
    partition = tmp_path / "daily" / "2026-11-21"
    _nan(partition / "data.parquet")
    before = snapshot(tmp_path)
    output = tmp_path / "prepared"
    experiment = unique("bad-data")

    preprocess = run_cli("preprocess", "--input-uri", str(partition), "--output-uri", str(output))
    train = run_cli("train", "--data-uri", str(output), "--experiment", experiment, "--epochs", "1")

    assert preprocess.code == 1
    assert "column 'data_usage_gb' has 2 NaN value(s)" in preprocess.error_line
    assert snapshot(tmp_path) == before  # preprocess wrote nothing, not even a report
    assert train.code == 1
    assert train.error_line == (
        f"trainer train: error: {file_uri(output)}/manifest.json: not found"
    )
    client = MlflowClient()
    experiment_entity = client.get_experiment_by_name(experiment)
    assert experiment_entity is None  # no run was even started
    assert client.search_registered_models(filter_string=f"name = '{experiment}'") == []


def _bool_as_text(frame: pd.DataFrame) -> None:
    frame["member"] = frame["member"].map(str)


def _fractional_int(frame: pd.DataFrame) -> None:
    frame["visits"] = frame["visits"] + 0.5


def _unknown_category(frame: pd.DataFrame) -> None:
    frame.loc[4, "color"] = "pink"


def _null_in_non_nullable(frame: pd.DataFrame) -> None:
    frame.loc[[1, 2], "color"] = None


def _out_of_range(frame: pd.DataFrame) -> None:
    frame.loc[9, "size_cm"] = 150.0


def _label_outside_classes(frame: pd.DataFrame) -> None:
    frame.loc[3, "bought"] = "maybe"


def _one_class(frame: pd.DataFrame) -> None:
    frame["bought"] = "yes"


# Bad data under the shop contract (string, bool and nullable columns): change -> text.
SHOP_BAD_DATA: dict[str, tuple[Callable[[pd.DataFrame], None], str]] = {
    "bool_as_text": (_bool_as_text, "column 'member' has dtype str, expected bool"),
    "fractional_int": (_fractional_int, "column 'visits' has dtype float64, expected int64"),
    "unknown_category": (
        _unknown_category,
        "column 'color' has 1 value(s) outside {red, green, blue, violet} (e.g. 'pink')",
    ),
    "null_in_non_nullable": (
        _null_in_non_nullable,
        "column 'color' has 2 null value(s) and is not nullable",
    ),
    "out_of_range": (_out_of_range, "column 'size_cm' has 1 value(s) outside [0, 100] (e.g. 150)"),
    "label_outside_classes": (
        _label_outside_classes,
        "column 'bought' has values outside its classes {no, yes} (e.g. 'maybe')",
    ),
    "single_class": (
        _one_class,
        "column 'bought' has a single class ('yes'); at least two of its classes are needed",
    ),
}


def test_the_shop_data_is_valid_with_nulls_where_the_contract_allows_them(run_cli, tmp_path):
    frame = shop_frame("binary", 300, seed=5)
    assert frame["channel"].isna().any() and frame["size_cm"].isna().any()
    partition = tmp_path / "good"
    partition.mkdir()
    frame.to_parquet(partition / "data.parquet", index=False)

    result = run_cli("validate", "--input-uri", str(partition), "--spec", str(SHOP_SPECS["binary"]))

    assert result.code == 0, result.stderr
    assert result.xcom["model"] == "shop-binary"
    report = json.loads((partition / "_validation.json").read_text())
    assert report["schema"]["color"] == "string" and report["schema"]["member"] == "bool"


@pytest.mark.parametrize("case", sorted(SHOP_BAD_DATA))
def test_bad_data_under_a_contract_fails_in_one_line_and_writes_nothing_downstream(
    run_cli, tmp_path: Path, case: str
):
    change, expected = SHOP_BAD_DATA[case]
    frame = shop_frame("binary", 300, seed=5)
    change(frame)
    partition = tmp_path / "daily" / "2026-11-21"
    partition.mkdir(parents=True)
    frame.to_parquet(partition / "data.parquet", index=False)
    data_uri = f"{file_uri(partition)}/data.parquet"
    spec = str(SHOP_SPECS["binary"])
    before = snapshot(tmp_path)
    output = tmp_path / "prepared"

    preprocess = run_cli(
        "preprocess", "--input-uri", str(partition), "--output-uri", str(output), "--spec", spec
    )

    assert preprocess.code == 1
    assert preprocess.xcom is None
    assert preprocess.error_line.startswith(f"trainer preprocess: error: {data_uri}: {expected}")
    assert "Traceback" not in preprocess.stderr
    assert snapshot(tmp_path) == before  # no splits, no encoder, not even a report
    assert not output.exists()

    validate = run_cli("validate", "--input-uri", str(partition), "--spec", spec)

    assert validate.code == 1
    assert validate.error_line.startswith(f"trainer validate: error: {data_uri}: {expected}")
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {"daily/2026-11-21/_validation.json"}  # only the report
    assert json.loads(after["daily/2026-11-21/_validation.json"])["valid"] is False
