"""Read the running stack's config from the Pulumi runtime and validate it."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from ml_infra.config import PROJECT, StackConfig, StackConfigError, parse_stack_config


def _decode(key: str, raw: Any) -> Any:
    # The engine hands structured values over as JSON text, plain strings as they are.
    if isinstance(raw, str) and raw.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StackConfigError(f"{key}: not valid structured config ({exc})") from None
    return raw


def current_config_values() -> tuple[dict[str, Any], dict[str, Any]]:
    """(this project's keys without the `ml-platform:` prefix, every other namespace's keys)."""
    ours: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for key, raw in {**get_config_env(), **CONFIG.get()}.items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            ours[name] = _decode(key, raw)
        else:
            others[key] = _decode(key, raw)
    return ours, others


def load_stack_config() -> StackConfig:
    """The validated config of the stack being deployed; raises before any resource exists."""
    ours, others = current_config_values()
    return parse_stack_config(pulumi.get_stack(), ours, others)
