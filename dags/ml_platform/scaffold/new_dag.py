"""Scaffold a team's model: its spec, its DAG, its test and (optionally) its own trainer image.

The DAG is dags/teams/<team>/<name>.py with dag_id `<team>.<name>`: unique across teams by
construction; it is the platform's training pipeline (ml_platform.training_dag) for the spec
<name>.model.yaml beside it, whose model is `<team>-<name>` (dashes for underscores: model
names have none). With --trainer, the spec names a team image, images/<name>-trainer/ beside
it: a Dockerfile FROM the platform trainer and a module written against trainer.sdk.
Its test is tests/teams/<team>/test_<team>_<name>.py: tests/ has no __init__.py files, so
pytest imports each test module by its file name, and two teams' tests named alike would
collide. A new team also gets its CODEOWNERS lines.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from string import Template

from ml_contract import SPEC_SUFFIX, SpecError, load_spec

TEMPLATES = Path(__file__).with_name("templates")
REPO_ROOT = Path(__file__).resolve().parents[3]
# 30 characters at most: generated lines that name the team and the DAG stay short.
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
CODEOWNERS_ORG = "ml-platform"  # GitHub organization; its team slugs are the folder names
PLATFORM_SWEEP = """\
    # The sweep: one train pod per combination; a run can change these params.
    sweep={"learning_rates": [0.001, 0.003], "epochs": 5},
"""
TEAM_SWEEP = """\
    # The sweep over your image's flags: one train pod per combination (--max-depth 2, ...).
    sweep={"max_depth": [2, 3], "n_estimators": [50]},
    train_resources=TrainResources(gpus=0, cpu="1", memory="2Gi"),  # trees need no GPU
"""
TRAINER_TEST = """

def test_train_runs_the_teams_own_image(dag: DAG) -> None:
    image = build_task_pod(dag, "train").spec.containers[0].image
    team = DAG_ID.split(".")[0]
    assert image == platform_config().images.team_ref(team, SPEC.trainer.image)
    assert (DAG_FILE.parent / "images" / SPEC.trainer.image / "Dockerfile").is_file()
"""


class ScaffoldError(ValueError):
    """The request cannot be scaffolded; the message says what to pass instead."""


@dataclass(frozen=True)
class Scaffold:
    """What `make new-dag` writes, relative to the repository root."""

    root: Path
    team: str
    name: str
    trainer: bool

    @property
    def dag_id(self) -> str:
        return f"{self.team}.{self.name}"

    @property
    def model(self) -> str:
        return f"{self.team}-{self.name}".replace("_", "-")

    @property
    def image(self) -> str:
        """The spec's trainer image: the platform's, or the team's own."""
        return f"{self.name.replace('_', '-')}-trainer" if self.trainer else "trainer"

    @property
    def module(self) -> str:
        return f"{self.name}_trainer"

    @property
    def dag_file(self) -> Path:
        return Path("dags", "teams", self.team, f"{self.name}.py")

    @property
    def spec_file(self) -> Path:
        return self.dag_file.with_name(self.name + SPEC_SUFFIX)

    @property
    def image_dir(self) -> Path:
        return self.dag_file.parent / "images" / self.image

    @property
    def test_file(self) -> Path:
        return Path("tests", "teams", self.team, f"test_{self.team}_{self.name}.py")

    @property
    def owners_lines(self) -> list[str]:
        owner = f"@{CODEOWNERS_ORG}/{self.team}"
        return [f"/dags/teams/{self.team}/ {owner}", f"/tests/teams/{self.team}/ {owner}"]


def _check_identifier(kind: str, value: str) -> None:
    if not value:
        raise ScaffoldError(f"{kind} is required: make new-dag NAME=<name> TEAM=<team> [TRAINER=1]")
    if not IDENTIFIER.match(value):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_") or "churn_model"
        if not suggestion[0].isalpha():
            suggestion = f"dag_{suggestion}"
        raise ScaffoldError(
            f"{kind}={value!r} is not allowed: use 1-30 lowercase letters, digits and "
            f"underscores, starting with a letter (e.g. {kind}={suggestion[:30]})"
        )


def _model_taken_by(root: Path, model: str) -> Path | None:
    """The spec already registering `model`, if any (registered models are platform-wide)."""
    for path in sorted((root / "dags").rglob(f"*{SPEC_SUFFIX}")):
        try:
            if load_spec(path).model == model:
                return path
        except SpecError:
            continue  # a broken spec is for check-dags to report
    return None


def plan(root: Path, team: str, name: str, trainer: bool) -> Scaffold:
    """Validate the request; raise ScaffoldError naming what is wrong and what to pass."""
    _check_identifier("TEAM", team)
    _check_identifier("NAME", name)
    scaffold = Scaffold(root, team, name, trainer)
    wanted = [scaffold.dag_file, scaffold.spec_file] + ([scaffold.image_dir] if trainer else [])
    for path in wanted:
        if (root / path).exists():
            raise ScaffoldError(f"{path} already exists: pick another NAME, or edit that file")
    clash = next((root / "tests").rglob(scaffold.test_file.name), None)
    if clash:
        raise ScaffoldError(
            f"{clash.relative_to(root)} already exists, and pytest needs unique test file "
            "names: pick another NAME"
        )
    taken = _model_taken_by(root, scaffold.model)
    if taken:
        raise ScaffoldError(
            f"model {scaffold.model!r} is already {taken.relative_to(root)}'s: pick another NAME"
        )
    return scaffold


def _render(template: str, **values: str) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def render(scaffold: Scaffold, today: date) -> dict[Path, str]:
    """File path -> content, for every file the scaffold writes."""
    values = {
        "dag_id": scaffold.dag_id,
        "team": scaffold.team,
        "name": scaffold.name,
        "model": scaffold.model,
        "image": scaffold.image,
        "module": scaffold.module,
        # Early in the year, so that `make run-dag ARGS='--date ...'` can run past days too.
        "start_date": f"{today.year}, 1, 1",
    }
    trainer = scaffold.trainer
    dag_values = {
        "factory_imports": "TrainResources, training_dag" if trainer else "training_dag",
        "sweep": TEAM_SWEEP if trainer else PLATFORM_SWEEP,
    }
    test_values = {
        "train_gpus": "0" if trainer else "1",
        "combinations": "2",
        "trainer_test": TRAINER_TEST if trainer else "",
    }
    files = {
        scaffold.spec_file: _render("team_spec.model.yaml.tmpl", **values),
        scaffold.dag_file: _render("team_dag.py.tmpl", **values, **dag_values),
        scaffold.test_file: _render("team_dag_test.py.tmpl", **values, **test_values),
    }
    if trainer:
        files[scaffold.image_dir / "Dockerfile"] = _render("team_trainer.Dockerfile.tmpl", **values)
        files[scaffold.image_dir / f"{scaffold.module}.py"] = _render(
            "team_trainer.py.tmpl", **values
        )
    return files


def add_code_owners(root: Path, scaffold: Scaffold) -> list[str]:
    """Give a new team's folders to the team in .github/CODEOWNERS; the lines added."""
    owners = root / ".github" / "CODEOWNERS"
    if not owners.exists():
        return []
    text = owners.read_text()
    patterns = {line.split()[0] for line in text.splitlines() if line.split()}
    added = [line for line in scaffold.owners_lines if line.split()[0] not in patterns]
    if added:
        owners.write_text(text.rstrip("\n") + "\n" + "\n".join(added) + "\n")
    return added


# infra/Pulumi.<stack>.yaml: the teams with identities on each stack (a flow list, one line).
_TEAMS_LINE = re.compile(
    r"^(?P<indent>\s*)ml-platform:teams:\s*\[(?P<teams>[^\]]*)\](?P<rest>.*)$", re.M
)


def stacks_with_team(root: Path, team: str) -> dict[Path, str]:
    """Onboarding a new team: each stack file of the repo that lacks `team` in
    `ml-platform:teams`, with its new text (the platform team reviews that part of the pull
    request; `pulumi up` then creates the team's service account, MLflow logins and storage
    key). Raises before anything is written when a file has no such line."""
    edits = {}
    for path in sorted((root / "infra").glob("Pulumi.*.yaml")):
        text = path.read_text()
        match = _TEAMS_LINE.search(text)
        if match is None:
            raise ScaffoldError(
                f"{path.relative_to(root)}: no one-line `ml-platform:teams: [...]` to add team "
                f"{team!r} to; add it there by hand"
            )
        teams = [t.strip() for t in match["teams"].split(",") if t.strip()]
        if team not in teams:
            line = f"{match['indent']}ml-platform:teams: [{', '.join([*teams, team])}]"
            edits[path] = text[: match.start()] + line + match["rest"] + text[match.end() :]
    return edits


def trainer_example_call(scaffold: Scaffold, root: Path, day: date) -> str:
    """The team image's train step by hand, as the DAG's train task runs it locally."""
    data = (root / ".local" / "datasets" / "teams" / scaffold.team / scaffold.model).resolve()
    return (
        f"MLFLOW_TRACKING_URI=http://127.0.0.1:5000 PYTHONPATH={scaffold.image_dir} "
        f".venv/bin/python -m {scaffold.module} --xcom-path .local/{scaffold.name}-train.json "
        f"train --spec {scaffold.spec_file} "
        f"--data-uri file://{data}/prepared/{day.isoformat()} "
        f"--experiment {scaffold.model} --max-depth 2"
    )


def scaffold_dag(root: Path, team: str, name: str, trainer: bool, today: date) -> list[str]:
    """Write the files; return the lines `make new-dag` prints."""
    scaffold = plan(root, team, name, trainer)
    files = render(scaffold, today)
    stack_edits = stacks_with_team(root, team)
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    lines = [f"new-dag: created the DAG {scaffold.dag_id} (owner {team}, model {scaffold.model})"]
    notes = {
        scaffold.spec_file: "the model spec: data contract, metric, bar, trainer",
        scaffold.dag_file: "the DAG: the platform pipeline for the spec",
        scaffold.test_file: "its tests",
        scaffold.image_dir / "Dockerfile": "your trainer image, FROM the platform trainer",
        scaffold.image_dir / f"{scaffold.module}.py": "its train step (trainer.sdk)",
    }
    column = max(len(str(path)) for path in files)
    lines += [f"  {str(path):{column}}  {notes[path]}" for path in files]
    owners = add_code_owners(root, scaffold)
    lines += [f"  {'.github/CODEOWNERS':{column}}  + {line}" for line in owners]
    for stack_file, text in stack_edits.items():
        stack_file.write_text(text)
        shown = stack_file.relative_to(root)
        lines.append(f"  {str(shown):{column}}  + team {team} in ml-platform:teams (identities)")
    steps = {
        f"make run-dag DAG={scaffold.dag_id}": "run it locally: MLflow, today's data, Airflow",
        "make check-dags": "the checks your pull request must pass",
        f".venv/bin/pytest {scaffold.test_file.parent} -q": "its tests",
    }
    if trainer:
        steps["make images"] = "build your image (kind): FROM the trainer image"
    width = max(len(command) for command in steps)
    lines += ["next:"] + [f"  {command:{width}}  {what}" for command, what in steps.items()]
    if trainer:
        lines += [
            "  your train step by hand, after a run-dag made the prepared data "
            "(with `make mlflow-ui` serving MLflow):",
            "    " + trainer_example_call(scaffold, root, today),
        ]
    return lines


def main(team: str, name: str, trainer: bool, root: Path = REPO_ROOT) -> int:
    try:
        lines = scaffold_dag(root, team, name, trainer, date.today())
    except ScaffoldError as exc:
        print(f"new-dag: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
