"""The platform documents (ML_PLATFORM_CONFIG) of the stacks every DAG must schedule on.

`stack_documents()` is the one place that decides which stacks the checks cover: pod
placement is checked against the pools of each. Until the infra program can compute each
stack's document, it is the local default (platform.kind.json, which mirrors `kind`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml_platform.settings import DEFAULT_CONFIG_FILE, parse_config


def stack_documents() -> dict[str, dict[str, Any]]:
    """Stack name -> platform document, for every stack the DAGs are deployed to."""
    document = json.loads(DEFAULT_CONFIG_FILE.read_text())
    return {document["environment"]: document}


def documents_from_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Stack documents from JSON files (`--config`), each validated and named by environment."""
    documents: dict[str, dict[str, Any]] = {}
    for path in paths:
        document = json.loads(path.read_text())
        parse_config(document)  # a malformed document fails here, naming its key
        documents[document["environment"]] = document
    return documents
