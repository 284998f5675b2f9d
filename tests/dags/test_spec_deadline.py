"""A model's run deadline comes from its spec (`deadline_hours`), else the factory's default;
the factory's own `deadline` argument wins over both. Bad values name the key and the line."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml_contract import SpecError, load_spec, spec_from_json
from ml_platform.local.notifications import local_notifications
from ml_platform.settings import DEFAULT_CONFIG_FILE, parse_config
from ml_platform.training_dag import DEFAULT_DEADLINE, training_dag

CHURN_SPEC = Path(__file__).resolve().parents[2] / "dags" / "churn_classifier.model.yaml"


def _config():
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    doc["notifications"] = local_notifications()  # a channel, so deadline alerts exist
    return parse_config(doc)


def _dag(spec, **kwargs):
    return training_dag(
        spec, dag_id="deadline_spec", schedule=None, catchup=False, tags=["t"],
        start_date=datetime(2026, 1, 1, tzinfo=UTC), config=_config(), **kwargs,
    )  # fmt: skip


def _with_deadline(tmp_path: Path, value: str) -> Path:
    path = tmp_path / CHURN_SPEC.name
    path.write_text(CHURN_SPEC.read_text() + f"deadline_hours: {value}\n")
    return path


def test_the_specs_deadline_is_the_dags(tmp_path: Path) -> None:
    spec = load_spec(_with_deadline(tmp_path, "3"))
    assert spec.deadline_hours == 3
    # The JSON form the DAG hands the trainer keeps it (the same checks run on both).
    assert spec_from_json(spec.to_json()) == spec
    [alert] = _dag(spec).deadline
    assert alert.interval == timedelta(hours=3)


def test_without_one_the_default_and_the_factorys_argument_win() -> None:
    spec = load_spec(CHURN_SPEC)
    assert spec.deadline_hours is None
    [alert] = _dag(spec).deadline
    assert alert.interval == DEFAULT_DEADLINE
    with_hours = dataclasses.replace(spec, deadline_hours=2.0)
    [alert] = _dag(with_hours, deadline=timedelta(hours=1)).deadline
    assert alert.interval == timedelta(hours=1)
    assert not _dag(with_hours, deadline=None).deadline


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", r"deadline_hours: must be above 0 and at most 168"),
        ("200", r"deadline_hours: must be above 0 and at most 168 \(a week\), got 200"),
        ("soon", r"deadline_hours: "),
    ],
)
def test_a_bad_deadline_names_the_key_and_line(tmp_path: Path, value: str, message: str) -> None:
    path = _with_deadline(tmp_path, value)
    line = len(path.read_text().splitlines())
    with pytest.raises(SpecError, match=rf"{path.name}:{line}: {message}"):
        load_spec(path)
