"""Shared by the DAG-check tests: a throwaway AIRFLOW_HOME, the scaffolds, one checks run.

Airflow reads AIRFLOW_HOME once, when `airflow` is first imported, so it is pointed at a
temporary folder here, before any test module imports Airflow (as in tests/dags/conftest.py).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from checks_testkit import (
    BAD_DAGS,
    DAGS,
    GOOD_DAGS,
    REPO,
    SCAFFOLD_TEAM,
    SCAFFOLDS,
    CheckRun,
    run_checks,
)

from ml_platform.checks.stacks import STACKS_DIR_ENV

if "airflow" not in sys.modules:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def scaffold_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository root holding what `make new-dag` writes, for both forms."""
    root = tmp_path_factory.mktemp("repo")
    (root / "tests" / "teams").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "teams" / "conftest.py", root / "tests" / "teams")
    (root / ".github").mkdir()
    shutil.copy(REPO / ".github" / "CODEOWNERS", root / ".github")
    (root / "pytest.ini").write_text("[pytest]\n")
    # The stack files, to which the scaffold adds the new team (its identities on each stack).
    (root / "infra").mkdir()
    for stack_file in (REPO / "infra").glob("Pulumi.*.yaml"):
        shutil.copy(stack_file, root / "infra")
    for name, flags in SCAFFOLDS.items():
        subprocess.run(
            [sys.executable, "-m", "ml_platform.scaffold", "--team", SCAFFOLD_TEAM]
            + ["--name", name, "--root", str(root), *flags],
            env={**os.environ, "PYTHONPATH": str(DAGS)},
            check=True,
            capture_output=True,
            timeout=60,
        )
    return root


@pytest.fixture(scope="session")
def checked(scaffold_root: Path) -> CheckRun:
    """One `check-dags` run over dags/, the bad and good fixtures and the scaffolds, against
    the scaffold's stack files (the repository's, with the scaffolded team onboarded)."""
    return run_checks(
        str(DAGS),
        str(BAD_DAGS),
        str(GOOD_DAGS),
        str(scaffold_root / "dags"),
        env={STACKS_DIR_ENV: str(scaffold_root / "infra")},
    )
