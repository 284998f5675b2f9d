"""Plain helpers shared by the trainer's tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from trainer import storage

TEST_ROWS = 1500  # small enough to train in a second or two, large enough for stable AUCs
# The console script `make setup` installs beside the interpreter.
TRAINER_SCRIPT = Path(sys.executable).with_name("trainer")


@dataclass(frozen=True)
class CliResult:
    code: int
    xcom: dict | None
    stderr: str

    @property
    def error_line(self) -> str:
        """The last stderr line: where main() prints an expected error."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def unique(prefix: str) -> str:
    """A name no other test on the shared MLflow server uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: proves a failed command changed nothing."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def file_uri(path: Path) -> str:
    return storage.normalize(str(path))
