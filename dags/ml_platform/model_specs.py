"""Where model specs live and what the platform derives from their place.

A spec is `<model>.model.yaml` (ml_contract) in the folder of the DAG that trains the model:
dags/ for the platform's own pipeline, dags/teams/<team>/ for a team's. The folder decides
the owning team, the dataset prefix the team's data lands under and where its own trainer
images are built from (dags/teams/<team>/images/<name>/Dockerfile).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ml_contract import SPEC_SUFFIX, ModelSpec, SpecError, load_spec

DAGS_FOLDER = Path(__file__).resolve().parents[1]
PLATFORM_TEAM = "ml-platform"  # owner of the DAGs at the top of dags/
TEAMS_DIR = "teams"
IMAGES_DIR = "images"  # dags/teams/<team>/images/<name>/Dockerfile: the team's own images


def spec_files(root: Path = DAGS_FOLDER) -> list[Path]:
    """Every spec under the DAGs folder, sorted."""
    return sorted(path for path in root.rglob(f"*{SPEC_SUFFIX}") if path.is_file())


@cache
def spec_models(root: Path = DAGS_FOLDER) -> dict[str, Path]:
    """Model name -> its spec file, for every spec under the DAGs folder that reads. A spec
    that does not read is left out: its own DAG fails to parse with its error, so nothing is
    deployed under its name."""
    models = {}
    for path in spec_files(root):
        try:
            models[load_spec(path).model] = path
        except SpecError:
            continue
    return models


def team_of(path: Path, root: Path = DAGS_FOLDER) -> str:
    """The team owning a file: dags/teams/<team>/... -> <team>; the platform's otherwise."""
    resolved = Path(path).resolve()
    try:
        parts = resolved.relative_to(root.resolve()).parts
    except ValueError:
        # Outside this DAGs folder (a scaffold's, a test's): the last dags/teams/ of the path.
        full = resolved.parts
        starts = [i for i in range(len(full) - 1) if full[i : i + 2] == ("dags", TEAMS_DIR)]
        parts = full[starts[-1] + 1 :] if starts else ()
    return parts[1] if len(parts) > 2 and parts[0] == TEAMS_DIR else PLATFORM_TEAM


def spec_beside(dag_file: str | Path, spec_name: str) -> ModelSpec:
    """The spec `<spec_name>.model.yaml` beside a DAG file (call with `__file__`)."""
    return load_spec(Path(dag_file).resolve().with_name(spec_name + SPEC_SUFFIX))


def dataset_prefix(team: str) -> str:
    """Where a team's data lives below the datasets URI ('' for the platform's own)."""
    return "" if team == PLATFORM_TEAM else f"{TEAMS_DIR}/{team}"


def model_dataset_prefix(team: str, model: str) -> str:
    """Below the datasets URI, the folder of one model's daily/ and prepared/ data.

    The platform's own model keeps the top level (its data predates teams); a team's model
    gets teams/<team>/<model>, so that no two teams' DAGs write to the same place.
    """
    prefix = dataset_prefix(team)
    return f"{prefix}/{model}" if prefix else ""


@dataclass(frozen=True)
class TeamImage:
    team: str
    name: str
    folder: Path  # the build context, holding the Dockerfile

    @property
    def dockerfile(self) -> Path:
        return self.folder / "Dockerfile"


def team_image(spec_or_dag_file: str | Path, name: str) -> TeamImage:
    """The image `name` of the team owning the file (a spec or DAG beside its images/)."""
    path = Path(spec_or_dag_file).resolve()
    return TeamImage(team_of(path), name, path.parent / IMAGES_DIR / name)


def team_images(root: Path = DAGS_FOLDER) -> list[TeamImage]:
    """Every team image under a DAGs folder (dags/teams/*/images/*/Dockerfile), sorted."""
    return [
        TeamImage(dockerfile.parts[-4], dockerfile.parts[-2], dockerfile.parent)
        for dockerfile in sorted(Path(root).glob(f"{TEAMS_DIR}/*/{IMAGES_DIR}/*/Dockerfile"))
        if dockerfile.is_file()
    ]
