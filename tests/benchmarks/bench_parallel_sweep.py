"""A sweep of N trials with dag.test() and on the local platform (`make bench`).

dag.test() runs one task instance at a time; the local platform's LocalExecutor runs up to K
at once, K = min(executor slots, the GPU Airflow pool's slots): the train tasks take a slot
of the pool each. The same DAG, data and sweep run both ways, each on its own MLflow. Printed:
both DAG run wall times and their ratio, the train phase's wall time on the platform against
ceil(N/K) x the measured single-trial time (1.0: the trials ran K at a time with nothing in
between), and the same for dag.test() against N x the single trial. Beside it, how many of
the machine's cores were busy during the platform's train phase (from /proc/stat, sampled
while the run goes on): near all of them, the trials are bound by the CPU, not by the
executor. Figures and ratios only: on a busy machine they move, so nothing here asserts a
target.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from deployer.targets.local import stop_all_models
from ml_platform.local.airflow_client import AirflowClient
from ml_platform.local.demo import run_dag_locally
from ml_platform.local.mlflow_server import local_mlflow_server
from ml_platform.local.partitions import generate_partition
from ml_platform.local.stack import parallelism
from ml_platform.settings import platform_config

DAG_ID = "ml_training_pipeline"
DAY = date(2026, 11, 2)
ROWS = 4000
N = 4
CONF = {"learning_rates": [0.001, 0.003, 0.01, 0.03], "epochs": 3, "min_metric": 0.5}
UP_TIMEOUT_S = 900
RUN_TIMEOUT_S = 1800
GPU_POOL = "gpu-gpus"


class CpuSampler:
    """The machine's busy and total CPU time (/proc/stat), sampled every `every_s` seconds in
    a thread, so the cores in use over any window of the run can be read afterwards."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.samples: list[tuple[float, int, int]] = []  # (epoch s, busy jiffies, all jiffies)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy, total = self._read()
            self.samples.append((time.time(), busy, total))
            self._stop.wait(self.every_s)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def cores_busy(self, start: float, end: float) -> float:
        """The mean number of busy cores between two epoch times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (_, busy0, total0), (_, busy1, total1) = inside[0], inside[-1]
        cores = len(os.sched_getaffinity(0))
        return cores * (busy1 - busy0) / max(1, total1 - total0)


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _train_phase(instances: list[dict[str, Any]]) -> tuple[datetime, datetime, list[float]]:
    """(the first train start, the last train end, each trial's seconds)."""
    trains = [ti for ti in instances if ti["task_id"] == "train" and ti["state"] == "success"]
    durations = [float(ti["duration"]) for ti in trains]
    start = min(_stamp(ti["start_date"]) for ti in trains)
    return start, max(_stamp(ti["end_date"]) for ti in trains), durations


def with_dag_test(local_dir: Path) -> dict[str, Any]:
    with local_mlflow_server(local_dir / "mlflow") as server:
        generate_partition(local_dir, DAY, drift=0.0, rows=ROWS)
        try:
            outcome = run_dag_locally(
                local_dir, server.url, DAY, {"model_name": "bench-seq", **CONF}
            )
        finally:
            stop_all_models(local_dir / "deployer")
    if outcome["state"] != "success":
        raise SystemExit(f"dag.test() run ended {outcome['state']}: {outcome['task_states']}")
    trials = [s for name, s in outcome["task_durations_s"].items() if name.startswith("train[")]
    return {"wall_s": outcome["wall_s"], "train_wall_s": sum(trials), "trials": trials}


def _stack(local_dir: Path, *args: str, timeout_s: float) -> None:
    command = [sys.executable, "-m", "ml_platform.local.stack", "--local-dir", str(local_dir)]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise SystemExit(f"stack {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def on_the_platform(local_dir: Path) -> dict[str, Any]:
    ports = [f"--{name}-port=0" for name in ("airflow", "mlflow", "smtp", "postgres")]
    started = time.monotonic()
    _stack(local_dir, "up", *ports, timeout_s=UP_TIMEOUT_S)
    up_s = time.monotonic() - started
    try:
        client = AirflowClient.for_local_platform(local_dir)
        generate_partition(local_dir, DAY, drift=0.0, rows=ROWS)
        client.wait_for_dag(DAG_ID, 300)
        client.unpause(DAG_ID)
        # Unpausing starts the latest interval, waiting for today's data: it would hold the
        # DAG's one active run slot.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not client.active_runs(DAG_ID):
            time.sleep(1)
        for run in client.active_runs(DAG_ID):
            client.fail_run(DAG_ID, run["dag_run_id"], "not part of the benchmark")
        logical = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        conf = {"model_name": "bench-parallel", **CONF}
        with CpuSampler() as cpu:
            run_id = client.trigger(DAG_ID, conf, logical_date=logical)["dag_run_id"]
            state = client.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT_S, poll_s=2)
        if state != "success":
            raise SystemExit(f"platform run ended {state}: {client.task_states(DAG_ID, run_id)}")
        run = client.dag_run(DAG_ID, run_id)
        start, end, trials = _train_phase(client.task_instances(DAG_ID, run_id))
    finally:
        _stack(local_dir, "down", timeout_s=300)
    wall = (_stamp(run["end_date"]) - _stamp(run["start_date"])).total_seconds()
    return {
        "wall_s": wall,
        "train_wall_s": (end - start).total_seconds(),
        "trials": trials,
        "up_s": up_s,
        "train_cores_busy": cpu.cores_busy(start.timestamp(), end.timestamp()),
    }


def _platform_dir() -> Path:
    """Under the temp folder, readable by PostgreSQL's own user (a mkdtemp folder is not)."""
    path = Path(tempfile.gettempdir()) / "ml-platform-bench-sweep"
    if path.exists():
        _stack(path, "down", timeout_s=300)
        shutil.rmtree(path)
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    return path


def main() -> int:
    slots = int(platform_config().airflow_pools[GPU_POOL]["slots"])
    k = min(parallelism(), slots)
    with tempfile.TemporaryDirectory() as tmp:
        sequential = with_dag_test(Path(tmp))
    platform_dir = _platform_dir()
    parallel = on_the_platform(platform_dir)
    shutil.rmtree(platform_dir, ignore_errors=True)

    trial_s = statistics.median(parallel["trials"] + sequential["trials"])
    ideal_parallel = math.ceil(N / k) * trial_s
    print(f"sweep of N={N} trials ({CONF['epochs']} epochs, {ROWS} rows); K={k} "
          f"(executor slots {parallelism()}, GPU pool {GPU_POOL} slots {slots})")  # fmt: skip
    print(f"single trial (median of both runs' train tasks): {trial_s:.1f}s")
    print(f"{'':28} {'DAG run s':>10} {'train phase s':>14} {'ideal s':>8} {'phase/ideal':>12}")
    for name, figures, ideal in (
        ("dag.test() (1 at a time)", sequential, N * trial_s),
        (f"local platform (K={k})", parallel, ideal_parallel),
    ):
        print(f"{name:28} {figures['wall_s']:10.1f} {figures['train_wall_s']:14.1f} "
              f"{ideal:8.1f} {figures['train_wall_s'] / ideal:12.2f}")  # fmt: skip
    print(f"platform / dag.test(): DAG run {parallel['wall_s'] / sequential['wall_s']:.2f}, "
          f"train phase {parallel['train_wall_s'] / sequential['train_wall_s']:.2f} "
          f"(ideal {math.ceil(N / k) / N:.2f}); make up took {parallel['up_s']:.0f}s")  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    print(f"cores busy during the platform's train phase: {parallel['train_cores_busy']:.2f} "
          f"of {cores}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
