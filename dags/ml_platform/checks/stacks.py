"""The platform documents (ML_PLATFORM_CONFIG) of the stacks every DAG must schedule on.

`stack_documents()` is the one place that decides which stacks the checks cover: pod
placement is checked against the pools of each. Where the repo carries the infra program,
each stack's document is computed by the program's own code from infra/Pulumi.<stack>.yaml,
so the checks see exactly the pools `pulumi up` would create. The keys an organisation sets
itself (`pulumi config set`: the image registry, the DAG repository) are not committed;
placement does not depend on them, so a stack file without them is checked with the marked
test values of ORG_TEST_VALUES, and `test_valued_stacks()` says which it filled. A stack file
that is wrong in any other way cannot be checked: `unchecked_stacks()` says which and why.
Without infra/, the local default (platform.kind.json, which mirrors `kind`) stands in.
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ml_platform.settings import DEFAULT_CONFIG_FILE, parse_config

INFRA_DIR = Path(__file__).resolve().parents[3] / "infra"
# Where the stack files are, if not beside the program (a checkout under review elsewhere).
STACKS_DIR_ENV = "ML_PLATFORM_STACKS_DIR"
# Stand-ins for the per-organisation keys a committed stack file leaves out, used only by the
# checks and only for a key the stack reports missing; `.invalid` (RFC 2606) names nothing.
# A key without a namespace is the project's own (`<project>:images.registry`).
ORG_TEST_VALUES: dict[str, Any] = {
    "images.registry": "registry.check-dags.invalid/test-org",
    "airflow.dags.repo_url": "https://git.check-dags.invalid/test-org/ml-platform.git",
    "gcp:project": "check-dags-test-org",
    # TEST-NET-3 (RFC 5737): documentation addresses, nobody's network.
    "aws.api_allowed_cidrs": ["203.0.113.0/24"],
    "gcp.api_allowed_cidrs": ["203.0.113.0/24"],
}
_MISSING = re.compile(r"^(?P<key>\S+): required key is missing")


def _set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """config (the stack file's `config:` mapping) with `project:a.b` set as --path would."""
    namespace, _, path = key.partition(":")
    top, *inner = path.split(".")
    if not inner:
        config[key] = value
        return
    node = config.setdefault(f"{namespace}:{top}", {})
    for part in inner[:-1]:
        node = node.setdefault(part, {})
    node[inner[-1]] = value


def _infra_stacks() -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, list[str]]]:
    """(stack -> document, stack -> why it cannot be computed, stack -> keys given test
    values) from infra's stack files (or those of ML_PLATFORM_STACKS_DIR)."""
    return _stacks_in(Path(os.environ.get(STACKS_DIR_ENV) or INFRA_DIR))


@cache
def _stacks_in(
    stacks_dir: Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, list[str]]]:
    if str(INFRA_DIR) not in sys.path:
        sys.path.insert(0, str(INFRA_DIR))
    from ml_infra.config import PROJECT, StackConfigError, parse_stack_config
    from ml_infra.platform_document import platform_document

    documents: dict[str, dict[str, Any]] = {}
    unchecked: dict[str, str] = {}
    test_valued: dict[str, list[str]] = {}
    test_values = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in ORG_TEST_VALUES.items()}
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        stack = path.name.split(".")[1]
        raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        filled: list[str] = []
        while True:
            ours = {k.partition(":")[2]: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
            others = {k: v for k, v in raw.items() if not k.startswith(f"{PROJECT}:")}
            try:
                documents[stack] = platform_document(parse_stack_config(stack, ours, others))
                break
            except StackConfigError as exc:
                missing = _MISSING.match(str(exc))
                key = missing["key"] if missing else None
                if key not in test_values or key in filled:
                    unchecked[stack] = f"{path.name}: {exc}"
                    break
                raw = json.loads(json.dumps(raw))  # a copy: filled only for the checks
                _set_dotted(raw, key, test_values[key])
                filled.append(key)
        if filled and stack in documents:
            test_valued[stack] = filled
    return documents, unchecked, test_valued


def _has_infra() -> bool:
    return (INFRA_DIR / "ml_infra" / "platform_document.py").is_file()


def stack_documents() -> dict[str, dict[str, Any]]:
    """Stack name -> platform document, for every stack the DAGs are deployed to."""
    if _has_infra():
        documents, _, _ = _infra_stacks()
        if documents:
            return documents
    document = json.loads(DEFAULT_CONFIG_FILE.read_text())
    return {document["environment"]: document}


def unchecked_stacks() -> dict[str, str]:
    """Stacks of infra/ whose document cannot be computed from the committed file, and why."""
    return _infra_stacks()[1] if _has_infra() else {}


def test_valued_stacks() -> dict[str, list[str]]:
    """Stacks checked with ORG_TEST_VALUES, and the keys their committed file leaves out."""
    return _infra_stacks()[2] if _has_infra() else {}


def documents_from_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Stack documents from JSON files (`--config`), each validated and named by environment."""
    documents: dict[str, dict[str, Any]] = {}
    for path in paths:
        document = json.loads(path.read_text())
        parse_config(document)  # a malformed document fails here, naming its key
        documents[document["environment"]] = document
    return documents
