"""Scaffold a team's DAG, its test and (optionally) a trainer preset from the templates here.

The DAG is dags/teams/<team>/<name>.py with dag_id `<team>.<name>`: unique across teams by
construction. Its test is tests/teams/<team>/test_<team>_<name>.py: tests/ has no
__init__.py files, so pytest imports each test module by its file name, and two teams' tests
named alike would collide. A new team also gets its CODEOWNERS line.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).with_name("templates")
REPO_ROOT = Path(__file__).resolve().parents[3]
# 30 characters at most: generated lines that name the team and the DAG stay short.
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
CODEOWNERS_ORG = "ml-platform"  # GitHub organization; its team slugs are the folder names
INLINE_TRAINER_DEFAULTS = """\
# The trainer's hyperparameters: defaults of the params of the same name (a run can override).
TRAINER_DEFAULTS = {
    "learning_rate": 0.001,
    "batch_size": 128,
    "epochs": 5,
    "hidden_sizes": "64,32",
}
"""
PRESET_TRAINER_DEFAULTS = """\
# The trainer's hyperparameters, reviewed as data: defaults of the params of the same name.
TRAINER_DEFAULTS = load_trainer_preset(Path(__file__).with_suffix(".trainer.json"))
"""
PRESET_TEST = """

def test_the_preset_gives_the_param_defaults(dag: DAG) -> None:
    preset = json.loads(DAG_FILE.with_suffix(".trainer.json").read_text())
    assert {name: dag.params[name] for name in preset} == preset
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
    def dag_file(self) -> Path:
        return Path("dags", "teams", self.team, f"{self.name}.py")

    @property
    def test_file(self) -> Path:
        return Path("tests", "teams", self.team, f"test_{self.team}_{self.name}.py")

    @property
    def preset_file(self) -> Path:
        return Path("dags", "teams", self.team, f"{self.name}.trainer.json")

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


def plan(root: Path, team: str, name: str, trainer: bool) -> Scaffold:
    """Validate the request; raise ScaffoldError naming what is wrong and what to pass."""
    _check_identifier("TEAM", team)
    _check_identifier("NAME", name)
    scaffold = Scaffold(root, team, name, trainer)
    wanted = [scaffold.dag_file] + ([scaffold.preset_file] if trainer else [])
    for path in wanted:
        if (root / path).exists():
            raise ScaffoldError(f"{path} already exists: pick another NAME, or edit that file")
    clash = next((root / "tests").rglob(scaffold.test_file.name), None)
    if clash:
        raise ScaffoldError(
            f"{clash.relative_to(root)} already exists, and pytest needs unique test file "
            "names: pick another NAME"
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
        # Early in the year, so that `make run-dag ARGS='--date ...'` can run past days too.
        "start_date": f"{today.year}, 1, 1",
    }
    if scaffold.trainer:
        dag_values = {
            "path_import": "from pathlib import Path\n",
            "trainer_imports": "load_trainer_preset, train_arguments, train_params",
            "trainer_defaults": PRESET_TRAINER_DEFAULTS,
        }
        test_values = {
            "json_import": "import json\n",
            "preset_test": PRESET_TEST,
        }
    else:
        dag_values = {
            "path_import": "",
            "trainer_imports": "train_arguments, train_params",
            "trainer_defaults": INLINE_TRAINER_DEFAULTS,
        }
        test_values = {"json_import": "", "preset_test": ""}
    files = {
        scaffold.dag_file: _render("team_dag.py.tmpl", **values, **dag_values),
        scaffold.test_file: _render("team_dag_test.py.tmpl", **values, **test_values),
    }
    if scaffold.trainer:
        files[scaffold.preset_file] = (TEMPLATES / "trainer_preset.json.tmpl").read_text()
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


def trainer_example_call(scaffold: Scaffold, root: Path, day: date) -> str:
    """The `trainer train` call the DAG's train step makes, with the preset's values."""
    preset = json.loads((root / scaffold.preset_file).read_text())
    data = (root / ".local" / "datasets" / "teams" / scaffold.team / scaffold.name).resolve()
    flags = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in preset.items())
    return (
        f"MLFLOW_TRACKING_URI=http://127.0.0.1:5000 .venv/bin/trainer "
        f"--xcom-path .local/{scaffold.name}-train.json train "
        f"--data-uri file://{data}/prepared/{day.isoformat()} "
        f"--experiment {scaffold.dag_id} {flags}"
    )


def scaffold_dag(root: Path, team: str, name: str, trainer: bool, today: date) -> list[str]:
    """Write the files; return the lines `make new-dag` prints."""
    scaffold = plan(root, team, name, trainer)
    files = render(scaffold, today)
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    lines = [f"new-dag: created the DAG {scaffold.dag_id} (owner {team})"]
    notes = {
        scaffold.dag_file: "the DAG",
        scaffold.test_file: "its tests",
        scaffold.preset_file: "the trainer's hyperparameters (defaults of the DAG's params)",
    }
    lines += [f"  {str(path):48} {notes[path]}" for path in files]
    lines += [f"  {'.github/CODEOWNERS':48} + {line}" for line in add_code_owners(root, scaffold)]
    steps = {
        f"make run-dag DAG={scaffold.dag_id}": "run it locally: MLflow, today's data, Airflow",
        "make check-dags": "the checks your pull request must pass",
        f".venv/bin/pytest {scaffold.test_file.parent} -q": "its tests",
    }
    width = max(len(command) for command in steps)
    lines += ["next:"] + [f"  {command:{width}}  {what}" for command, what in steps.items()]
    if trainer:
        lines += [
            "  the train step by hand, after a run-dag made the prepared data "
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
