"""Wall time of the local main job and Airflow's orchestration overhead (`make bench`).

overhead = DAG run wall time / (sum of the task instances' own durations / parallelism).
dag.test() runs one task instance at a time, so parallelism is 1 here; a ratio of 1.0 would
mean Airflow added nothing between tasks. Target: at most 1.3.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from deployer.targets.local import stop_all_models
from ml_platform.local.demo import run_dag_locally
from ml_platform.local.mlflow_server import local_mlflow_server
from ml_platform.local.partitions import generate_partition

TARGET = 1.3
PARALLELISM = 1  # dag.test() executes task instances one after another
DAY = date(2026, 11, 2)
CONF = {"learning_rates": [0.001, 0.003], "epochs": 10}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        local_dir = Path(tmp)
        started = time.monotonic()
        with local_mlflow_server(local_dir / "mlflow") as server:
            mlflow_s = time.monotonic() - started
            generate_partition(local_dir, DAY, drift=0.0, rows=4000)
            try:
                outcome = run_dag_locally(local_dir, server.url, DAY, CONF)
            finally:
                stop_all_models(local_dir / "deployer")
        total_s = time.monotonic() - started
    if outcome["state"] != "success":
        print(f"the DAG run ended {outcome['state']}: {outcome['task_states']}")
        return 1
    durations = outcome["task_durations_s"]
    compute_s = sum(durations.values())
    ratio = outcome["wall_s"] / (compute_s / PARALLELISM)
    print(f"{'task instance':38} {'seconds':>8}")
    for name, seconds in sorted(durations.items(), key=lambda kv: -kv[1]):
        print(f"{name:38} {seconds:8.2f}")
    print(
        f"main job end to end (MLflow start, data, DAG): {total_s:.1f}s "
        f"(MLflow server start {mlflow_s:.1f}s)"
    )
    print(
        f"DAG run wall {outcome['wall_s']:.1f}s, tasks' own compute {compute_s:.1f}s, "
        f"parallelism {PARALLELISM}"
    )
    print(f"orchestration overhead ratio: {ratio:.2f} (target <= {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
