"""Chart values: helm/<chart>/values-common.yaml + values-<stack>.yaml + what the program computes.

The files hold tuning (resources, replicas, Airflow options); the program adds everything
derived from the stack config (names, endpoints, secrets by reference). A file that sets a
computed key is refused, naming file and key, so there is one place for each value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ml_infra.config_reader import StackConfigError

HELM_DIR = Path(__file__).resolve().parents[2] / "helm"


def values_files(chart_dir: str, environment: str) -> list[Path]:
    return [
        HELM_DIR / chart_dir / "values-common.yaml",
        HELM_DIR / chart_dir / f"values-{environment}.yaml",
    ]


def read_values_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StackConfigError(f"{path.relative_to(HELM_DIR.parent)}: values file is missing")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())  # one line
        raise StackConfigError(
            f"{path.relative_to(HELM_DIR.parent)}: not valid YAML ({problem})"
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise StackConfigError(f"{path.relative_to(HELM_DIR.parent)}: expected a mapping")
    return loaded


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge like Helm's: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def leaf_paths(values: Mapping[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths |= leaf_paths(value, path + ".")
        else:
            paths.add(path)
    return paths


def covered(path: str, keys: tuple[str, ...]) -> bool:
    """Whether `path` is one of `keys`, lies under one, or contains one."""
    return any(
        path == key or path.startswith(key + ".") or key.startswith(path + ".") for key in keys
    )


def load_values_files(chart_dir: str, environment: str, computed_keys: tuple[str, ...]) -> dict:
    """The merged values files of one chart; raises if a file sets a computed key."""
    values: dict[str, Any] = {}
    for path in values_files(chart_dir, environment):
        from_file = read_values_file(path)
        for leaf in sorted(leaf_paths(from_file)):
            if covered(leaf, computed_keys):
                raise StackConfigError(
                    f"{path.relative_to(HELM_DIR.parent)}: {leaf} is computed from the stack "
                    "config by infra/; remove it from the values file"
                )
        values = merge(values, from_file)
    return values
