"""The day's dataset partition on this machine: does a DAG wait for it, and generate it.

Data lands at <datasets>/daily/<ds>/ (docs/pipeline.md). Locally <datasets> is
<local dir>/datasets and the partition sensor (ml_platform.sensors) is a FileSensor on it,
which is how the local runtime tells that a DAG needs the day's data.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any


def daily_partition_dir(local_dir: Path, day: date) -> Path:
    return (local_dir / "datasets" / "daily" / day.isoformat()).resolve()


def waits_for_daily_partition(dag: Any, local_dir: Path) -> bool:
    """Whether a task of `dag` waits for a file under <local dir>/datasets/daily/."""
    prefix = str((local_dir / "datasets" / "daily").resolve()) + "/"
    return any(str(getattr(task, "filepath", "")).startswith(prefix) for task in dag.tasks)


def generate_partition(local_dir: Path, day: date, drift: float, rows: int) -> str:
    """Write the day's synthetic partition with the trainer (same date, drift, rows: same data)."""
    uri = f"file://{daily_partition_dir(local_dir, day)}"
    trainer = str(Path(sys.executable).with_name("trainer"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [trainer, "--xcom-path", f"{tmp}/return.json", "generate"]
            + ["--date", day.isoformat(), "--output-uri", uri]
            + ["--drift", str(drift), "--rows", str(rows)],
            check=True,
            timeout=300,
        )
    return uri
