"""The local runtime loads DAGs as the DAG processor does: a file that does not load is
reported in one line (path:line: CODE) and skipped, and every other file's DAG still runs."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from ml_platform.checks.runner import import_error_line
from ml_platform.local.run_dag import load_dag

CHECKS = Path(__file__).resolve().parents[1] / "checks"


@pytest.fixture
def mixed_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(CHECKS / "good_dags" / "textbook_gpu_pod.py", tmp_path)
    shutil.copy(CHECKS / "bad_dags" / "import_error.py", tmp_path)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    return tmp_path


def test_a_broken_file_does_not_stop_another_dag(
    mixed_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        dag = load_dag("good_textbook_gpu_pod")
    assert dag.dag_id == "good_textbook_gpu_pod"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "import_error.py:9: MLP001 the file does not import: ImportError" in warnings[0]
    assert "\n" not in warnings[0]


def test_the_broken_file_is_named_when_its_dag_is_asked_for(mixed_folder: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        load_dag("bad_import_error")
    message = str(exited.value)
    assert "no DAG 'bad_import_error'" in message
    assert "import_error.py:9: MLP001" in message
    assert "\n" not in message


def test_a_refused_file_keeps_the_policy_line() -> None:
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/x/dags/churn.py", line 3, in <module>\n'
        "airflow.exceptions.AirflowClusterPolicyViolation: dags/churn.py:11: MLP101 DAG "
        "'fraud.churn' has no owner (default_args={'owner': 'fraud'})\n"
    )
    assert import_error_line("/x/dags/churn.py", traceback) == (
        "dags/churn.py:11: MLP101 DAG 'fraud.churn' has no owner (default_args={'owner': 'fraud'})"
    )
