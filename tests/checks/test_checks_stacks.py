"""Pods are checked against every stack's pools and registry, each DAG parsed for that stack."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml
from checks_testkit import DAGS, GOOD_DAGS

from ml_platform.checks import stacks
from ml_platform.checks.runner import check_files
from ml_platform.checks.stacks import documents_from_files, stack_documents
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfigError

PIPELINE = DAGS / "ml_training_pipeline.py"


def _kind() -> dict:
    return json.loads(DEFAULT_CONFIG_FILE.read_text())


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_every_infra_stack_is_checked_by_default() -> None:
    documents = stack_documents()
    assert sorted(documents) == ["dev", "kind", "prod"]
    assert documents["kind"] == _kind()


def test_a_stack_without_gpu_pools_fails_the_gpu_step_at_its_line() -> None:
    cpu_only = _kind()
    cpu_only["environment"] = "cpu-only"
    cpu_only["pools"] = [p for p in cpu_only["pools"] if not p["gpu"]]
    findings = check_files([str(PIPELINE)], {"kind": _kind(), "cpu-only": cpu_only})
    # The pipeline is built by the platform's factory: the finding points at its call.
    assert [(f.line, f.code) for f in findings] == [
        (_line_of(PIPELINE, "= training_dag("), "MLP301")
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


def test_missing_organisation_settings_get_marked_test_values() -> None:
    """Placement does not depend on the registry or the DAG repository: dev and prod are
    checked with values that say what they are and can reach nothing."""
    assert stacks.unchecked_stacks() == {}
    filled = stacks.test_valued_stacks()
    assert filled["dev"] == [
        "ml-platform:images.registry",
        "ml-platform:airflow.dags.repo_url",
        "gcp:project",
        "ml-platform:gcp.api_allowed_cidrs",
    ]
    assert filled["prod"] == [
        "ml-platform:images.registry",
        "ml-platform:airflow.dags.repo_url",
        "ml-platform:aws.api_allowed_cidrs",
    ]
    assert "kind" not in filled
    prod = stack_documents()["prod"]
    assert prod["images"]["registry"] == stacks.ORG_TEST_VALUES["images.registry"]
    assert prod["images"]["registry"].split("/")[0].endswith(".invalid")


def test_a_stack_file_with_its_organisation_settings_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(stacks.INFRA_DIR / "ml_infra", infra / "ml_infra")
    shutil.copy(stacks.INFRA_DIR / "Pulumi.kind.yaml", infra)
    prod = yaml.safe_load((stacks.INFRA_DIR / "Pulumi.prod.yaml").read_text())
    prod["config"]["ml-platform:images"]["registry"] = "registry.internal.test/ml"
    prod["config"]["ml-platform:airflow"]["dags"]["repo_url"] = "https://git.internal.test/ml.git"
    prod["config"]["ml-platform:aws"]["api_allowed_cidrs"] = ["10.20.0.0/16"]
    (infra / "Pulumi.prod.yaml").write_text(yaml.safe_dump(prod))
    monkeypatch.setattr(stacks, "INFRA_DIR", infra)
    stacks._stacks_in.cache_clear()
    try:
        documents = stacks.stack_documents()
        assert sorted(documents) == ["kind", "prod"]
        assert documents["prod"]["images"]["registry"] == "registry.internal.test/ml"
        gpu_pools = [p for p in documents["prod"]["pools"] if p["gpu"]]
        assert gpu_pools and all(p["taints"] for p in gpu_pools)
        assert stacks.unchecked_stacks() == {}
        assert stacks.test_valued_stacks() == {}
    finally:
        stacks._stacks_in.cache_clear()


def test_a_stack_file_wrong_otherwise_is_named_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(stacks.INFRA_DIR / "ml_infra", infra / "ml_infra")
    prod = yaml.safe_load((stacks.INFRA_DIR / "Pulumi.prod.yaml").read_text())
    prod["config"]["ml-platform:images"]["tag"] = 7  # not a string: no test value hides it
    (infra / "Pulumi.prod.yaml").write_text(yaml.safe_dump(prod))
    monkeypatch.setattr(stacks, "INFRA_DIR", infra)
    stacks._stacks_in.cache_clear()
    try:
        unchecked = stacks.unchecked_stacks()
        assert list(unchecked) == ["prod"]
        assert unchecked["prod"].startswith("Pulumi.prod.yaml: ml-platform:images.tag")
    finally:
        stacks._stacks_in.cache_clear()
