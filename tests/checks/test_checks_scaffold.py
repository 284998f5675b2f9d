"""`make new-dag`: what it refuses, what it writes, and that the result passes and runs.

The scaffolds are written once per session into a throwaway repository layout (the
`scaffold_root` fixture); the `checked` fixture ran `check-dags` over them with the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from checks_testkit import DAGS, REPO, SCAFFOLD_TEAM, SCAFFOLDS, CheckRun

from deployer.targets.local import stop_all_models
from ml_contract import load_spec
from ml_platform.checks.runner import check_files
from ml_platform.checks.stacks import STACKS_DIR_ENV
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


def test_it_writes_the_spec_the_dag_its_test_and_the_owners(scaffold_root: Path) -> None:
    team = scaffold_root / "dags" / "teams" / SCAFFOLD_TEAM
    assert sorted(str(p.relative_to(team)) for p in team.rglob("*") if p.is_file()) == [
        "churn_preset.model.yaml",
        "churn_preset.py",
        "churn_score.model.yaml",
        "churn_score.py",
        "images/churn-preset-trainer/Dockerfile",
        "images/churn-preset-trainer/churn_preset_trainer.py",
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


def test_the_specs_name_the_model_and_the_trainer(scaffold_root: Path) -> None:
    team = scaffold_root / "dags" / "teams" / SCAFFOLD_TEAM
    plain = load_spec(team / "churn_score.model.yaml")
    own = load_spec(team / "churn_preset.model.yaml")
    assert (plain.model, plain.trainer.image) == (f"{SCAFFOLD_TEAM}-churn-score", "trainer")
    assert (own.model, own.trainer.image) == (
        f"{SCAFFOLD_TEAM}-churn-preset",
        "churn-preset-trainer",
    )
    dockerfile = (team / "images/churn-preset-trainer/Dockerfile").read_text().splitlines()
    assert dockerfile[dockerfile.index("ARG TRAINER_BASE") + 1] == "FROM ${TRAINER_BASE}"
    assert 'ENTRYPOINT ["python", "-m", "churn_preset_trainer"]' in dockerfile


def test_a_model_name_another_spec_has_is_refused(tmp_path: Path) -> None:
    """Registered models are platform-wide: a hand-written spec may hold the name already."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "dags").mkdir()
    churn = (DAGS / "churn_classifier.model.yaml").read_text()
    spec = tmp_path / "dags" / "scoring.model.yaml"
    spec.write_text(churn.replace("model: churn-classifier", "model: fraud-churn-x"))
    with pytest.raises(ScaffoldError, match="model 'fraud-churn-x' is already dags/scoring.model"):
        plan(tmp_path, "fraud", "churn_x", trainer=False)


def test_a_new_team_is_onboarded_on_every_stack(scaffold_root: Path) -> None:
    """The scaffold adds a new team to ml-platform:teams of each stack file, and only once."""
    for stack_file in sorted((scaffold_root / "infra").glob("Pulumi.*.yaml")):
        teams = yaml.safe_load(stack_file.read_text())["config"]["ml-platform:teams"]
        assert teams == ["examples", SCAFFOLD_TEAM], stack_file.name
        original = (REPO / "infra" / stack_file.name).read_text()
        assert stack_file.read_text() == original.replace(
            "ml-platform:teams: [examples]", f"ml-platform:teams: [examples, {SCAFFOLD_TEAM}]"
        )


def test_a_stack_file_without_a_teams_line_stops_the_scaffold(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "Pulumi.kind.yaml").write_text("config:\n  ml-platform:cloud: kind\n")
    done = _new_dag(tmp_path, "--team", "risk", "--name", "score")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "new-dag: infra/Pulumi.kind.yaml: no one-line `ml-platform:teams: [...]` to add team "
        "'risk' to; add it there by hand"
    )
    assert not (tmp_path / "dags").exists()  # nothing written


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
        env={
            **os.environ,
            "PYTHONPATH": str(DAGS),
            STACKS_DIR_ENV: str(scaffold_root / "infra"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "13 passed" in done.stdout  # 6 tests per DAG, one more for the team image


def test_a_bad_sweep_value_names_the_param(scaffold_root: Path, tmp_path: Path) -> None:
    team = tmp_path / "dags" / "teams" / SCAFFOLD_TEAM
    shutil.copytree(scaffold_root / "dags" / "teams" / SCAFFOLD_TEAM, team)
    dag_file = team / "churn_preset.py"
    dag_file.write_text(dag_file.read_text().replace('"max_depth": [2, 3]', '"max_depth": []'))
    findings = check_files([str(dag_file)])
    assert [f.code for f in findings] == ["MLP001"]
    assert "param max_depth: expected a non-empty list of values" in findings[0].message


def _run_dag(scaffold_root: Path, local_dir: Path, name: str) -> list[str]:
    """`make run-dag` for real on a scaffold: MLflow server, generated data, Airflow; the
    summary it ends with."""
    done = subprocess.run(
        [sys.executable, "-m", "ml_platform.local.demo", "--dag", f"{SCAFFOLD_TEAM}.{name}"]
        + ["--dags-folder", str(scaffold_root / "dags"), "--local-dir", str(local_dir)]
        + ["--mlflow-port", str(free_port()), "--rows", "1500", "--date", "2026-11-20"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(DAGS)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    finally:
        stop_all_models(local_dir / "deployer")
    # The summary comes last, after Airflow's own log lines (some name the DAG run too).
    summary = done.stdout[done.stdout.rindex("\nDAG run ") + 1 :].splitlines()
    assert ": success in " in summary[0]
    data = f"datasets/teams/{SCAFFOLD_TEAM}/{SCAFFOLD_TEAM}-{name.replace('_', '-')}/daily"
    assert (local_dir / data / "2026-11-20/data.parquet").exists()
    return summary


@pytest.mark.slow
def test_run_dag_runs_the_scaffold(scaffold_root: Path, tmp_path: Path) -> None:
    summary = _run_dag(scaffold_root, tmp_path, "churn_score")
    assert summary[1].startswith("  best params:  {")
    assert any("val_roc_auc=0." in line for line in summary)
    assert any(line.startswith("  decision:     ") for line in summary)


@pytest.mark.slow
def test_run_dag_runs_the_scaffolded_team_trainer(scaffold_root: Path, tmp_path: Path) -> None:
    """The TRAINER=1 skeleton trains through trainer.sdk, run as a local process."""
    summary = _run_dag(scaffold_root, tmp_path, "churn_preset")
    assert "'max_depth': 2" in summary[1] or "'max_depth': 3" in summary[1]
    assert any("val_roc_auc=0." in line for line in summary)
