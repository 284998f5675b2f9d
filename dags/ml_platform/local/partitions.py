"""The day's dataset partitions on this machine: which a DAG waits for, and generating them.

Data lands at <datasets>/<prefix>/daily/<ds>/ (docs/pipeline.md): the platform's own churn
data at the top (prefix ''), a team model's under teams/<team>/<model>. Locally <datasets> is
<local dir>/datasets and the partition sensor (ml_platform.sensors) is a FileSensor on it,
which is how the local runtime tells which partitions a DAG needs.

What to write there is the trainer's `generate --source`. The DAG that reads a prefix says
which demo source stands in for its data (training_dag's `local_source`): it records it here
when the DAG file is parsed, and run_dag, which parses the DAGs in its own process, reads it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

CHURN_SOURCE = "churn-synthetic"
DAILY = "daily"
# Dataset prefix -> the `trainer generate --source` whose data stands in for it locally.
_DEMO_SOURCES: dict[str, str] = {"": CHURN_SOURCE}  # the platform's own daily data is churn's


def register_demo_source(prefix: str, source: str) -> None:
    """Locally, generate the partitions under <datasets>/<prefix>/daily/ with `source`."""
    _DEMO_SOURCES[prefix.strip("/")] = source


def demo_source(prefix: str) -> str | None:
    return _DEMO_SOURCES.get(prefix.strip("/"))


def datasets_dir(local_dir: Path) -> Path:
    return (local_dir / "datasets").resolve()


def daily_partition_dir(local_dir: Path, day: date, prefix: str = "") -> Path:
    parts = [p for p in prefix.strip("/").split("/") if p]
    return datasets_dir(local_dir).joinpath(*parts, DAILY, day.isoformat())


def waited_prefixes(dag: Any, local_dir: Path) -> list[str]:
    """The dataset prefixes whose daily partition a task of `dag` waits for, sorted."""
    root = str(datasets_dir(local_dir)) + "/"
    found = set()
    for task in dag.tasks:
        path = str(getattr(task, "filepath", ""))
        if not path.startswith(root):
            continue
        head, sep, _ = path.removeprefix(root).rpartition(f"{DAILY}/")
        if sep and (head == "" or head.endswith("/")):
            found.add(head.rstrip("/"))
    return sorted(found)


def waits_for_daily_partition(dag: Any, local_dir: Path) -> bool:
    """Whether a task of `dag` waits for a file under <local dir>/datasets/daily/."""
    return "" in waited_prefixes(dag, local_dir)


def generate_partition(
    local_dir: Path,
    day: date,
    drift: float,
    rows: int | None,
    source: str = CHURN_SOURCE,
    prefix: str = "",
) -> str:
    """Write the day's partition with the trainer (same source, date, drift, rows: same data).

    `rows` None takes the source's default (4000 churn rows, 80% of an sklearn dataset).
    """
    uri = f"file://{daily_partition_dir(local_dir, day, prefix)}"
    trainer = str(Path(sys.executable).with_name("trainer"))
    command = [trainer, "generate", "--source", source, "--date", day.isoformat()]
    command += ["--output-uri", uri, "--drift", str(drift)]
    if rows is not None:
        command += ["--rows", str(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [command[0], "--xcom-path", f"{tmp}/return.json", *command[1:]],
            check=True,
            timeout=300,
        )
    return uri
