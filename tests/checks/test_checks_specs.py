"""`make check-dags` on model specs and team trainer images (MLP401-MLP404).

bad_specs/ is a DAGs folder of its own: platform specs at the top, team `vision` (and
`audio`, whose image `vision` must not borrow) under teams/. Each bad file marks the line its
finding must name (`# expect: CODE`, or `# expect next: CODE` in a Dockerfile); the files
without a mark are the good examples and must have no finding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from checks_testkit import BAD_SPECS, DAGS, REPO, CheckRun, expected_marks, run_checks, shown_path

from ml_platform.checks.runner import check_files, dag_files
from ml_platform.checks.spec_rules import dags_root, dockerfile_instructions, spec_findings
from ml_platform.model_specs import DAGS_FOLDER

SPEC_CODES = {"MLP401", "MLP402", "MLP403", "MLP404"}
FIXTURES = sorted(
    p for p in BAD_SPECS.rglob("*") if p.name.endswith(".model.yaml") or p.name == "Dockerfile"
)
# What each finding's message (or the change it asks for) must say, per bad file.
MESSAGES = {
    "unknown_dtype.model.yaml": ["dataset.columns.size.dtype: 'float32' is not a dtype"],
    "missing_task.model.yaml": ["task: is required", "docs/ml-teams.md"],
    "duplicate_a.model.yaml": ["'dup-model' is also", "duplicate_b.model.yaml:2"],
    "duplicate_b.model.yaml": ["'dup-model' is also", "duplicate_a.model.yaml:2"],
    "platform_team_image.model.yaml": ["'vision-trainer'", "team 'ml-platform'", "image: trainer"],
    "missing_image.model.yaml": ["'no-such-image'", "images/no-such-image does not exist"],
    "borrowed_image.model.yaml": ["an image of team audio", "teams/vision/images/audio-trainer"],
    "shell-entrypoint/Dockerfile": ["ENTRYPOINT python -m train is in shell form"],
    "no-base-arg/Dockerfile": ["no `ARG TRAINER_BASE`", "builds on 'python:3.11-slim'"],
    "missing-module/Dockerfile": ["module 'serve', but the image folder has no serve.py"],
    "no-entrypoint/Dockerfile": ["sets no ENTRYPOINT"],
}


def _key(path: Path) -> str:
    return path.name if path.name != "Dockerfile" else f"{path.parent.name}/Dockerfile"


@pytest.fixture(scope="session")
def spec_run() -> CheckRun:
    """The command line over bad_specs/ (no DAG files in it, so no parse timing to wait for)."""
    return run_checks("--no-parse-time", str(BAD_SPECS))


def test_every_spec_rule_has_a_bad_file_and_every_bad_file_a_message() -> None:
    marked = {p for p in FIXTURES if expected_marks(p)}
    assert {code for p in marked for _, code in expected_marks(p)} == SPEC_CODES
    assert sorted(MESSAGES) == sorted(_key(p) for p in marked)


@pytest.mark.parametrize("path", FIXTURES, ids=[str(p.relative_to(BAD_SPECS)) for p in FIXTURES])
def test_each_file_gets_exactly_its_findings_at_its_lines(spec_run: CheckRun, path: Path) -> None:
    findings = [f for f in spec_run.findings() if f["path"] == shown_path(path)]
    assert {(int(f["line"]), f["code"]) for f in findings} == expected_marks(path), spec_run.stdout
    text = " ".join(f["text"] for f in findings)
    for fragment in MESSAGES.get(_key(path), []):
        assert fragment in text


def test_spec_findings_fail_the_command_sorted_with_the_others(spec_run: CheckRun) -> None:
    assert spec_run.returncode == 1, spec_run.stderr
    found = spec_run.findings()
    assert found and {f["code"] for f in found} == SPEC_CODES
    places = [(f["path"], int(f["line"]), f["code"]) for f in found]
    assert places == sorted(places)
    assert spec_run.stdout.strip().splitlines()[-1].startswith(f"check-dags: {len(found)} finding")


def test_a_malformed_spec_is_one_finding_naming_its_line(tmp_path: Path) -> None:
    """The runner as the CLI calls it: a spec among DAG files, its YAML error on its line."""
    (tmp_path / "bad.model.yaml").write_text("model: x\ntask: binary\n  dataset: [\n")
    findings = check_files([str(tmp_path)], stacks={"none": {}})
    assert [(f.line, f.code) for f in findings] == [(3, "MLP401")]
    assert findings[0].message.startswith("not valid YAML (")


def test_a_spec_named_on_the_command_line_is_checked_as_a_spec() -> None:
    spec = BAD_SPECS / "unknown_dtype.model.yaml"
    assert dag_files([str(spec)]) == []
    run = run_checks("--no-parse-time", str(spec))
    assert [(f["line"], f["code"]) for f in run.findings()] == [("10", "MLP401")], run.stdout


def test_every_spec_and_team_image_of_the_repository_passes() -> None:
    assert (DAGS / "churn_classifier.model.yaml").is_file()
    assert [str(f) for f in spec_findings([str(DAGS)])] == []


def test_a_folder_inside_dags_is_read_from_the_dags_root() -> None:
    """Checking dags/teams/<team> alone still finds the team's images under dags/."""
    assert dags_root(DAGS / "teams" / "fraud") == DAGS_FOLDER
    assert dags_root(DAGS / "teams" / "fraud" / "churn.model.yaml") == DAGS_FOLDER
    assert dags_root(BAD_SPECS) == BAD_SPECS


def test_a_duplicate_across_teams_names_both_files(tmp_path: Path) -> None:
    good = (BAD_SPECS / "teams" / "vision" / "good.model.yaml").read_text()
    for team in ("a", "b"):
        (tmp_path / "teams" / team).mkdir(parents=True)
        text = good.replace("image: vision-trainer", "image: trainer")
        (tmp_path / "teams" / team / "m.model.yaml").write_text(text)
    findings = spec_findings([str(tmp_path)])
    assert [(f.code, f.line) for f in findings] == [("MLP402", 2), ("MLP402", 2)]
    assert "teams/b/m.model.yaml:2" in findings[0].message
    assert "teams/a/m.model.yaml:2" in findings[1].message


def test_dockerfile_reading_joins_continuations_and_skips_heredocs() -> None:
    text = (BAD_SPECS / "teams/vision/images/multistage-trainer/Dockerfile").read_text()
    instructions = [(i.line, i.name, i.args) for i in dockerfile_instructions(text)]
    assert [name for _, name, _ in instructions] == [
        "ARG", "FROM", "RUN", "FROM", "COPY", "RUN", "ENTRYPOINT", "FROM", "COPY",
    ]  # fmt: skip
    assert (6, "RUN", "pip wheel --no-deps --wheel-dir /wheels pyyaml") in instructions
    assert (14, "ENTRYPOINT", '[ "python", "-m", "fit.main" ]') in instructions


def test_repository_paths_are_shown_relative(spec_run: CheckRun) -> None:
    assert all(not f["path"].startswith(str(REPO)) for f in spec_run.findings())
