"""GPU types through `make check-dags`: a DAG pinned to the production GPU type passes on
kind, dev and prod; MLP301 lists the pools on offer and asks for the change that would help.

dev and prod lack what each organisation sets itself (registry, DAG repository, GCP project,
the API's allowed ranges): their documents are computed by the infra program's own code from
the committed stack files with the clearly-marked test values below, and handed to the
command line with --config.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from checks_testkit import GOOD_DAGS, REPO, CheckRun, run_checks, shown_path

INFRA = REPO / "infra"
PINNED = GOOD_DAGS / "production_gpu_type.py"
# Test values only: what `pulumi config set` gives a real dev/prod stack.
TEST_ONLY_SITE_SETTINGS = {
    "gcp:project": "test-only-project",
    "images.registry": "registry.test-only.invalid/ml-platform",
    "airflow.dags.repo_url": "https://git.test-only.invalid/ml-platform.git",
    "api_allowed_cidrs": ["203.0.113.0/24"],  # TEST-NET-3: documentation addresses
}


def stack_document(stack: str) -> dict[str, Any]:
    """The stack's ML_PLATFORM_CONFIG as the program computes it (test site settings)."""
    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))
    from ml_infra.config import PROJECT, parse_stack_config
    from ml_infra.platform_document import platform_document

    raw = yaml.safe_load((INFRA / f"Pulumi.{stack}.yaml").read_text())["config"]
    ours = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
    others = {k: v for k, v in raw.items() if not k.startswith(f"{PROJECT}:")}
    if stack != "kind":
        ours["images"].setdefault("registry", TEST_ONLY_SITE_SETTINGS["images.registry"])
        dags = ours["airflow"]["dags"]
        dags.setdefault("repo_url", TEST_ONLY_SITE_SETTINGS["airflow.dags.repo_url"])
        cloud = ours["cloud"]
        ours[cloud].setdefault("api_allowed_cidrs", TEST_ONLY_SITE_SETTINGS["api_allowed_cidrs"])
        if cloud == "gcp":
            others.setdefault("gcp:project", TEST_ONLY_SITE_SETTINGS["gcp:project"])
    return platform_document(parse_stack_config(stack, ours, others))


def _check(tmp_path: Path, documents: list[dict[str, Any]], *paths: Path) -> CheckRun:
    args = ["--no-parse-time"]
    for document in documents:
        config = tmp_path / f"{document['environment']}.json"
        config.write_text(json.dumps(document))
        args += ["--config", str(config)]
    return run_checks(*args, *map(str, paths))


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def production_gpu_types() -> set[str]:
    return {
        pool["gpu"]["type"]
        for stack in ("dev", "prod")
        for pool in stack_document(stack)["pools"]
        if pool["gpu"]
    }


def test_the_fixture_pins_the_production_gpu_type() -> None:
    assert production_gpu_types() == {"nvidia-l4"}
    assert 'GPU_TYPE = "nvidia-l4"' in PINNED.read_text()


def test_kind_stands_in_for_every_production_gpu_type() -> None:
    kind_gpu = [p["gpu"] for p in stack_document("kind")["pools"] if p["gpu"]]
    stand_ins = {t for gpu in kind_gpu for t in gpu.get("stands_in_for", [])}
    assert production_gpu_types() <= stand_ins


def test_a_dag_pinned_to_the_production_gpu_type_passes_on_every_stack(tmp_path: Path) -> None:
    documents = [stack_document(stack) for stack in ("kind", "dev", "prod")]
    run = _check(tmp_path, documents, PINNED)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no findings (stacks: kind, dev, prod;" in run.stdout


def test_without_the_stand_in_kind_refuses_it_naming_its_pools(tmp_path: Path) -> None:
    """The check can fail: the stand-in is what lets kind take the production type."""
    kind = copy.deepcopy(stack_document("kind"))
    for pool in kind["pools"]:
        if pool["gpu"]:
            pool["gpu"].pop("stands_in_for", None)
    run = _check(tmp_path, [kind], PINNED)
    assert run.returncode == 1
    # container_task refuses at import, so the file stops there: one finding, at its line.
    ((line, code, factory),) = [(int(f["line"]), f["code"], f["text"]) for f in run.findings()]
    assert (line, code) == (_line_of(PINNED, "container_task("), "MLP301"), run.stdout
    assert "stack 'kind'" in factory
    assert "1 GPU(s) of type 'nvidia-l4'" in factory
    assert "GPU pools: gpu (2x emulated-gpu)" in factory
    # The author did set gpu_type, and any GPU would do: say so.
    assert "without gpu_type='nvidia-l4' it would take any GPU type" in factory


def test_mlp301_asks_for_what_would_help(tmp_path: Path) -> None:
    kind = stack_document("kind")
    (gpu_pool,) = [p for p in kind["pools"] if p["gpu"]]
    folder = tmp_path / "dags"
    folder.mkdir()
    many = folder / "many_gpus.py"
    many.write_text(_dag("many_gpus", "gpus=8"))
    big = folder / "too_big.py"
    big.write_text(_dag("too_big", "gpus=1, memory='64Gi'"))
    run = _check(tmp_path, [kind], folder)
    assert run.returncode == 1
    lines = {
        line.split(": MLP301 ", 1)[0].rsplit(":", 2)[0]: line
        for line in run.stdout.splitlines()
        if ": MLP301 " in line
    }
    assert set(lines) == {shown_path(many), shown_path(big)}, run.stdout
    # Never set, so never suggested away; the pools on offer are listed.
    many_line = lines[shown_path(many)]
    assert "offers 8 GPU(s) on one node (GPU pools: gpu (2x emulated-gpu" in many_line
    assert "gpu_type" not in many_line
    # The right pool, too small a node: its allocatable against the request.
    big_line = lines[shown_path(big)]
    allocatable = gpu_pool["node_allocatable"]["memory"]
    assert (
        f"too big for every node of the pool it is placed on in environment 'kind' "
        f"(gpu: requests memory 65546Mi over a node's allocatable {allocatable})"
    ) in big_line
    assert "cpu: " not in big_line and "gpu_type" not in big_line


def _dag(dag_id: str, gpu_arguments: str) -> str:
    return f'''
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import container_task

with DAG(
    dag_id="{dag_id}",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={{"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)}},
    tags=["fixture"],
):
    container_task("train", image="trainer", arguments=["train"], {gpu_arguments})
'''
