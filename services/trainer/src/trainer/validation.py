"""Checks a raw partition (or one Parquet file) against a model's data contract, every problem."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml_contract import Column, ModelSpec
from trainer import storage
from trainer.errors import StorageError, ValidationError
from trainer.profile import category_key

log = logging.getLogger(__name__)

# In the order they run; a check skips the columns or files an earlier one already failed.
CHECK_NAMES = (
    "input_found",
    "parquet_readable",
    "not_empty",
    "columns_present",
    "no_all_null_columns",
    "no_nulls",
    "dtypes",
    "finite_values",
    "label_classes",
    "value_ranges",
    "unique_ids",
    "min_rows",
    "reference_ranges",
    "reference_categories",
    "reference_null_rates",
)
_REFERENCE_CHECKS = CHECK_NAMES[-3:]  # run only when a reference profile is given
_EXAMPLES = 3  # offending values quoted per problem


@dataclass
class _Check:
    name: str
    problems: list[str] = field(default_factory=list)
    ran: bool = False

    def to_dict(self) -> dict:
        status = "failed" if self.problems else ("passed" if self.ran else "skipped")
        return {"name": self.name, "status": status, "problems": self.problems}


@dataclass
class Validation:
    """The outcome for one input: the report, and the rows when they are valid."""

    input_uri: str
    spec: ModelSpec
    files: list[str]
    rows: int
    dataset_version: str | None
    checks: list[_Check]
    frame: pd.DataFrame | None = None

    @property
    def problems(self) -> list[str]:
        return [problem for check in self.checks for problem in check.problems]

    @property
    def valid(self) -> bool:
        return not self.problems and self.frame is not None

    def report(self) -> dict:
        return {
            "input_uri": self.input_uri,
            "files": self.files,
            "rows": self.rows,
            "dataset_version": self.dataset_version,
            "valid": self.valid,
            "checks": [check.to_dict() for check in self.checks],
            "model": self.spec.model,
            "schema": {c.name: c.dtype for c in self.spec.columns},
            "validated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def error(self, report_uri: str | None = None) -> ValidationError:
        problems = self.problems
        more = len(problems) - 1
        suffix = ""
        if more:
            suffix = f" (+{more} more problem{'s' if more > 1 else ''}"
            suffix += f", see {report_uri})" if report_uri else ")"
        return ValidationError(problems[0] + suffix)


def default_report_uri(input_uri: str) -> str:
    """<partition>/_validation.json for a folder; <name>.validation.json beside a file."""
    input_uri = storage.normalize(input_uri)
    if input_uri.endswith(".parquet"):
        return input_uri.removesuffix(".parquet") + ".validation.json"
    return storage.join(input_uri, "_validation.json")


def validate_input(
    input_uri: str, spec: ModelSpec, reference: dict[str, Any] | None = None
) -> Validation:
    """Reads every Parquet file of `input_uri` once and runs all checks of `spec` on it, and
    when `reference` (a trainer.profile profile, the champion's) is given, checks the rows
    against it too: a day the contract allows can still be far from what the model knows."""
    input_uri = storage.normalize(input_uri)
    checks = {name: _Check(name) for name in CHECK_NAMES}
    result = Validation(input_uri, spec, [], 0, None, list(checks.values()))

    found = checks["input_found"]
    found.ran = True
    if not storage.exists(input_uri):
        found.problems.append(f"{input_uri}: not found")
        return result
    if storage.is_dir(input_uri):
        files = storage.list_files(input_uri, ".parquet")
        if not files:
            found.problems.append(f"{input_uri}: the folder holds no .parquet files")
            return result
    else:
        files = [input_uri]
    result.files = files

    # One read per file serves both the version hash and the parsing (S3 reads cost).
    digest = hashlib.sha256()
    tables: dict[str, pa.Table] = {}
    readable = checks["parquet_readable"]
    readable.ran = True
    for uri in files:
        data = storage.read_bytes(uri)
        digest.update(data)
        try:
            tables[uri] = storage.parse_parquet(data, uri)
        except StorageError as exc:
            readable.problems.append(str(exc))
    result.dataset_version = digest.hexdigest()
    log.info("read %d file(s) from %s", len(files), input_uri)

    frames = {uri: _check_file(uri, table, spec, checks) for uri, table in tables.items()}
    result.rows = sum(table.num_rows for table in tables.values())
    if result.problems or not frames:
        return result

    frame = pd.concat(list(frames.values()), ignore_index=True)
    if spec.task != "regression":
        where = input_uri if len(files) > 1 else files[0]
        _check_two_classes(where, frame, spec.label_column, checks["label_classes"])
    _check_unique_ids(frames, spec.key, checks["unique_ids"])
    where = input_uri if len(files) > 1 else files[0]
    _check_min_rows(where, len(frame), spec, checks["min_rows"])
    if reference is not None and not result.problems:
        _check_reference(where, frame, spec, reference, checks)
    if not result.problems:
        result.frame = frame
    return result


def _check_file(
    uri: str, table: pa.Table, spec: ModelSpec, checks: dict[str, _Check]
) -> pd.DataFrame:
    """Per-file checks; returns the file's contract columns as a frame."""
    for name in CHECK_NAMES[2:]:
        if name not in ("min_rows", *_REFERENCE_CHECKS):
            checks[name].ran = True
    if table.num_rows == 0:
        checks["not_empty"].problems.append(f"{uri}: has 0 rows")

    missing = [c.name for c in spec.columns if c.name not in table.column_names]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        checks["columns_present"].problems.append(f"{uri}: missing column(s) {names}")

    usable: list[Column] = []
    for column in spec.columns:
        if column.name in missing:
            continue
        nulls = table.column(column.name).null_count
        if table.num_rows and nulls == table.num_rows:
            checks["no_all_null_columns"].problems.append(
                f"{uri}: column {column.name!r} is entirely null"
            )
        elif nulls and not column.nullable:
            checks["no_nulls"].problems.append(
                f"{uri}: column {column.name!r} has {nulls} null value(s) and is not nullable"
            )
        else:
            usable.append(column)

    frame = table.select([c.name for c in spec.columns if c.name not in missing]).to_pandas()
    for column in usable:
        values = frame[column.name]
        present = values[values.notna()] if column.nullable else values
        if not _dtype_matches(present, column):
            if _whole_but_not_finite(present, column):
                # An int column holding inf/NaN reads as floats: name the values, not a dtype.
                _finite(uri, column, present.to_numpy(np.float64), checks["finite_values"])
                continue
            checks["dtypes"].problems.append(
                f"{uri}: column {column.name!r} has dtype {values.dtype}, expected {column.dtype}"
                + (
                    " (or floats holding whole numbers and nulls)"
                    if column.nullable and column.dtype == "int64"
                    else ""
                )
            )
            continue
        if column.is_numeric and not _finite(
            uri, column, present.to_numpy(np.float64), checks["finite_values"]
        ):
            continue
        if column.name == spec.label and spec.task != "regression":
            _check_label_values(uri, column, present, checks["label_classes"])
        else:
            _check_range(uri, column, present, checks["value_ranges"])
    return frame


def _dtype_matches(values: pd.Series, column: Column) -> bool:
    dtype = values.dtype
    if column.dtype == "bool":
        return pd.api.types.is_bool_dtype(dtype) or (
            pd.api.types.is_object_dtype(dtype) and all(isinstance(v, bool) for v in values)
        )
    if column.dtype == "string":
        return (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)) and all(
            isinstance(v, str) for v in values
        )
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return False
    if column.dtype == "int64" and not pd.api.types.is_integer_dtype(dtype):
        # A nullable int column reads back as floats; its values must still be whole.
        floats = values.to_numpy(np.float64)
        return column.nullable and bool(np.all(np.mod(floats[np.isfinite(floats)], 1) == 0))
    return True


def _whole_but_not_finite(values: pd.Series, column: Column) -> bool:
    """Floats in an int64 column that would be whole numbers but for some NaN or infinity."""
    if column.dtype != "int64" or not pd.api.types.is_float_dtype(values.dtype):
        return False
    floats = values.to_numpy(np.float64)
    finite = np.isfinite(floats)
    return not finite.all() and bool(np.all(np.mod(floats[finite], 1) == 0))


def _finite(uri: str, column: Column, values: np.ndarray, check: _Check) -> bool:
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    if nan:
        check.problems.append(f"{uri}: column {column.name!r} has {nan} NaN value(s)")
    if inf:
        check.problems.append(f"{uri}: column {column.name!r} has {inf} infinite value(s)")
    return not (nan or inf)


def _check_label_values(uri: str, column: Column, values: pd.Series, check: _Check) -> None:
    allowed = set(column.categories or ())
    unexpected = sorted({v for v in values.unique().tolist() if v not in allowed}, key=str)
    if unexpected:
        shown = ", ".join(_show(v) for v in unexpected[:_EXAMPLES])
        check.problems.append(
            f"{uri}: column {column.name!r} has values outside its classes "
            f"{column.describe_range()} (e.g. {shown})"
        )


def _show(value: object) -> str:
    """A value as a person would write it: 3, not 3.0; 0.25, not 2.5e-01; 'a' quoted."""
    if isinstance(value, str | bool) or not isinstance(value, int | float | np.number):
        return repr(value)
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_two_classes(where: str, frame: pd.DataFrame, label: Column, check: _Check) -> None:
    present = sorted(frame[label.name].unique().tolist(), key=str)
    if len(present) == 1:
        check.problems.append(
            f"{where}: column {label.name!r} has a single class ({_show(present[0])}); "
            "at least two of its classes are needed to train"
        )


def _check_range(uri: str, column: Column, values: pd.Series, check: _Check) -> None:
    if column.categories is not None:
        bad = values[~values.isin(list(column.categories))]
    else:
        outside = pd.Series(False, index=values.index)
        if column.minimum is not None:
            outside |= values < column.minimum
        if column.maximum is not None:
            outside |= values > column.maximum
        bad = values[outside]
    if len(bad):
        shown = ", ".join(_show(v) for v in bad.unique()[:_EXAMPLES])
        check.problems.append(
            f"{uri}: column {column.name!r} has {len(bad)} value(s) outside "
            f"{column.describe_range()} (e.g. {shown})"
        )


def _check_unique_ids(frames: dict[str, pd.DataFrame], key: str, check: _Check) -> None:
    ids = pd.concat(
        [pd.DataFrame({"id": f[key], "file": uri}) for uri, f in frames.items()],
        ignore_index=True,
    )
    duplicated = ids[ids["id"].duplicated(keep=False)]
    for id_value, group in list(duplicated.groupby("id", sort=True))[:_EXAMPLES]:
        files = sorted(set(group["file"]))
        where = files[0] if len(files) == 1 else " and ".join(files)
        check.problems.append(
            f"{where}: column {key!r}: duplicate key {id_value} appears {len(group)} times"
        )
    others = duplicated["id"].nunique() - _EXAMPLES
    if others > 0:
        check.problems.append(f"{len(frames)} file(s): {others} more duplicated {key}s")


def _check_min_rows(where: str, rows: int, spec: ModelSpec, check: _Check) -> None:
    check.ran = True
    if rows < spec.validation.min_rows:
        check.problems.append(
            f"{where}: has {rows} rows, the spec's minimum is {spec.validation.min_rows}"
        )


def _check_reference(
    where: str,
    frame: pd.DataFrame,
    spec: ModelSpec,
    reference: dict[str, Any],
    checks: dict[str, _Check],
) -> None:
    for name in _REFERENCE_CHECKS:
        checks[name].ran = True
    rules = spec.validation
    profiles = reference.get("columns", {})
    for column in spec.columns:
        ref = profiles.get(column.name)
        if column.name == spec.key or ref is None:
            continue  # a column added since the champion has no reference yet
        values = frame[column.name]
        rate, ref_rate = float(values.isna().mean()), float(ref.get("null_rate", 0.0))
        if rate > ref_rate + rules.null_rate_tolerance:
            checks["reference_null_rates"].problems.append(
                f"{where}: column {column.name!r}: {rate:.0%} null, the reference "
                f"{ref_rate:.0%} (tolerance +{rules.null_rate_tolerance:g})"
            )
        present = values[values.notna()]
        if ref.get("kind") == "numeric" and ref.get("min") is not None and len(present):
            _check_reference_range(where, column, present, ref, rules, checks)
        elif ref.get("kind") == "categorical":
            seen = set(ref.get("frequencies", {}))
            unseen = sorted({category_key(v) for v in present.unique().tolist()} - seen)
            if unseen:
                known = ", ".join(repr(v) for v in sorted(seen)[:_EXAMPLES])
                shown = ", ".join(repr(v) for v in unseen[:_EXAMPLES])
                checks["reference_categories"].problems.append(
                    f"{where}: column {column.name!r}: {shown} never seen in the reference "
                    f"(e.g. {known})"
                )


def _check_reference_range(
    where: str,
    column: Column,
    values: pd.Series,
    ref: dict[str, Any],
    rules: Any,
    checks: dict[str, _Check],
) -> None:
    numbers = values.to_numpy(np.float64)
    low, high = float(ref["min"]), float(ref["max"])
    margin = rules.range_tolerance * (high - low)
    for side, share, bound in (
        ("below", float(np.mean(numbers < low - margin)), low),
        ("above", float(np.mean(numbers > high + margin)), high),
    ):
        if share > rules.max_outside_share:
            checks["reference_ranges"].problems.append(
                f"{where}: column {column.name!r}: {share:.0%} of values {side} the reference "
                f"{'min' if side == 'below' else 'max'} {bound:g} (tolerance "
                f"{rules.range_tolerance:g} x range {high - low:g}, at most "
                f"{rules.max_outside_share:.0%} allowed)"
            )


def run_validate(
    input_uri: str,
    report_uri: str | None,
    spec: ModelSpec,
    reference: dict[str, Any] | None = None,
) -> dict:
    """The validate subcommand: writes the report, raises ValidationError when invalid."""
    input_uri = storage.normalize(input_uri)
    explicit_report = report_uri is not None
    report_uri = storage.normalize(report_uri) if report_uri else default_report_uri(input_uri)
    log.info("validating %s", input_uri)
    result = validate_input(input_uri, spec, reference)
    found = not result.checks[0].problems
    if result.valid:
        storage.write_json(result.report(), report_uri)
        log.info("%s is valid: %d rows, version %s", input_uri, result.rows, result.dataset_version)
        return {
            "valid": True,
            "model": spec.model,
            "rows": result.rows,
            "dataset_version": result.dataset_version,
            "report_uri": report_uri,
            "input_uri": input_uri,
        }
    # A report for a missing input would create the missing folder, unless asked for elsewhere.
    if found or explicit_report:
        try:
            storage.write_json(result.report(), report_uri)
            log.info("wrote the failed validation report to %s", report_uri)
        except StorageError as exc:
            log.warning("could not write the validation report: %s", exc)
            report_uri = None
    else:
        report_uri = None
    raise result.error(report_uri)
