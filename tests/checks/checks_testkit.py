"""The DAG checks' command line as the tests run it, and the paths they check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
BAD_DAGS = Path(__file__).resolve().parent / "bad_dags"
GOOD_DAGS = Path(__file__).resolve().parent / "good_dags"
# A DAGs folder of model specs and team images only: one rule broken per file, or none.
BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"
# The scaffold's two forms (`make new-dag`, with and without TRAINER=1), written once per
# session into a throwaway copy of the repository layout (conftest's scaffold_root).
SCAFFOLDS = {"churn_score": [], "churn_preset": ["--trainer"]}
SCAFFOLD_TEAM = "fraud"
FINDING = re.compile(r"^(?P<path>[^:\s]+):(?P<line>\d+): (?P<code>MLP\d{3}) (?P<text>.+)$")
# `# expect: CODE` marks its own line; `# expect next: CODE` the next one (a Dockerfile has no
# comments at the end of an instruction).
EXPECT = re.compile(r"# expect(?P<next> next)?: (?P<code>MLP\d{3})")


def expected_marks(path: Path) -> set[tuple[int, str]]:
    """The (line, code) findings a fixture file marks for itself."""
    return {
        (number + 1 if match["next"] else number, match["code"])
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (match := EXPECT.search(line))
    }


def shown_path(path: Path) -> str:
    """How the checks print a path: relative to the repository when it is inside."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


@dataclass(frozen=True)
class CheckRun:
    returncode: int
    stdout: str
    stderr: str

    def findings(self) -> list[dict[str, str]]:
        return [m.groupdict() for m in map(FINDING.match, self.stdout.splitlines()) if m]


def run_checks(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> CheckRun:
    """`python -m ml_platform.checks ARGS` as `make check-dags` runs it."""
    environment = {**os.environ, "PYTHONPATH": str(DAGS)}
    # The machine's own settings must not change what the tests expect.
    for variable in ("ML_PLATFORM_CONFIG", "ML_PLATFORM_PARSE_BUDGET_S"):
        environment.pop(variable, None)
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "ml_platform.checks", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return CheckRun(done.returncode, done.stdout, done.stderr)
