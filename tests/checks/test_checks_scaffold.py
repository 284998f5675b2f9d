"""`make new-dag`: what it refuses, what it writes, and that the result passes and runs.

The scaffolds are written once per session into a throwaway repository layout (the
`scaffold_root` fixture); the `checked` fixture ran `check-dags` over them with the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from checks_testkit import DAGS, REPO, SCAFFOLD_TEAM, SCAFFOLDS, CheckRun

from ml_platform.checks.runner import check_files
from ml_platform.local.mlflow_server import free_port
from ml_platform.scaffold.new_dag import ScaffoldError, plan, scaffold_dag


def _new_dag(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml_platform.scaffold", "--root", str(root), *args],
        env={**os.environ, "PYTHONPATH": str(DAGS)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--team", "fraud"], "NAME is required: make new-dag NAME=<name> TEAM=<team>"),
        (
            ["--team", "Fraud-Team", "--name", "x"],
            "TEAM='Fraud-Team' is not allowed: use 1-30 lowercase letters, digits and "
            "underscores, starting with a letter (e.g. TEAM=fraud_team)",
        ),
        (["--team", "fraud", "--name", "2nd"], "(e.g. NAME=dag_2nd)"),
        (["--team", "fraud", "--name", "churn_score"], "churn_score.py already exists"),
    ],
)
def test_bad_requests_get_one_line_and_exit_2(
    scaffold_root: Path, args: list[str], message: str
) -> None:
    done = _new_dag(scaffold_root, *args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_test_file_names_stay_unique_across_teams(tmp_path: Path) -> None:
    """Team a_b's DAG c and team a's DAG b_c would both have test_a_b_c.py."""
    (tmp_path / "tests").mkdir()
    scaffold_dag(tmp_path, "a_b", "c", trainer=False, today=date(2026, 1, 1))
    with pytest.raises(ScaffoldError, match="test_a_b_c.py already exists"):
        plan(tmp_path, "a", "b_c", trainer=False)


def test_it_writes_the_dag_its_test_and_the_owners(scaffold_root: Path) -> None:
    team = scaffold_root / "dags" / "teams" / SCAFFOLD_TEAM
    assert sorted(p.name for p in team.iterdir()) == [
        "churn_preset.py",
        "churn_preset.trainer.json",
        "churn_score.py",
    ]
    tests = scaffold_root / "tests" / "teams" / SCAFFOLD_TEAM
    assert sorted(p.name for p in tests.iterdir()) == [
        f"test_{SCAFFOLD_TEAM}_{name}.py" for name in sorted(SCAFFOLDS)
    ]
    owners = (scaffold_root / ".github" / "CODEOWNERS").read_text().splitlines()
    assert owners[-2:] == [
        f"/dags/teams/{SCAFFOLD_TEAM}/ @ml-platform/{SCAFFOLD_TEAM}",
        f"/tests/teams/{SCAFFOLD_TEAM}/ @ml-platform/{SCAFFOLD_TEAM}",
    ]


def test_the_scaffolds_pass_check_dags(scaffold_root: Path, checked: CheckRun) -> None:
    mine = [f for f in checked.findings() if f["path"].startswith(str(scaffold_root))]
    assert mine == []
    assert "ml_training_pipeline" not in checked.stderr  # the run itself did not crash


def test_the_scaffolds_are_lint_clean(scaffold_root: Path) -> None:
    ruff = str(Path(sys.executable).with_name("ruff"))
    config = str(REPO / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [ruff, *command, "--config", config, str(scaffold_root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_generated_tests_pass(scaffold_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/teams"],
        cwd=scaffold_root,
        env={**os.environ, "PYTHONPATH": str(DAGS)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "13 passed" in done.stdout  # 6 tests per DAG, one more for the preset


def test_a_bad_preset_value_names_the_preset_line(scaffold_root: Path, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    dag_file = dags / "churn_preset.py"
    dag_file.write_text((scaffold_root / "dags/teams/fraud/churn_preset.py").read_text())
    preset = json.loads((scaffold_root / "dags/teams/fraud/churn_preset.trainer.json").read_text())
    preset["learning_rate"] = -1
    (dags / "churn_preset.trainer.json").write_text(json.dumps(preset, indent=2))
    findings = check_files([str(dag_file)])
    assert [f.code for f in findings] == ["MLP001"]
    assert (
        "churn_preset.trainer.json:2: learning_rate: -1 is less than or equal to the minimum"
        in (findings[0].message)
    )


@pytest.mark.slow
def test_run_dag_runs_the_scaffold(scaffold_root: Path, tmp_path: Path) -> None:
    """`make run-dag` for real: MLflow server, generated partition, every step, the report."""
    done = subprocess.run(
        [sys.executable, "-m", "ml_platform.local.demo", "--dag", f"{SCAFFOLD_TEAM}.churn_score"]
        + ["--dags-folder", str(scaffold_root / "dags"), "--local-dir", str(tmp_path)]
        + ["--mlflow-port", str(free_port()), "--rows", "1500", "--date", "2026-11-20"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(DAGS)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = done.stdout[done.stdout.index("DAG run ") :]
    assert ": success in " in summary.splitlines()[0]
    for task_id in ("wait_for_data", "preprocess", "train", "check_quality"):
        assert any(line.split()[:2] == [task_id, "success"] for line in summary.splitlines())
    assert '"val_roc_auc": 0.' in summary
    assert (tmp_path / "datasets/daily/2026-11-20/data.parquet").exists()
