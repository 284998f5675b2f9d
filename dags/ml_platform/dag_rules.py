"""The platform's rules for a parsed DAG: an owner (the team), tags, and a retry policy.

Shared by `make check-dags` and the dag_policy Airflow runs on every DAG it parses.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from ml_platform.violations import Violation

TEAMS_FOLDER = ("dags", "teams")  # dags/teams/<team>/<dag>.py belongs to <team>


def team_of(fileloc: str | None) -> str | None:
    """The team owning a DAG file by its folder (dags/teams/<team>/...), else None."""
    parts = PurePath(fileloc or "").parts
    return parts[-2] if len(parts) >= 4 and parts[-4:-2] == TEAMS_FOLDER else None


def _default_owner() -> str:
    from airflow.configuration import conf

    return conf.get("operators", "default_owner", fallback="airflow")


def dag_violations(dag: Any) -> list[Violation]:
    """Owner, tags and retries of one DAG object."""
    found: list[Violation] = []
    team = team_of(dag.fileloc)
    example_owner = team or "<your team>"
    default_args = dag.default_args or {}
    unowned = [t.task_id for t in dag.tasks if t.owner in ("", None, _default_owner())]
    if unowned or (not dag.tasks and not default_args.get("owner")):
        tasks = f" (tasks {', '.join(unowned[:3])} run as {_default_owner()!r})" if unowned else ""
        found.append(
            Violation(
                "MLP101",
                f"DAG {dag.dag_id!r} has no owner{tasks}",
                f"set default_args={{'owner': {example_owner!r}, ...}}",
            )
        )
    elif team:
        others = sorted({t.owner for t in dag.tasks} - {team})
        if others:
            found.append(
                Violation(
                    "MLP101",
                    f"DAG {dag.dag_id!r} is owned by {', '.join(others)}, "
                    f"but lives in the {team!r} team's folder",
                    f"set default_args['owner'] = {team!r}, or move the file to that team's folder",
                )
            )
    if not dag.tags:
        found.append(
            Violation(
                "MLP102",
                f"DAG {dag.dag_id!r} has no tags",
                f"pass tags=[{f'team:{example_owner}'!r}, ...] to the DAG, so the UI can filter it",
            )
        )
    if "retries" not in default_args:
        found.append(
            Violation(
                "MLP103",
                f"DAG {dag.dag_id!r} sets no retries in default_args (tasks would not retry)",
                "add 'retries': 2 and 'retry_delay': timedelta(minutes=1) to default_args; "
                "a task that must not retry can still pass retries=0",
            )
        )
    return found
