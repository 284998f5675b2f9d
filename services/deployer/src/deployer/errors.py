"""The one error type the CLI turns into `deployer <command>: failed at <step>: <why>`."""

from __future__ import annotations


class StepFailed(Exception):
    """A named step of a command failed; `why` is one line meant for a human."""

    def __init__(self, step: str, why: str) -> None:
        self.step = step
        self.why = " ".join(str(why).split())  # always one line, whatever the cause printed
        super().__init__(f"failed at {step}: {self.why}")


def plain_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as one bounded line: MLflow and HTTP errors often span many lines."""
    return _bounded(" ".join(str(exc).split()) or type(exc).__name__, limit)


def one_line(exc: BaseException, limit: int = 400) -> str:
    """plain_line, except that a dependency that could not be reached is named as such,
    whatever error it surfaced as (a walk of the cause chain: not for the request path)."""
    from ml_dependencies import unreachable

    text = unreachable(exc)
    return plain_line(exc, limit) if text is None else _bounded(text, limit)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
