"""docs/kind.md and the README say what the code does: the real names, the verbs, honest times."""

from __future__ import annotations

import re

from infra.kind import kind_platform

REPO = kind_platform.REPO_ROOT
DOC = (REPO / "docs" / "kind.md").read_text()
README = (REPO / "README.md").read_text()
VERBS = ("make kind-up", "make images", "make deploy ENV=kind", "make e2e", "make kind-down")


def test_the_port_forwards_name_the_programs_services():
    services = kind_platform.services()
    context = kind_platform.kube_context()
    for name in ("airflow", "mlflow", "storage"):
        service = services[name]
        command = (
            f"kubectl --context {context} -n {service.namespace} port-forward "
            f"svc/{service.name} {service.port}:{service.port}"
        )
        assert command in DOC, command
    serving = kind_platform.platform_document().namespaces["serving"]
    assert f"-n {serving} port-forward svc/model-<model name>" in DOC


def test_the_names_in_the_doc_are_the_stacks():
    assert f"kind.context: {kind_platform.kube_context()}" in DOC
    assert f"--name {kind_platform.cluster_name()}" in DOC
    for node in kind_platform.pool_nodes():
        assert node in DOC, node
    assert f"airflow.dags.node_path: {kind_platform.checkout_node_path()}" in DOC
    for ref in kind_platform.image_refs().values():
        assert f"`{ref}`" in DOC, ref


def test_the_verbs_are_documented_and_linked_from_the_readme():
    for verb in VERBS:
        assert verb in DOC, verb
        assert f"`{verb}`" in README, verb
    assert "(docs/kind.md)" in README


def test_the_times_are_labelled_as_estimates():
    section = DOC.split("## How long each step takes", 1)[1]
    assert "Estimates, not measurements" in section
    for verb in VERBS:
        assert f"`{verb}`" in section, verb
    assert re.search(r"\d+-\d+ min", section)
