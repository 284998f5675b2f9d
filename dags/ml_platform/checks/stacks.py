"""The platform documents (ML_PLATFORM_CONFIG) of the stacks every DAG must schedule on.

`stack_documents()` is the one place that decides which stacks the checks cover: pod
placement is checked against the pools of each. Where the repo carries the infra program,
each stack's document is computed by the program's own code from infra/Pulumi.<stack>.yaml,
so the checks see exactly the pools `pulumi up` would create. A stack file that lacks keys
an organisation sets itself (`pulumi config set`, e.g. the image registry) cannot be
checked; `unchecked_stacks()` says which and why. Without infra/, the local default
(platform.kind.json, which mirrors `kind`) stands in.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ml_platform.settings import DEFAULT_CONFIG_FILE, parse_config

INFRA_DIR = Path(__file__).resolve().parents[3] / "infra"


@cache
def _infra_stacks() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(stack -> document, stack -> why it cannot be computed) from infra's stack files."""
    if str(INFRA_DIR) not in sys.path:
        sys.path.insert(0, str(INFRA_DIR))
    from ml_infra.config import PROJECT, StackConfigError, parse_stack_config
    from ml_infra.platform_document import platform_document

    documents: dict[str, dict[str, Any]] = {}
    unchecked: dict[str, str] = {}
    for path in sorted(INFRA_DIR.glob("Pulumi.*.yaml")):
        stack = path.name.split(".")[1]
        raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        ours = {k.partition(":")[2]: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
        others = {k: v for k, v in raw.items() if not k.startswith(f"{PROJECT}:")}
        try:
            documents[stack] = platform_document(parse_stack_config(stack, ours, others))
        except StackConfigError as exc:
            unchecked[stack] = f"{path.name}: {exc}"
    return documents, unchecked


def _has_infra() -> bool:
    return (INFRA_DIR / "ml_infra" / "platform_document.py").is_file()


def stack_documents() -> dict[str, dict[str, Any]]:
    """Stack name -> platform document, for every stack the DAGs are deployed to."""
    if _has_infra():
        documents, _ = _infra_stacks()
        if documents:
            return documents
    document = json.loads(DEFAULT_CONFIG_FILE.read_text())
    return {document["environment"]: document}


def unchecked_stacks() -> dict[str, str]:
    """Stacks of infra/ whose document cannot be computed from the committed file, and why."""
    return _infra_stacks()[1] if _has_infra() else {}


def documents_from_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Stack documents from JSON files (`--config`), each validated and named by environment."""
    documents: dict[str, dict[str, Any]] = {}
    for path in paths:
        document = json.loads(path.read_text())
        parse_config(document)  # a malformed document fails here, naming its key
        documents[document["environment"]] = document
    return documents
