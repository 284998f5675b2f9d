"""The model spec contract (ml_contract): the repository's specs, bad specs, the JSON form.

Each bad spec is the good one below with one change; the change marks the line its error
must name with `#!` (the key's own line, or its parent's when the key is missing).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_contract import (
    SPEC_SUFFIX,
    Column,
    ModelSpec,
    SpecError,
    Validation,
    load_spec,
    spec_from_dict,
    spec_from_json,
)
from ml_contract.spec import MAX_SPEC_BYTES
from ml_platform.model_specs import DAGS_FOLDER, spec_files

CHURN = DAGS_FOLDER / "churn_classifier.model.yaml"
GOOD = """\
model: wine-classifier
description: Cultivar of a wine from its chemistry.
task: multiclass
dataset:
  key: wine_id
  label: cultivar
  columns:
    wine_id:
      dtype: int64
      min: 0
    alcohol:
      dtype: float64
      min: 0
      max: 20
    region:
      dtype: string
      categories: [north, south]
      nullable: true
    cultivar:
      dtype: string
      categories: [a, b, c]
metric: f1
promotion:
  threshold: 0.8
  min_improvement: 0.01
trainer:
  image: trainer
"""
ALCOHOL_RANGE = "      min: 0\n      max: 20\n"


def _edit(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


# id -> (the spec's text, the key the error names ("" for the whole file), what it says)
BAD: dict[str, tuple[str | bytes, str, str]] = {
    "unknown dtype": (
        _edit("dtype: float64", "dtype: float32  #!"),
        "dataset.columns.alcohol.dtype",
        "'float32' is not a dtype (known: int64, float64, bool, string)",
    ),
    "label not in columns": (
        _edit("label: cultivar", "label: grape  #!"),
        "dataset.label",
        "'grape' is not one of dataset.columns",
    ),
    "label is the key": (
        _edit("label: cultivar", "label: wine_id  #!"),
        "dataset.label",
        "the label cannot be the key",
    ),
    "key not in columns": (
        _edit("key: wine_id", "key: id  #!"),
        "dataset.key",
        "'id' is not one of dataset.columns",
    ),
    "key nullable": (
        _edit("      dtype: int64\n", "      dtype: int64\n      nullable: true  #!\n"),
        "dataset.columns.wine_id.nullable",
        "the key cannot be nullable",
    ),
    "empty categories": (
        _edit("categories: [north, south]", "categories: []  #!"),
        "dataset.columns.region.categories",
        "expected a non-empty list of values",
    ),
    "categories of mixed types": (
        _edit("categories: [north, south]", "categories: [north, 3]  #!"),
        "dataset.columns.region.categories[1]",
        "3 is not a string value",
    ),
    "a category twice": (
        _edit("categories: [a, b, c]", "categories: [a, b, a]  #!"),
        "dataset.columns.cultivar.categories[2]",
        "'a' is listed twice",
    ),
    "string column without categories": (
        _edit(
            "    region:\n      dtype: string\n      categories: [north, south]\n",
            "    region:  #!\n      dtype: string\n",
        ),
        "dataset.columns.region.categories",
        "a string column needs its categories",
    ),
    "range min over max": (
        _edit(ALCOHOL_RANGE, "      min: 30  #!\n      max: 20\n"),
        "dataset.columns.alcohol.min",
        "min 30 is greater than max 20",
    ),
    "min is nan": (
        _edit(ALCOHOL_RANGE, "      min: .nan  #!\n      max: 20\n"),
        "dataset.columns.alcohol.min",
        "expected a finite number, got float nan",
    ),
    "a column as a scalar": (
        _edit("    alcohol:\n      dtype: float64\n" + ALCOHOL_RANGE, "    alcohol: float64  #!\n"),
        "dataset.columns.alcohol",
        "expected a mapping such as {dtype: float64}",
    ),
    "a bool as yes": (
        _edit("nullable: true", "nullable: yes  #!"),
        "dataset.columns.region.nullable",
        "'yes' reads as a boolean in YAML 1.1 only: write true or false",
    ),
    "missing task": (
        _edit("model: wine-classifier\n", "model: wine-classifier  #!\n").replace(
            "task: multiclass\n", ""
        ),
        "task",
        "is required",
    ),
    "unknown task": (
        _edit("task: multiclass", "task: ranking  #!"),
        "task",
        "'ranking' is not a task (known: binary, multiclass, regression)",
    ),
    "metric not of the task": (
        _edit("metric: f1", "metric: rmse  #!"),
        "metric",
        "'rmse' is not a multiclass metric",
    ),
    "metric given as a list": (
        _edit("metric: f1", "metric: [f1]  #!"),
        "metric",
        "['f1'] is not a multiclass metric",
    ),
    "binary label with 3 classes": (
        _edit("task: multiclass", "task: binary").replace(
            "categories: [a, b, c]", "categories: [a, b, c]  #!"
        ),
        "dataset.columns.cultivar.categories",
        "a binary label has exactly 2 classes, got 3",
    ),
    "multiclass label with 2 classes": (
        _edit("categories: [a, b, c]", "categories: [a, b]  #!"),
        "dataset.columns.cultivar.categories",
        "a multiclass label has at least 3 classes, got 2 (use task: binary)",
    ),
    "unknown key": (
        _edit("      dtype: float64\n", "      dtype: float64\n      unit: percent  #!\n"),
        "dataset.columns.alcohol.unit",
        "unknown key (allowed: dtype, nullable, min, max, categories, description)",
    ),
    "duplicate key": (GOOD + "metric: accuracy  #!\n", "metric", "appears twice"),
    "a key that is a number": (GOOD + "2024: x  #!\n", "2024", "reads '2024' as int (quote it)"),
    "threshold outside the metric's range": (
        _edit("threshold: 0.8", "threshold: 1.5  #!"),
        "promotion.threshold",
        "1.5 is outside the range of f1 [0, 1]",
    ),
    "threshold with an exponent YAML reads as text": (
        _edit("threshold: 0.8", "threshold: 8e-1  #!"),
        "promotion.threshold",
        "got str '8e-1' (YAML 1.1 reads an exponent as a number only with a dot and a sign",
    ),
    "negative min_improvement": (
        _edit("min_improvement: 0.01", "min_improvement: -0.01  #!"),
        "promotion.min_improvement",
        "must be at least 0, got -0.01",
    ),
    "min_improvement that can never be met": (
        _edit("min_improvement: 0.01", "min_improvement: 2  #!"),
        "promotion.min_improvement",
        "2 can never be met: f1 spans [0, 1]",
    ),
    "negative golden_tolerance": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  golden_tolerance: -1  #!"),
        "promotion.golden_tolerance",
        "must be at least 0, got -1",
    ),
    "breaking_change as a string": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  breaking_change: 'no'  #!"),
        "promotion.breaking_change",
        "expected true or false, got str 'no'",
    ),
    "drift_threshold of zero": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  drift_threshold: 0  #!"),
        "promotion.drift_threshold",
        "a PSI threshold is above 0, got 0",
    ),
    "negative suspect_drop": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  suspect_drop: -0.1  #!"),
        "promotion.suspect_drop",
        "must be at least 0, got -0.1",
    ),
    "approval_timeout_hours of zero": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  approval_timeout_hours: 0  #!"),
        "promotion.approval_timeout_hours",
        "must be above 0 and at most 720 (30 days), got 0",
    ),
    "approval_timeout_hours beyond 30 days": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  approval_timeout_hours: 1000 #!"),
        "promotion.approval_timeout_hours",
        "got 1000",
    ),
    "max_importance_share above one": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  max_importance_share: 1.5  #!"),
        "promotion.max_importance_share",
        "a share is above 0 and at most 1, got 1.5",
    ),
    "max_importance_share as a string": (
        _edit("min_improvement: 0.01", "min_improvement: 0.01\n  max_importance_share: half  #!"),
        "promotion.max_importance_share",
        "expected a finite number, got str 'half'",
    ),
    "min_rows of zero": (GOOD + "validation:\n  min_rows: 0  #!\n", "validation.min_rows", "0"),
    "min_rows not whole": (
        GOOD + "validation:\n  min_rows: 1.5  #!\n",
        "validation.min_rows",
        "expected a whole number, got float 1.5",
    ),
    "max_outside_share over 1": (
        GOOD + "validation:\n  max_outside_share: 2  #!\n",
        "validation.max_outside_share",
        "must be at most 1, got 2",
    ),
    "negative range_tolerance": (
        GOOD + "validation:\n  range_tolerance: -0.1  #!\n",
        "validation.range_tolerance",
        "must be at least 0, got -0.1",
    ),
    "null_rate_tolerance nan": (
        GOOD + "validation:\n  null_rate_tolerance: .nan  #!\n",
        "validation.null_rate_tolerance",
        "expected a finite number, got float nan",
    ),
    "unknown validation key": (
        GOOD + "validation:\n  max_rows: 5  #!\n",
        "validation.max_rows",
        "unknown key (allowed: min_rows, range_tolerance",
    ),
    "model name with capitals": (
        _edit("model: wine-classifier", "model: Wine  #!"),
        "model",
        "'Wine' is not allowed (pattern",
    ),
    "trainer as a list": (
        _edit("trainer:\n  image: trainer\n", "trainer: []  #!\n"),
        "trainer",
        "expected a mapping, got list []",
    ),
    "a date for a string": (
        _edit("description: Cultivar of a wine from its chemistry.", "description: 2024-01-01  #!"),
        "description",
        "'2024-01-01' reads as a date in YAML: quote it",
    ),
    "an alias": (
        _edit("categories: [north, south]", "categories: &sides [north, south]").replace(
            "categories: [a, b, c]", "categories: *sides  #!"
        ),
        "dataset.columns.cultivar.categories",
        "is an alias (*sides); anchors and aliases are not allowed",
    ),
    "a merge key": (
        _edit("      dtype: float64\n", "      <<: {dtype: float64}  #!\n"),
        'dataset.columns.alcohol."<<"',
        "merge keys are not allowed in a spec",
    ),
    "a python tag": (
        _edit(
            "description: Cultivar", "description: !!python/object/apply:os.system [echo]  #!"
        ).replace(" of a wine from its chemistry.", ""),
        "description",
        "the tag !!python/object/apply:os.system is not allowed in a spec",
    ),
    "a list at top level": ("- model  #!\n- task\n", "spec", "expected a mapping, got list"),
    "bad YAML": (
        _edit("threshold: 0.8", "threshold: 0.8: 1  #!"),
        "",
        "not valid YAML (mapping values are not allowed here)",
    ),
    "two documents": (GOOD + "---  #!\nmodel: other\n", "", "not valid YAML (but found another"),
    "nested too deep": ("model: " + "[" * 40 + "]" * 40 + "  #!\n", "", "nested more than"),
    "an empty file": ("#!\n", "", "the file is empty"),
    "not UTF-8": (b"model: x\ndescription: caf\xe9  #!\n", "", "not UTF-8 text (byte 0xe9)"),
    "a very long file": ("#!\n" + GOOD + "#" * MAX_SPEC_BYTES + "\n", "", "over the 1048576"),
}


def _write(tmp_path: Path, text: str | bytes) -> tuple[Path, int]:
    path = tmp_path / f"wine{SPEC_SUFFIX}"
    data = text if isinstance(text, bytes) else text.encode()
    path.write_bytes(data)
    marked = [n for n, line in enumerate(data.splitlines(), start=1) if b"#!" in line]
    assert len(marked) == 1, "mark exactly one line with #!"
    return path, marked[0]


@pytest.mark.parametrize("path", spec_files(DAGS_FOLDER), ids=lambda p: p.name)
def test_every_spec_of_the_repository_parses(path: Path) -> None:
    spec = load_spec(path)
    assert spec.source == str(path)
    assert spec.features and spec.key not in spec.feature_names


def test_the_churn_spec() -> None:
    assert CHURN in spec_files(DAGS_FOLDER)
    spec = load_spec(CHURN)
    assert (spec.model, spec.task, spec.key, spec.label) == (
        "churn-classifier",
        "binary",
        "customer_id",
        "churned",
    )
    assert spec.classes == (0, 1)
    assert spec.feature_names[0] == "age" and "churned" not in spec.feature_names
    assert spec.deciding_metric.name == "roc_auc" and spec.deciding_metric.higher_is_better
    assert spec.trainer.is_platform


def test_the_good_spec_is_good(tmp_path: Path) -> None:
    path = tmp_path / f"wine{SPEC_SUFFIX}"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.column_names == ("wine_id", "alcohol", "region", "cultivar")
    assert spec.feature_names == ("alcohol", "region")
    assert [c.name for c in spec.features] == ["alcohol", "region"]
    assert spec.classes == ("a", "b", "c")
    assert spec.label_column.is_categorical and spec.key_column.dtype == "int64"
    assert spec.column("alcohol") == Column("alcohol", "float64", minimum=0.0, maximum=20.0)
    assert spec.column("region").nullable and spec.column("region").describe_range() == (
        "{north, south}"
    )
    with pytest.raises(KeyError, match="no column 'colour'"):
        spec.column("colour")
    assert spec.line_of("promotion.threshold") == 24
    assert spec.line_of("trainer.image") == 27
    assert spec.line_of("dataset.columns.alcohol.categories") == 11  # absent: its parent's


@pytest.mark.parametrize(("text", "key", "says"), BAD.values(), ids=list(BAD))
def test_a_bad_spec_is_one_line_naming_file_line_and_key(
    tmp_path: Path, text: str | bytes, key: str, says: str
) -> None:
    path, line = _write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    where = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert message.startswith(where), message
    assert says in message, message
    assert (caught.value.line, caught.value.key) == (line, key)


def test_a_bool_label_has_two_classes_and_regression_none(tmp_path: Path) -> None:
    binary = GOOD.replace("task: multiclass", "task: binary").replace(
        "      dtype: string\n      categories: [a, b, c]\n", "      dtype: bool\n"
    )
    path = tmp_path / f"bool{SPEC_SUFFIX}"
    path.write_text(binary)
    assert load_spec(path).classes == (False, True)
    regression = (
        binary.replace("task: binary", "task: regression")
        .replace("      dtype: bool\n", "      dtype: float64\n")
        .replace("metric: f1", "metric: rmse")
    )
    path.write_text(regression)
    spec = load_spec(path)
    assert spec.classes == () and not spec.deciding_metric.higher_is_better


@pytest.mark.parametrize("path", [CHURN, None], ids=["churn", "wine"])
def test_the_json_form_round_trips(tmp_path: Path, path: Path | None) -> None:
    if path is None:
        path = tmp_path / f"wine{SPEC_SUFFIX}"
        path.write_text(GOOD)
    spec = load_spec(path)
    again = spec_from_json(spec.to_json())
    assert again == spec
    # The column order is the feature order: the JSON keeps it.
    assert again.feature_names == spec.feature_names
    assert again.classes == spec.classes
    assert spec_from_dict(spec.to_dict()) == spec
    assert isinstance(again, ModelSpec) and again.source == "ML_MODEL_SPEC"


def test_the_json_form_meets_the_same_checks() -> None:
    document = load_spec(CHURN).to_dict()
    document["promotion"]["threshold"] = 2.0
    with pytest.raises(SpecError) as caught:
        spec_from_dict(document, "env")
    assert str(caught.value) == (
        "env: promotion.threshold: 2 is outside the range of roc_auc [0, 1]"
    )
    assert caught.value.line is None
    for text, says in [
        ('{"model": "a", "model": "b"}', "ML_MODEL_SPEC: model: appears twice"),
        ("{", "ML_MODEL_SPEC: not valid JSON ("),
        ("[" * 100_000, "ML_MODEL_SPEC: not valid JSON ("),
        ('{"model": NaN}', "ML_MODEL_SPEC: model: expected a non-empty string, got float nan"),
    ]:
        with pytest.raises(SpecError) as caught:
            spec_from_json(text)
        assert str(caught.value).startswith(says)


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nothing\.model\.yaml: cannot read"):
        load_spec(tmp_path / f"nothing{SPEC_SUFFIX}")


def test_validation_and_promotion_keys_default_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / f"wine{SPEC_SUFFIX}"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.validation == Validation(100, 0.5, 0.01, 0.1)
    assert (
        spec.promotion.golden_tolerance,
        spec.promotion.breaking_change,
        spec.promotion.drift_threshold,
    ) == (0.02, False, 0.25)
    assert (
        spec.promotion.suspect_drop,
        spec.promotion.approval_timeout_hours,
        spec.promotion.max_importance_share,
    ) == (0.10, 24.0, None)
    assert "max_importance_share" not in spec.to_dict()["promotion"]
    path.write_text(
        _edit(
            "min_improvement: 0.01",
            "min_improvement: 0.01\n  golden_tolerance: 0.05\n  breaking_change: true\n"
            "  drift_threshold: 0.4\n  suspect_drop: 0.2\n  approval_timeout_hours: 0.5\n"
            "  max_importance_share: 0.6",
        )
        + "validation: {min_rows: 10, range_tolerance: 1, max_outside_share: 0.2,"
        " null_rate_tolerance: 0}\n"
    )
    spec = load_spec(path)
    assert spec.validation == Validation(10, 1.0, 0.2, 0.0)
    assert spec.promotion.golden_tolerance == 0.05 and spec.promotion.breaking_change
    assert spec.promotion.drift_threshold == 0.4
    assert (spec.promotion.suspect_drop, spec.promotion.approval_timeout_hours) == (0.2, 0.5)
    assert spec.promotion.max_importance_share == 0.6
    assert spec.line_of("validation.min_rows") == 34
    assert spec.to_dict()["validation"]["min_rows"] == 10
    assert spec_from_json(spec.to_json()) == spec
