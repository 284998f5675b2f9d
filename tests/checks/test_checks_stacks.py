"""Pods are checked against every stack's pools and registry, each DAG parsed for that stack."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from checks_testkit import DAGS, GOOD_DAGS

from ml_platform.checks.runner import check_files
from ml_platform.checks.stacks import documents_from_files, stack_documents
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfigError

PIPELINE = DAGS / "ml_training_pipeline.py"


def _kind() -> dict:
    return json.loads(DEFAULT_CONFIG_FILE.read_text())


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_default_stacks_are_the_local_default_document() -> None:
    assert stack_documents() == {"kind": _kind()}


def test_a_stack_without_gpu_pools_fails_the_gpu_step_at_its_line() -> None:
    cpu_only = _kind()
    cpu_only["environment"] = "cpu-only"
    cpu_only["pools"] = [p for p in cpu_only["pools"] if not p["gpu"]]
    findings = check_files([str(PIPELINE)], {"kind": _kind(), "cpu-only": cpu_only})
    assert [(f.line, f.code) for f in findings] == [
        (_line_of(PIPELINE, "train = mapped_container_task("), "MLP301")
    ]
    assert "stack 'cpu-only'" in findings[0].message
    assert "GPU pools: none" in findings[0].message


def test_images_are_checked_against_each_stacks_registry() -> None:
    """The platform factory follows the registry; a hard-coded image does not."""
    cloud = copy.deepcopy(_kind())
    cloud["environment"] = "cloud"
    cloud["images"]["registry"] = "europe-docker.pkg.dev/acme/ml"
    raw = GOOD_DAGS / "textbook_gpu_pod.py"
    findings = check_files([str(PIPELINE), str(raw)], {"kind": _kind(), "cloud": cloud})
    assert [(Path(f.path).name, f.code) for f in findings] == [(raw.name, "MLP205")]
    assert "'europe-docker.pkg.dev/acme/ml'" in findings[0].message


def test_stack_documents_from_files_are_validated(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_kind()))
    broken = _kind()
    del broken["images"]["registry"]
    bad.write_text(json.dumps(broken))
    assert documents_from_files([good]) == {"kind": _kind()}
    with pytest.raises(PlatformConfigError, match="missing key images.registry"):
        documents_from_files([bad])
