"""Typed access to one section of the stack config, naming the key in every error.

Each Section knows its path (`ml-platform:pools[1].gpu`), so a bad value is reported as the
key a platform engineer would `pulumi config set --path`. `done()` rejects keys nobody read:
a misspelt key fails instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class StackConfigError(ValueError):
    """The stack config is invalid; the message names the key."""


class Section:
    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise StackConfigError(f"{path}: expected a mapping, got {_kind(raw)}")
        self.raw = raw
        self.path = path
        self._read: set[str] = set()

    def key(self, name: str) -> str:
        # The root section is the project ("ml-platform"), whose keys read "ml-platform:pools".
        return f"{self.path}{'.' if ':' in self.path else ':'}{name}"

    def _get(self, name: str, required: bool) -> Any:
        self._read.add(name)
        if name not in self.raw or self.raw[name] is None:
            if required:
                raise StackConfigError(f"{self.key(name)}: required key is missing")
            return None
        return self.raw[name]

    def str(self, name: str, default: str | None = None, required: bool = True) -> str:
        value = self._get(name, required and default is None)
        if value is None:
            return default  # type: ignore[return-value]
        if not isinstance(value, str) or not value.strip():
            raise StackConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        return value

    def optional_str(self, name: str) -> str | None:
        value = self._get(name, False)
        if value is None:
            return None
        return self.str(name)

    def int(self, name: str, minimum: int | None = None, default: int | None = None) -> int:
        value = self._get(name, default is None)
        if value is None:
            return default  # type: ignore[return-value]
        if isinstance(value, bool) or not isinstance(value, int):
            raise StackConfigError(f"{self.key(name)}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise StackConfigError(f"{self.key(name)}: must be at least {minimum}, got {value}")
        return value

    def bool(self, name: str, default: bool | None = None) -> bool:
        value = self._get(name, default is None)
        if value is None:
            return default  # type: ignore[return-value]
        if not isinstance(value, bool):
            raise StackConfigError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.str(name, default=default)
        if value not in choices:
            raise StackConfigError(
                f"{self.key(name)}: {value!r} is not one of {', '.join(choices)}"
            )
        return value

    def section(self, name: str, required: bool = True) -> Section | None:
        value = self._get(name, required)
        if value is None:
            return None
        return Section(value, self.key(name))

    def string_map(self, name: str, required: bool = True) -> dict[str, str]:
        value = self._get(name, required)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise StackConfigError(f"{self.key(name)}: expected a mapping, got {_kind(value)}")
        for item_key, item in value.items():
            if not isinstance(item, str) or not item:
                raise StackConfigError(
                    f"{self.key(name)}.{item_key}: expected a non-empty string, got {item!r}"
                )
        return dict(value)

    def list(self, name: str, required: bool = True) -> list[Any]:
        value = self._get(name, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise StackConfigError(f"{self.key(name)}: expected a list, got {_kind(value)}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read))
            raise StackConfigError(f"{self.key(unknown[0])}: not a known key (known here: {known})")


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"
