"""Where the model server runs: one interface, a local and a Kubernetes implementation."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Revision:
    """One model version as the server loads it."""

    model_name: str
    version: str

    @property
    def model_uri(self) -> str:
        # The version, not an alias: a server must keep serving what it was rolled out with.
        return f"models:/{self.model_name}/{self.version}"


@dataclass(frozen=True)
class Serving:
    """What answers at the endpoint right now, as the target itself reports it."""

    version: str | None
    model_uri: str | None
    endpoint: str
    detail: str


class Target(Protocol):
    """A place to roll model servers out to.

    A deploy calls start → wait_ready → (smoke test) → switch → (promote) → finish; any failure
    after start calls restore, which puts back whatever served before start.
    """

    name: str

    @property
    def endpoint(self) -> str | None:
        """The stable URL clients use; None before anything was ever deployed."""
        ...

    def exclusive(self, timeout_s: float) -> AbstractContextManager[None]:
        """Held for a whole command, so two deploys of one model never interleave."""
        ...

    def current(self) -> Serving | None:
        """The revision serving now, or None when nothing is deployed."""
        ...

    def start(self, revision: Revision) -> None:
        """Begin rolling out `revision` (step `rollout`)."""
        ...

    def wait_ready(self, timeout_s: float) -> str:
        """Block until the new revision is ready (step `readiness`); its URL to smoke-test."""
        ...

    def switch(self) -> None:
        """Send the endpoint's traffic to the new revision, keeping the old one restorable."""
        ...

    def finish(self) -> None:
        """The deploy is committed: release the old revision."""
        ...

    def restore(self, timeout_s: float) -> None:
        """Undo everything since start(): the previous revision serves as before."""
        ...
