"""The command line's contract: usage errors exit 2 with one line, the budget is a knob."""

from __future__ import annotations

import pytest
from checks_testkit import run_checks

from ml_platform.checks.parse_time import BUDGET_ENV, DEFAULT_BUDGET_S, budget_from_env


def test_a_budget_of_zero_is_a_usage_error() -> None:
    run = run_checks("--parse-budget", "0", "dags")
    assert run.returncode == 2
    assert "--parse-budget 0.0: the budget must be above 0 seconds" in run.stderr


def test_a_bad_budget_in_the_environment_is_a_usage_error() -> None:
    run = run_checks("dags", env={"ML_PLATFORM_PARSE_BUDGET_S": "fast"})
    assert run.returncode == 2
    assert "ML_PLATFORM_PARSE_BUDGET_S='fast': expected seconds, e.g. 0.2" in run.stderr


def test_a_missing_path_is_named() -> None:
    run = run_checks("--no-parse-time", "dags/no_such_dag.py")
    assert run.returncode == 2
    assert run.stderr.strip() == "check-dags: dags/no_such_dag.py: no such file or directory"


def test_the_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUDGET_ENV, "0.5")
    assert budget_from_env() == 0.5
    monkeypatch.delenv(BUDGET_ENV)
    assert budget_from_env() == DEFAULT_BUDGET_S == 0.2
