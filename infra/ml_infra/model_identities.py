"""One read-only MLflow login per served model: a compromised model server reads its own
model and nothing else.

The models are those of the model specs (`<model>.model.yaml`, ml_contract) in the
repository's DAG folder (`ml-platform:airflow.dags.subdir`), the files the DAGs themselves
read; a spec's folder decides its team as in ml_platform.model_specs.team_of
(dags/teams/<team>/..., the platform's own at the top). Each model gets the login
`serve-<model>` and the Secret `serve-<model>-mlflow` in the serving namespace; the deployer
grants that login READ on that model alone. The names come from the model name by the rule
of ml_contract.serving, which the DAG library names them by too (ml_platform.serving_identity),
so a new spec needs no change to the platform document.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ml_contract import SPEC_SUFFIX, SpecError, load_spec
from ml_contract.serving import serving_secret, serving_user
from ml_infra.config import PLATFORM_TEAM, StackConfig
from ml_infra.config_reader import StackConfigError

REPOSITORY = Path(__file__).resolve().parents[2]
TEAMS_DIR = "teams"  # dags/teams/<team>/ (ml_platform.model_specs.TEAMS_DIR)


@dataclass(frozen=True)
class ModelIdentity:
    model: str
    team: str
    spec_file: str  # relative to the repository, for messages

    @property
    def serving_user(self) -> str:
        return serving_user(self.model)

    @property
    def serving_secret(self) -> str:  # in the serving namespace
        return serving_secret(self.model)


def spec_team(relative: Path) -> str:
    """The team owning a spec, from its path below the DAG folder."""
    parts = relative.parts
    return parts[1] if len(parts) > 2 and parts[0] == TEAMS_DIR else PLATFORM_TEAM


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPOSITORY))
    except ValueError:
        return str(path)


def dags_folder(config: StackConfig, repository: Path = REPOSITORY) -> Path:
    return repository / config.airflow.dags.subdir


def model_identities(config: StackConfig, repository: Path = REPOSITORY) -> list[ModelIdentity]:
    """Every model of the stack's DAG folder in `repository` (this one; another in tests),
    sorted by model name; StackConfigError (one line naming the spec file) for a bad spec, a
    model of a team not on the stack, or a model name two specs share."""
    folder = dags_folder(config, repository)
    return list(_read_models(folder, (PLATFORM_TEAM, *config.teams)))


@cache
def _read_models(folder: Path, teams: tuple[str, ...]) -> tuple[ModelIdentity, ...]:
    if not folder.is_dir():
        raise StackConfigError(
            f"ml-platform:airflow.dags.subdir: {_shown(folder)} is not a folder of the repository"
        )
    found: dict[str, ModelIdentity] = {}
    users: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob(f"*{SPEC_SUFFIX}") if p.is_file()):
        shown = _shown(path)
        try:
            model = load_spec(path).model
        except SpecError as exc:
            raise StackConfigError(str(exc).replace(str(path), shown)) from None
        team = spec_team(path.relative_to(folder))
        if team not in teams:
            raise StackConfigError(
                f"{shown}: model {model!r} belongs to team {team!r} (its folder), which is not "
                "in ml-platform:teams of this stack; add the team there"
            )
        if model in found:
            raise StackConfigError(
                f"{shown}: model {model!r} is also the model of {found[model].spec_file}; "
                "a registered model name belongs to one spec"
            )
        identity = ModelIdentity(model, team, shown)
        if identity.serving_user in users:
            raise StackConfigError(
                f"{shown}: model {model!r} would share the serving login "
                f"{identity.serving_user!r} with model {users[identity.serving_user]!r}; "
                "rename one"
            )
        found[model] = identity
        users[identity.serving_user] = model
    return tuple(sorted(found.values(), key=lambda m: m.model))
