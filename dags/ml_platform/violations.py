"""What a platform rule found wrong, and how it is printed: `path:line: CODE message (fix)`.

The same rules run before review (`make check-dags`) and in Airflow (cluster policies), so
both print the same codes; docs/ml-teams.md has an example of each.
"""

from __future__ import annotations

from dataclasses import dataclass

# One line per rule; the codes are stable, so a reviewer can grep for them.
RULES: dict[str, str] = {
    "MLP001": "the DAG file does not import",
    "MLP002": "the DAG file parses slower than the budget",
    "MLP101": "the DAG has no owner, or not the team whose folder it is in",
    "MLP102": "the DAG has no tags",
    "MLP103": "default_args sets no retries",
    "MLP104": "the DAG constructor does not set schedule",
    "MLP105": "the DAG constructor does not set catchup",
    "MLP106": "a Variable or Connection is read at module top level",
    "MLP201": "a container has no CPU and memory requests and limits",
    "MLP202": "a container runs privileged",
    "MLP203": "a pod mounts a hostPath volume",
    "MLP204": "a pod shares the node's network, PID or IPC namespace",
    "MLP205": "a container image is not from the platform registry",
    "MLP206": "a task runs as the deployer account but is not its team's deploy step",
    "MLP207": "a task uses another team's account or credentials, or its team has none on a stack",
    "MLP301": "a pod fits no node pool of a stack",
    "MLP302": "a pod cannot be built offline to be checked",
    "MLP303": "a task runs more pods at once than a stack's pools or GPU quota hold",
    "MLP401": "a model spec is malformed",
    "MLP402": "two model specs name the same registered model",
    "MLP403": "a model spec's trainer image is neither the platform trainer nor its team's",
    "MLP404": "a team image does not build on the platform trainer or run `python -m <module>`",
}


@dataclass(frozen=True)
class Violation:
    """A rule broken by a DAG, task or pod, before anyone knows the source line."""

    code: str
    message: str
    fix: str

    def __post_init__(self) -> None:
        if self.code not in RULES:
            raise ValueError(f"unknown rule code {self.code!r} (known: {', '.join(RULES)})")

    def at(self, path: str, line: int) -> Finding:
        return Finding(path, line, self.code, self.message, self.fix)


@dataclass(frozen=True, order=True)
class Finding:
    """A violation at a place in a DAG file."""

    path: str
    line: int
    code: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message} ({self.fix})"
