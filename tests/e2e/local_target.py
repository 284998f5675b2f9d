"""The local target of the e2e suite: the platform on this machine (`make up`).

`start()` brings it up with `make up` in a LOCAL_DIR of its own (.local/e2e-local, on free
ports, so a platform a person runs with the defaults is left alone), checks that a second
`make up` is idempotent and restarts only a service that died, and `make down` takes it down
at the end; the data stays there for a look after a failure.

Where kind looks at the nodes pods were bound to, this target checks the pod specs the local
runtime built, checked against the pool catalog and kept per task instance under
<local dir>/platform/pods/. The failing deploy is the DAG's deploy pod run as the runtime
runs a pod (its command, the platform's environment and the container's env), beside a
polling client process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from ml_platform.local.airflow_client import AirflowClient, task_label
from ml_platform.local.partitions import daily_partition_dir, generate_partition
from ml_platform.local.stack import (
    PROCESSES,
    Layout,
    airflow_environment,
    load_state,
    recorded_pid,
    stop_process,
)
from ml_platform.settings import platform_config
from tests.e2e.scenarios import break_contract
from tests.e2e.serving import POLL_INTERVAL_S, POLL_REQUEST_TIMEOUT_S, POLLER_SCRIPT, poll_records
from tests.e2e.target import DeployOutcome, Run, RunWatch, Serving, Target, unrecorded_tasks

log = logging.getLogger("e2e")

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
ROWS = 2000
UP_TIMEOUT_S = 900  # PostgreSQL's install on a bare machine included
DOWN_TIMEOUT_S = 300
POLL_WARMUP_S = 60
POLL_AFTER_S = 5  # the poller goes on this long after the failed deploy ended
STARTED_SERVER = re.compile(r"started model server for v(\d+)")


def _local_dir() -> Path:
    """Under the repository, unless (as root) PostgreSQL's `postgres` user could not reach it
    there (a checkout under a private home): then under the temp folder."""
    wanted = REPO / ".local" / "e2e-local"
    parents = [p for p in wanted.parents if p.exists()]
    if os.geteuid() != 0 or all(os.stat(p).st_mode & 0o001 for p in parents):
        return wanted
    return Path(tempfile.gettempdir()) / "ml-platform-e2e-local"


LOCAL_DIR = _local_dir()


def _make(target: str, timeout_s: float, *variables: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"LOCAL_DIR={LOCAL_DIR}", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    log.info("make %s: exit %d in %.0fs", target, done.returncode, time.monotonic() - started)
    return done


def _redacted(output: str) -> str:
    """`make up`'s output without the one line that shows the password (by design)."""
    return "\n".join(
        "    login: (redacted)" if line.lstrip().startswith("login:") else line
        for line in output.splitlines()
    )


@contextmanager
def start() -> Iterator[LocalTarget]:
    """The platform up for the session, down at its end."""
    if LOCAL_DIR.exists():  # a previous session's platform: stopped, then a fresh start
        _make("down", DOWN_TIMEOUT_S)
        shutil.rmtree(LOCAL_DIR)
    ports = [f"{name}=0" for name in ("AIRFLOW_PORT", "MLFLOW_PORT", "SMTP_PORT", "POSTGRES_PORT")]
    up = _make("up", UP_TIMEOUT_S, *ports)
    log.info("make up's log:\n%s", _redacted(up.stdout + up.stderr)[-4000:])
    try:
        unavailable = [line for line in up.stderr.splitlines() if "PostgreSQL unavailable" in line]
        if unavailable:  # the stack's EXIT_NO_POSTGRES: none here, none can be installed
            # make e2e-local asked for these tests: not running them is a failure, not a skip.
            pytest.fail(unavailable[0], pytrace=False)
        if up.returncode != 0:
            output = _redacted(up.stdout + up.stderr)[-4000:]
            pytest.fail(f"make up failed ({up.returncode}):\n{output}", pytrace=False)
        second = _make("up", 120)  # idempotent: everything already runs
        output = _redacted(second.stdout + second.stderr)
        assert second.returncode == 0, output[-2000:]
        assert "The local platform is already running" in output, output[-2000:]
        # A service that died is started again, and only that one.
        assert stop_process(Layout(LOCAL_DIR), "triggerer")
        again = _make("up", 300)
        output = _redacted(again.stdout + again.stderr)  # Airflow's logging writes to stdout
        assert again.returncode == 0, output[-2000:]
        assert "triggerer started" in output, output[-2000:]
        assert "scheduler already running" in output, output[-2000:]
        yield LocalTarget(LOCAL_DIR)
    finally:
        down = _make("down", DOWN_TIMEOUT_S)
        log.info("make down: %s", down.stdout.strip()[-500:])


class _ProcessWatch(RunWatch):
    """The run's pods are kept by the runtime itself; while it goes on, the platform's
    services are checked to be alive (a dead scheduler would leave the run waiting)."""

    def __init__(self, layout: Layout, records: Path) -> None:
        self.layout = layout
        self.records = records

    def on_poll(self) -> None:
        dead = [name for name in PROCESSES if recorded_pid(self.layout, name) is None]
        if dead:
            logs = ", ".join(str(self.layout.log_file(name)) for name in dead)
            raise AssertionError(f"platform services died: {', '.join(dead)} (logs: {logs})")

    def placement(self) -> Path:
        return self.records


class LocalTarget(Target):
    name = "local"
    parse_timeout_s = 180
    defer_timeout_s = 180
    run_timeout_s = 900
    failed_run_timeout_s = 600
    deploy_timeout_s = 120
    poll_s = 3

    def __init__(self, local_dir: Path) -> None:
        self.local_dir = local_dir
        self.layout = Layout(local_dir)
        self.airflow = AirflowClient.for_local_platform(local_dir)
        state = load_state(self.layout)
        assert state is not None, f"no platform state under {local_dir}"
        self.state = state
        self.artifacts = local_dir / "e2e-artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)

    # -- MLflow and data --------------------------------------------------------------------

    def mlflow(self) -> Any:
        import mlflow
        from mlflow import MlflowClient

        url = self.state.mlflow_url
        os.environ["MLFLOW_TRACKING_URI"] = url
        mlflow.set_tracking_uri(url)
        return MlflowClient(tracking_uri=url, registry_uri=url)

    def put_partition(self, ds: str, drift: float = 0.0) -> str:
        return generate_partition(self.local_dir, date.fromisoformat(ds), drift=drift, rows=ROWS)

    def put_bad_partition(self, ds: str) -> str:
        """The day's data, broken in place."""
        uri = self.put_partition(ds)
        files = list(daily_partition_dir(self.local_dir, date.fromisoformat(ds)).glob("*.parquet"))
        assert files, f"generate wrote no parquet file under {uri}"
        import pandas as pd

        for path in files:
            break_contract(pd.read_parquet(path)).to_parquet(path, index=False)
        return uri

    # -- pods -------------------------------------------------------------------------------

    @contextmanager
    def watch(self, dag_id: str, run_id: str) -> Iterator[RunWatch]:
        yield _ProcessWatch(self.layout, self.layout.root / "pods" / dag_id / run_id)

    def placement_problems(self, run: Run, expected_gpus: dict[str, int]) -> list[str]:
        """Every pod the runtime built was placed on a pool by required node affinity on each
        of the pool's labels: a GPU pod on a GPU pool, every other pod on a pool without."""
        folder: Path = run.placement
        records = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
        pools = {pool.name: pool for pool in platform_config().pools}
        problems = []
        for record in records:
            where = f"pod of {record['task_id']}[{record['map_index']}] ({record['gpus']} GPU)"
            pool = pools[record["pool"]]
            if bool(record["gpus"]) != pool.has_gpus:
                problems.append(f"{where} placed on pool {pool.name}")
            wanted = expected_gpus.get(record["task_id"])
            if wanted is not None and record["gpus"] != wanted:
                problems.append(f"{where}: the DAG's pod asks for {wanted} GPU")
            affinity = record["pod"]["spec"].get("affinity") or {}
            node = (affinity.get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            terms = (node or {}).get("nodeSelectorTerms", [])
            required = {
                (expression["key"], value)
                for term in terms
                for expression in term.get("matchExpressions", [])
                for value in expression.get("values", [])
            }
            missing = set(pool.labels.items()) - required
            if missing:
                problems.append(f"{where}: no required affinity on pool {pool.name}'s {missing}")
        recorded = {
            task_label({"task_id": r["task_id"], "map_index": r["map_index"]}) for r in records
        }
        problems += unrecorded_tasks(run, expected_gpus, recorded)
        return problems

    # -- serving ----------------------------------------------------------------------------

    def _deployer_state(self, model_name: str) -> dict[str, Any]:
        from deployer.targets.local import LocalTarget as Deployed

        return Deployed(self.local_dir / "deployer", model_name).load_state()

    def serving(self, model_name: str) -> Serving:
        state = self._deployer_state(model_name)
        server, url = state.get("server"), state.get("url")
        if not server or not url:
            return Serving(None, 0, "no server")
        answer = requests.get(f"{url}/version", timeout=30)
        answered = answer.status_code == 200
        version = str(answer.json()["model_version"]) if answered else None
        return Serving(version, int(answered), f"server pid {server['pid']}")

    @contextmanager
    def endpoint(self, model_name: str) -> Iterator[str]:
        url = self._deployer_state(model_name).get("url")
        assert url, f"{model_name} is not served locally"
        yield url

    def _deploy_pod(self, env: dict[str, str], model_name: str, run_id: str, timeout_s: int) -> Any:
        """The training DAG's deploy pod for another run id (tests.e2e.serving.deploy_pod),
        built in a process with the platform's environment: Airflow reads its settings at
        import."""
        out = self.artifacts / "failing-deploy-pod.json"
        code = (
            "import json, sys; from pathlib import Path; from tests.e2e.serving import deploy_pod;"
            " Path(sys.argv[6]).write_text(json.dumps(deploy_pod(*sys.argv[1:4], "
            "int(sys.argv[4]), sys.argv[5])))"
        )
        args = ["e2e-failing-deploy", run_id, model_name, str(timeout_s), str(DAGS), str(out)]
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env={**env, "PYTHONPATH": os.pathsep.join([str(DAGS), str(REPO)])},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(out.read_text())

    def failing_deploy(
        self,
        model_name: str,
        run_id: str,
        payload: dict[str, Any],
        deploy_timeout_s: int,
        warmup_answers: int,
    ) -> DeployOutcome:
        env = airflow_environment(self.layout, self.state)
        pod = self._deploy_pod(env, model_name, run_id, deploy_timeout_s)
        (container,) = [c for c in pod["spec"]["containers"] if c.get("args", [""])[0] == "deploy"]
        # As the local runtime runs a pod: its command (or the image's local stand-in), the
        # platform's environment plus the container's literal env.
        command = container.get("command") or [str(Path(sys.executable).with_name("deployer"))]
        deploy_env = {**env, **{e["name"]: e["value"] for e in container["env"] if "value" in e}}
        deploy_wait_s = 2 * deploy_timeout_s + 120  # readiness, then the restore's
        with self.endpoint(model_name) as url:
            poll_env = {
                **os.environ,
                "POLL_URL": f"{url}/invocations",
                "POLL_PAYLOAD": json.dumps(payload),
                "POLL_SECONDS": str(POLL_WARMUP_S + deploy_wait_s + POLL_AFTER_S + 60),
                "POLL_INTERVAL_S": str(POLL_INTERVAL_S),
                "POLL_REQUEST_TIMEOUT_S": str(POLL_REQUEST_TIMEOUT_S),
            }
        poll_file = self.artifacts / "poller.log"
        with open(poll_file, "w") as out:
            poller = subprocess.Popen(
                [sys.executable, "-c", POLLER_SCRIPT], env=poll_env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            self.airflow.wait_until(
                f"{warmup_answers} answers from the champion",
                lambda: sum(r["status"] == 200 for r in _complete(poll_file)) >= warmup_answers,
                POLL_WARMUP_S,
                poll_s=0.5,
            )
            log.info("deploying the failing model (run %s) with the DAG's deploy pod", run_id)
            started = time.time()
            deploy = subprocess.run(
                command + container["args"], env=deploy_env, capture_output=True, text=True,
                timeout=deploy_wait_s, check=False,
            )  # fmt: skip
            ended = time.time()
            log.info("the failing deploy ended (exit %d); polling %ss more", deploy.returncode,
                     POLL_AFTER_S)  # fmt: skip
            time.sleep(POLL_AFTER_S)
        finally:
            poller.terminate()
            poller.wait(timeout=30)
        output = deploy.stdout + deploy.stderr
        (self.artifacts / "failing-deploy.log").write_text(output)
        return DeployOutcome(
            failed=deploy.returncode != 0,
            log=output,
            rolled_out=set(STARTED_SERVER.findall(output)),
            records=_complete(poll_file),
            started=started,
            ended=ended,
            where=str(poll_file),
        )

    def remove_model_server(self, model_name: str) -> None:
        from deployer.targets.local import LocalTarget as Deployed

        log.info("stopping the session's model server of %s", model_name)
        Deployed(self.local_dir / "deployer", model_name).stop_all()

    # -- Airflow ----------------------------------------------------------------------------

    def airflow_cli(self, *args: str) -> tuple[int, str]:
        """Through the stack, which points the CLI at the platform's database."""
        done = subprocess.run(
            [sys.executable, "-m", "ml_platform.local.stack", "--local-dir", str(self.local_dir),
             "airflow", *args],
            capture_output=True, text=True, timeout=180, check=False,
            env={**os.environ, "PYTHONPATH": str(DAGS)},
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr


def _complete(path: Path) -> list[dict[str, Any]]:
    """The poller's records; a last line cut by its stop is left out."""
    text = path.read_text() if path.exists() else ""
    return poll_records(text if text.endswith("\n") else text.rsplit("\n", 1)[0])
