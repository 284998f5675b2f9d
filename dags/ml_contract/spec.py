"""Parse and check a model spec: `<model>.model.yaml` in the owning team's folder.

    model: wine-classifier          # registered model name (and MLflow experiment)
    task: multiclass                # binary | multiclass | regression
    dataset:
      key: wine_id                  # unique per row; never a feature
      label: cultivar
      columns:
        wine_id: {dtype: int64, min: 0}
        alcohol: {dtype: float64, min: 0, max: 20}
        region: {dtype: string, categories: [north, south], nullable: true}
        cultivar: {dtype: string, categories: [a, b, c]}
    metric: f1                      # the metric that decides
    promotion: {threshold: 0.8, min_improvement: 0.01}
    trainer: {image: trainer}       # the platform trainer, or a team image (images/<name>/)
    validation: {min_rows: 100}     # optional: how far a day may stray from the reference
    slo: {p99_latency_ms: 50, on_breach: alert}  # optional: what the live endpoint must hold
    deadline_hours: 4               # optional: a run not done that long after it was queued
                                    # notifies the stack's channels (default: the factory's)

`promotion` may also say `golden_tolerance` (how far a candidate may fall below the champion
on the champion's golden set), `suspect_drop` (how far the champion may fall on a day against
its own recorded score before the day is suspect), `breaking_change`, `drift_threshold` (PSI
above which deploying waits for a person), `approval_timeout_hours` (how long it waits) and
`max_importance_share` (no single feature may carry more of the permutation importance);
`validation` says `min_rows`, `range_tolerance`, `max_outside_share` and
`null_rate_tolerance`. All have defaults (see Promotion and Validation). `slo`, when given,
names at least one of `p99_latency_ms`, `max_error_rate` (share of /invocations answered 5xx)
and `min_throughput_rps`, and may say `window_minutes` and `on_breach` (alert | rollback): the
drift monitor holds the live endpoint to it (see Slo).

Every problem is a SpecError of one line, `<file>:<line>: <key>: <what is wrong>`, so a
reviewer (and `make check-dags`) can jump to it. The same checks run on the JSON form the
DAG hands to the trainer (SPEC_ENV), so a spec is never half-checked.

The YAML is first reduced to what JSON can say (mappings with string keys, lists, strings,
numbers, true/false, null), so both forms meet the same checks. What YAML 1.1 reads in ways
a reviewer would not expect is refused rather than guessed: `yes`/`no`/`on`/`off` as
booleans, octal or sexagesimal numbers, dates, tags, anchors and aliases, merge keys.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml_contract.metrics import Metric, metrics_for

SPEC_SUFFIX = ".model.yaml"
SPEC_ENV = "ML_MODEL_SPEC"  # the checked spec as JSON, in every pod of the model's DAG
TASKS = ("binary", "multiclass", "regression")
DTYPES = ("int64", "float64", "bool", "string")
PLATFORM_TRAINER = "trainer"
MAX_SPEC_BYTES = 1 << 20  # a spec of a thousand columns is ~100 KiB; more is a mistake
MAX_DEPTH = 12  # a spec nests 5 levels (dataset.columns.<name>.categories[i])
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # registered model and image names
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TOP_KEYS = (
    "model",
    "description",
    "task",
    "dataset",
    "metric",
    "promotion",
    "trainer",
    "validation",
    "slo",
    "deadline_hours",
)
_PROMOTION_KEYS = (
    "threshold",
    "min_improvement",
    "golden_tolerance",
    "breaking_change",
    "drift_threshold",
    "suspect_drop",
    "approval_timeout_hours",
    "max_importance_share",
)
_VALIDATION_KEYS = ("min_rows", "range_tolerance", "max_outside_share", "null_rate_tolerance")
_SLO_KEYS = (
    "p99_latency_ms",
    "max_error_rate",
    "min_throughput_rps",
    "window_minutes",
    "on_breach",
)
_SLO_OBJECTIVES = _SLO_KEYS[:3]
ON_BREACH = ("alert", "rollback")
# The monitor watches the endpoint this long in one task: bounded well within its timeout.
MAX_SLO_WINDOW_MINUTES = 15.0
MAX_DEADLINE_HOURS = 24.0 * 7  # a daily pipeline late by more than a week is not "late"
_COLUMN_KEYS = ("dtype", "nullable", "min", "max", "categories", "description")
_INT64 = (-(2**63), 2**63 - 1)


class SpecError(ValueError):
    """A spec is malformed: one line naming the file, the line and the key.

    The parts are attributes too, for tools that print them their own way: `source`, `line`
    (None when the form has no lines, as JSON), `key` (dotted; "" for the whole file) and
    `problem`.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        line: int | None = None,
        key: str = "",
        problem: str = "",
    ) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.key = key
        self.problem = problem or message


def _error(source: str, line: int | None, key: str, problem: str) -> SpecError:
    """`source:line: key: problem`, the parts without line or key left out; always one line."""
    key, problem = _one_line(key), _one_line(problem)
    where = source if line is None else f"{source}:{line}"
    message = f"{where}: {key}: {problem}" if key else f"{where}: {problem}"
    return SpecError(message, source=source, line=line, key=key, problem=problem)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[Any, ...] | None = None  # the closed set of values the column may hold
    description: str = ""

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("int64", "float64")

    @property
    def is_categorical(self) -> bool:
        """One-hot encoded as a feature: strings and booleans (numbers stay numbers)."""
        return self.dtype in ("string", "bool")

    def describe_range(self) -> str:
        if self.categories is not None:
            return "{" + ", ".join(str(v) for v in self.categories) + "}"
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"[{low}, {high}]"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype}
        if self.nullable:
            out["nullable"] = True
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Promotion:
    threshold: float  # the bar: at least (or at most, for error metrics) this on the test split
    min_improvement: float = 0.0  # over the champion, in the metric's better direction
    # How far a candidate may fall below the champion on the champion's golden set.
    golden_tolerance: float = 0.02
    breaking_change: bool = False  # the change is meant to break with the champion
    drift_threshold: float = 0.25  # PSI above which a feature has drifted
    # How far the champion may score below its own recorded golden score on the day's split
    # before the day, not the model, is suspect: no deploy, whatever the candidate scores.
    suspect_drop: float = 0.10
    approval_timeout_hours: float = 24.0  # a drifted day's deploy waits this long, then skips
    # No feature may carry more than this share of the candidate's permutation importance.
    max_importance_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threshold": self.threshold,
            "min_improvement": self.min_improvement,
            "golden_tolerance": self.golden_tolerance,
            "breaking_change": self.breaking_change,
            "drift_threshold": self.drift_threshold,
            "suspect_drop": self.suspect_drop,
            "approval_timeout_hours": self.approval_timeout_hours,
        }
        if self.max_importance_share is not None:
            out["max_importance_share"] = self.max_importance_share
        return out


@dataclass(frozen=True)
class Validation:
    """How far a day's data may stray from the reference (the champion's training split)."""

    min_rows: int = 100  # fewer rows than this is refused, reference or not
    # A value is far outside the reference when beyond [min - tol*span, max + tol*span].
    range_tolerance: float = 0.5
    max_outside_share: float = 0.01  # the share of far-outside values a column may have
    null_rate_tolerance: float = 0.1  # the increase of a column's null rate allowed

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_rows": self.min_rows,
            "range_tolerance": self.range_tolerance,
            "max_outside_share": self.max_outside_share,
            "null_rate_tolerance": self.null_rate_tolerance,
        }


@dataclass(frozen=True)
class Slo:
    """What the live endpoint must hold over a window, read from the model server's /metrics
    by the drift monitor; None objectives are not checked (at least one is set)."""

    p99_latency_ms: float | None = None  # the 99th percentile of /invocations latency
    max_error_rate: float | None = None  # the share of /invocations answered 5xx
    min_throughput_rps: float | None = None  # /invocations answered per second
    window_minutes: float = 5.0  # how long the monitor watches the endpoint
    on_breach: str = "alert"  # alert: the run fails saying so; rollback: and rolls back first

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            key: getattr(self, key) for key in _SLO_OBJECTIVES if getattr(self, key) is not None
        }
        return {**out, "window_minutes": self.window_minutes, "on_breach": self.on_breach}


@dataclass(frozen=True)
class TrainerRef:
    image: str = PLATFORM_TRAINER  # "trainer", or the name of a team image in images/<name>/

    @property
    def is_platform(self) -> bool:
        return self.image == PLATFORM_TRAINER


@dataclass(frozen=True)
class ModelSpec:
    model: str
    task: str
    key: str
    label: str
    columns: tuple[Column, ...]
    metric: str
    promotion: Promotion
    trainer: TrainerRef = field(default_factory=TrainerRef)
    description: str = ""
    validation: Validation = field(default_factory=Validation)
    slo: Slo | None = None
    # A run not done this long after it was queued notifies (None: the DAG factory's default).
    deadline_hours: float | None = None
    # Where it came from, for messages: not part of the spec, so a spec read back from its
    # JSON form equals the one read from the file.
    source: str = field(default="", compare=False)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.model}: no column {name!r}")

    def line_of(self, key: str) -> int:
        """The line of a dotted key in the spec file (of its nearest parent when absent)."""
        return _line_of(self.lines, key) or 1

    @property
    def features(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.name not in (self.key, self.label))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def label_column(self) -> Column:
        return self.column(self.label)

    @property
    def key_column(self) -> Column:
        return self.column(self.key)

    @property
    def classes(self) -> tuple[Any, ...]:
        """The label's classes in the spec's order (index = the model's output column)."""
        return self.label_column.categories or ()

    @property
    def deciding_metric(self) -> Metric:
        return metrics_for(self.task)[self.metric]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "description": self.description,
            "task": self.task,
            "dataset": {
                "key": self.key,
                "label": self.label,
                "columns": {c.name: c.to_dict() for c in self.columns},
            },
            "metric": self.metric,
            "promotion": self.promotion.to_dict(),
            "trainer": {"image": self.trainer.image},
            "validation": self.validation.to_dict(),
        }
        if self.slo is not None:
            out["slo"] = self.slo.to_dict()
        if self.deadline_hours is not None:
            out["deadline_hours"] = self.deadline_hours
        return out

    def to_json(self) -> str:
        # Keys in the spec's order, not sorted: the column order is the feature order.
        return json.dumps(self.to_dict(), separators=(",", ":"))


# --- paths and lines for messages -----------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_LAST_SEGMENT = re.compile(r'(?:\.[A-Za-z0-9_-]+|\."(?:[^"\\]|\\.)*"|\[\d+\])$')


def _join(path: str, key: Any) -> str:
    """`path.key`; a key that is not a plain name is quoted, so a path stays one line."""
    text = key if isinstance(key, str) else str(key)
    segment = text if _PLAIN_KEY.fullmatch(text) else json.dumps(text)
    return f"{path}.{segment}" if path else segment


def _line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of `path`, else of its nearest recorded parent (the document at worst)."""
    while path not in lines:
        if not path:
            return None
        shorter = _LAST_SEGMENT.sub("", path)
        path = "" if shorter == path else shorter  # a first segment: its parent is the document
    return lines[path]


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {_show(value)}"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _shown(path: str) -> str:
    """A path for a message: the document is `spec`, and a huge key does not flood a line."""
    return _clip(path, 120) or "spec"


class _Lines:
    """Line numbers of keys by their dotted path, and the file name, for messages."""

    def __init__(self, source: str, lines: dict[str, int] | None = None) -> None:
        self.source = source
        self.lines = lines if lines is not None else {}

    def error(self, path: str, message: str, parent: str | None = None) -> SpecError:
        """The error at `path`'s line, or at `parent`'s when `path` is missing."""
        line = None
        if self.lines:
            line = self.lines.get(path) or _line_of(self.lines, parent or path) or 1
        return _error(self.source, line, _shown(path), message)

    def at_line(self, line: int, problem: str, key: str = "") -> SpecError:
        return _error(self.source, line, key, problem)


# --- reading YAML as JSON data, with line numbers -------------------------------------------

_TAG = "tag:yaml.org,2002:"
_ALIAS = "!ml-contract/alias"  # what an alias is composed into (see _SpecLoader)
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(
    r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN)"
)
_LOOKS_NUMERIC = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


class _TooDeep(yaml.MarkedYAMLError):
    pass


class _SpecLoader(yaml.SafeLoader):
    """Composes an alias into a marker node instead of the anchored one: nothing is shared,
    so an alias is reported where it is written and a billion laughs never expands; and the
    nesting is bounded, so a deep file is an error rather than a RecursionError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            return yaml.ScalarNode(_ALIAS, event.anchor, event.start_mark, event.end_mark)
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _TooDeep(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Reader:
    """A composed YAML node as JSON data, recording the line of every key and list item."""

    def __init__(self, src: _Lines) -> None:
        self.src = src
        self.constructor = yaml.SafeLoader("")

    def value(self, node: yaml.Node, path: str) -> Any:
        if node.tag == _ALIAS:
            raise self.src.error(
                path,
                f"is an alias (*{node.value}); anchors and aliases are not allowed in a spec, "
                "write the value out",
            )
        if isinstance(node, yaml.MappingNode):
            if node.tag != _TAG + "map":
                raise self.src.error(path, f"the tag {_short(node.tag)} is not allowed in a spec")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.key(key_node, path)
                child = _join(path, key)
                self.src.lines[child] = key_node.start_mark.line + 1
                if key in out:
                    raise self.src.error(child, "appears twice")
                out[key] = self.value(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                raise self.src.error(path, f"the tag {_short(node.tag)} is not allowed in a spec")
            items = []
            for index, item in enumerate(node.value):
                child = f"{path}[{index}]"
                self.src.lines[child] = item.start_mark.line + 1
                items.append(self.value(item, child))
            return items
        return self.scalar(node, path)

    def key(self, node: yaml.Node, parent: str) -> str:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.ScalarNode) or node.tag == _ALIAS:
            raise self.src.at_line(line, "a key must be a name", _shown(parent))
        path = _shown(_join(parent, node.value))
        if node.tag == _TAG + "merge":
            message = "merge keys are not allowed in a spec; write the keys out"
            raise self.src.at_line(line, message, path)
        if node.tag != _TAG + "str":  # `1:`, `yes:`, `null:` ... are not names in YAML
            what = _short(node.tag).removeprefix("!!")
            message = f"a key is a name, but YAML reads {node.value!r} as {what} (quote it)"
            raise self.src.at_line(line, message, path)
        return node.value

    def scalar(self, node: yaml.Node, path: str) -> Any:
        tag, raw = node.tag, node.value

        def refuse(problem: str) -> SpecError:
            return self.src.error(path, problem)

        if tag == _TAG + "bool" and raw.lower() not in ("true", "false"):
            raise refuse(f"{_show(raw)} reads as a boolean in YAML 1.1 only: write true or false")
        if tag == _TAG + "int" and not _PLAIN_INT.fullmatch(raw):
            raise refuse(f"{_show(raw)} is an integer in YAML 1.1 only: write it in plain decimal")
        if tag == _TAG + "float" and not _PLAIN_FLOAT.fullmatch(raw):
            raise refuse(f"{_show(raw)} is a number in YAML 1.1 only: write it in plain decimal")
        if tag == _TAG + "timestamp":
            raise refuse(f"{_show(raw)} reads as a date in YAML: quote it if you mean the text")
        if tag not in {_TAG + t for t in ("str", "int", "float", "bool", "null")}:
            raise refuse(f"the tag {_short(tag)} is not allowed in a spec")
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            raise refuse(f"cannot be read ({_clip(str(exc))})") from None


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def load_spec(path: str | Path) -> ModelSpec:
    """Read and check one spec file; SpecError (one line, file:line: key: ...) when bad."""
    path = Path(path)
    src = _Lines(str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _error(str(path), None, "", f"cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise src.at_line(1, f"{len(data)} bytes, over the {MAX_SPEC_BYTES} a spec may have")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise src.at_line(line, f"not UTF-8 text (byte {data[exc.start]:#04x})") from None
    try:
        node = yaml.compose(text, Loader=_SpecLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(src, text, exc) from None
    if node is None:
        raise src.at_line(1, "the file is empty; a spec needs model, task, dataset, ...")
    src.lines[""] = node.start_mark.line + 1
    document = _Reader(src).value(node, "")
    return _check(document, src)


def _yaml_error(src: _Lines, text: str, exc: yaml.YAMLError) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(getattr(exc, "position", None), int):  # a ReaderError: a bad character
        line = text.count("\n", 0, exc.position) + 1  # type: ignore[attr-defined]
    else:
        line = 1
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, _TooDeep):
        return src.at_line(line, f"the spec is {problem}")
    return src.at_line(line, f"not valid YAML ({problem})")


def spec_from_dict(document: Any, source: str = SPEC_ENV) -> ModelSpec:
    """The same checks on an already parsed document (e.g. the JSON in SPEC_ENV)."""
    return _check(document, _Lines(source))


def spec_from_json(text: str | bytes, source: str = SPEC_ENV) -> ModelSpec:
    """The spec from its JSON form (ModelSpec.to_json), checked like a file."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _error(source, None, _shown(_join("", key)), "appears twice")
            out[key] = value
        return out

    try:
        document = json.loads(text, object_pairs_hook=unique)
    except SpecError:
        raise
    except json.JSONDecodeError as exc:
        raise _error(source, None, "", f"not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a 5000-digit number, nesting, bad bytes
        problem = _clip(str(exc)) or type(exc).__name__
        raise _error(source, None, "", f"not valid JSON ({problem})") from None
    return spec_from_dict(document, source)


# --- checks ---------------------------------------------------------------------------------


def _mapping(value: Any, path: str, src: _Lines, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise src.error(path, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            raise src.error(_join(path, key), f"unknown key (allowed: {', '.join(allowed)})")
    return value


def _required(doc: dict[str, Any], key: str, path: str, src: _Lines) -> Any:
    if doc.get(key) is None:
        raise src.error(_join(path, key), "is required", parent=path)
    return doc[key]


def _string(value: Any, path: str, src: _Lines, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise src.error(path, f"expected a non-empty string, got {_kind(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise src.error(path, f"{_show(value)} is not allowed (pattern {pattern.pattern})")
    return value


def _choice(value: Any, path: str, src: _Lines, what: str, known: Any) -> str:
    if not isinstance(value, str) or value not in known:
        raise src.error(path, f"{_show(value)} is not {what} (known: {', '.join(known)})")
    return value


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond any float
        return False


def _number(value: Any, path: str, src: _Lines) -> float:
    if not _finite(value):
        hint = ""
        if isinstance(value, str) and _LOOKS_NUMERIC.fullmatch(value.strip()):
            hint = " (YAML 1.1 reads an exponent as a number only with a dot and a sign: 1.0e-3)"
        raise src.error(path, f"expected a finite number, got {_kind(value)}{hint}")
    return float(value)


def _optional(doc: dict[str, Any], key: str, default: Any) -> Any:
    value = doc.get(key)
    return default if value is None else value


def _category_ok(value: Any, dtype: str) -> bool:
    if isinstance(value, bool):
        return dtype == "bool"
    if dtype == "int64":
        return isinstance(value, int) and _INT64[0] <= value <= _INT64[1]
    if dtype == "float64":
        return _finite(value)
    if dtype == "string":
        return isinstance(value, str) and value != ""
    return False


def _a(dtype: str) -> str:
    return f"an {dtype}" if dtype == "int64" else f"a {dtype}"


def _column(name: str, raw: Any, path: str, src: _Lines, is_key: bool = False) -> Column:
    if not isinstance(name, str) or not _COLUMN.fullmatch(name):
        raise src.error(path, "a column name is letters, digits and underscores (max 64)")
    if isinstance(raw, str) and raw in DTYPES:
        raise src.error(path, f"expected a mapping such as {{dtype: {raw}}}, got {_kind(raw)}")
    doc = _mapping(raw, path, src, _COLUMN_KEYS)
    dtype = _choice(_required(doc, "dtype", path, src), f"{path}.dtype", src, "a dtype", DTYPES)
    nullable = _optional(doc, "nullable", False)
    if not isinstance(nullable, bool):
        raise src.error(f"{path}.nullable", f"expected true or false, got {_kind(nullable)}")
    minimum = maximum = None
    for key in ("min", "max"):
        if doc.get(key) is not None:
            if dtype not in ("int64", "float64"):
                raise src.error(f"{path}.{key}", f"a {dtype} column has no range")
            value = _number(doc[key], f"{path}.{key}", src)
            minimum, maximum = (value, maximum) if key == "min" else (minimum, value)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise src.error(f"{path}.min", f"min {minimum:g} is greater than max {maximum:g}")
    categories = doc.get("categories")
    if categories is not None:
        where = f"{path}.categories"
        if not isinstance(categories, list) or not categories:
            raise src.error(where, f"expected a non-empty list of values, got {_kind(categories)}")
        for index, value in enumerate(categories):
            if not _category_ok(value, dtype):
                raise src.error(f"{where}[{index}]", f"{_show(value)} is not {_a(dtype)} value")
        seen: set[Any] = set()
        for index, value in enumerate(categories):
            if value in seen:
                raise src.error(f"{where}[{index}]", f"{_show(value)} is listed twice")
            seen.add(value)
        if minimum is not None or maximum is not None:
            raise src.error(where, "give either categories or min/max, not both")
        categories = tuple(categories)
    elif dtype == "string" and not is_key:  # a string key names rows: it has no closed set
        raise src.error(
            f"{path}.categories",
            "a string column needs its categories (the values it may hold)",
            parent=path,
        )
    elif dtype == "bool":
        categories = (False, True)
    description = _optional(doc, "description", "")
    if not isinstance(description, str):
        raise src.error(f"{path}.description", f"expected a string, got {_kind(description)}")
    return Column(name, dtype, nullable, minimum, maximum, categories, description)


def _check_key(key: Column, path: str, src: _Lines) -> None:
    if key.dtype not in ("int64", "string"):
        raise src.error(f"{path}.dtype", f"the key is an int64 or string column, not {key.dtype}")
    if key.nullable:
        raise src.error(f"{path}.nullable", "the key cannot be nullable (it names each row)")
    if key.categories is not None:
        raise src.error(f"{path}.categories", "the key has no categories (it is unique per row)")


def _check_label(spec_task: str, label: Column, path: str, src: _Lines) -> None:
    if label.nullable:
        raise src.error(f"{path}.nullable", "the label cannot be nullable")
    if spec_task == "regression":
        if not label.is_numeric:
            raise src.error(f"{path}.dtype", "a regression label is an int64 or float64 column")
        if label.categories is not None:
            raise src.error(f"{path}.categories", "a regression label has no categories")
        return
    if label.dtype == "float64":
        raise src.error(
            f"{path}.dtype", f"a {spec_task} label is int64, bool or string, not float64"
        )
    if label.categories is None:
        raise src.error(
            f"{path}.categories",
            f"a {spec_task} label needs its classes as categories",
            parent=path,
        )
    count = len(label.categories)
    where = f"{path}.categories"
    if spec_task == "binary" and count != 2:
        raise src.error(where, f"a binary label has exactly 2 classes, got {count}", parent=path)
    if spec_task == "multiclass" and count < 3:
        raise src.error(
            where,
            f"a multiclass label has at least 3 classes, got {count} (use task: binary)",
            parent=path,
        )


def _check(document: Any, src: _Lines) -> ModelSpec:
    doc = _mapping(document, "", src, _TOP_KEYS)
    model = _string(_required(doc, "model", "", src), "model", src, _NAME)
    task = _choice(_required(doc, "task", "", src), "task", src, "a task", TASKS)

    dataset = _mapping(
        _required(doc, "dataset", "", src), "dataset", src, ("key", "label", "columns")
    )
    raw_columns = _required(dataset, "columns", "dataset", src)
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise src.error(
            "dataset.columns",
            f"expected a mapping of column name to its contract, got {_kind(raw_columns)}",
        )
    key = _string(_required(dataset, "key", "dataset", src), "dataset.key", src)
    columns = tuple(
        _column(name, raw, _join("dataset.columns", name), src, is_key=name == key)
        for name, raw in raw_columns.items()
    )
    names = [c.name for c in columns]
    label = _string(_required(dataset, "label", "dataset", src), "dataset.label", src)
    for role, name in (("key", key), ("label", label)):
        if name not in names:
            raise src.error(f"dataset.{role}", f"{_show(name)} is not one of dataset.columns")
    if key == label:
        raise src.error("dataset.label", f"the label cannot be the key ({key!r})")
    _check_key(columns[names.index(key)], f"dataset.columns.{key}", src)
    _check_label(task, columns[names.index(label)], f"dataset.columns.{label}", src)
    if len(columns) < 3:
        raise src.error("dataset.columns", "needs at least one feature besides the key and label")

    known = metrics_for(task)
    metric = _choice(_required(doc, "metric", "", src), "metric", src, f"a {task} metric", known)
    promotion_doc = _mapping(
        _required(doc, "promotion", "", src), "promotion", src, _PROMOTION_KEYS
    )
    threshold = _number(
        _required(promotion_doc, "threshold", "promotion", src), "promotion.threshold", src
    )
    low, high = known[metric].bounds or (-math.inf, math.inf)
    if not low <= threshold <= high:
        raise src.error(
            "promotion.threshold",
            f"{threshold:g} is outside the range of {metric} [{low:g}, {high:g}]",
        )
    improvement = _number(
        _optional(promotion_doc, "min_improvement", 0.0), "promotion.min_improvement", src
    )
    if improvement < 0:
        raise src.error("promotion.min_improvement", f"must be at least 0, got {improvement:g}")
    if improvement > high - low:  # only where both bounds are finite
        raise src.error(
            "promotion.min_improvement",
            f"{improvement:g} can never be met: {metric} spans [{low:g}, {high:g}]",
        )
    golden_tolerance = _bounded(promotion_doc, "golden_tolerance", "promotion", src, 0.02, 0)
    breaking_change = _optional(promotion_doc, "breaking_change", False)
    if not isinstance(breaking_change, bool):
        raise src.error(
            "promotion.breaking_change", f"expected true or false, got {_kind(breaking_change)}"
        )
    drift_threshold = _number(
        _optional(promotion_doc, "drift_threshold", 0.25), "promotion.drift_threshold", src
    )
    if drift_threshold <= 0:
        raise src.error(
            "promotion.drift_threshold", f"a PSI threshold is above 0, got {drift_threshold:g}"
        )
    suspect_drop = _bounded(promotion_doc, "suspect_drop", "promotion", src, 0.10, 0)
    approval_hours = _number(
        _optional(promotion_doc, "approval_timeout_hours", 24.0),
        "promotion.approval_timeout_hours",
        src,
    )
    if not 0 < approval_hours <= 24 * 30:
        raise src.error(
            "promotion.approval_timeout_hours",
            f"must be above 0 and at most 720 (30 days), got {approval_hours:g}",
        )
    importance_share = promotion_doc.get("max_importance_share")
    if importance_share is not None:
        importance_share = _number(importance_share, "promotion.max_importance_share", src)
        if not 0 < importance_share <= 1:
            raise src.error(
                "promotion.max_importance_share",
                f"a share is above 0 and at most 1, got {importance_share:g}",
            )
    validation = _validation(_optional(doc, "validation", {}), src)
    slo = None if doc.get("slo") is None else _slo(doc["slo"], src)
    deadline_hours = doc.get("deadline_hours")
    if deadline_hours is not None:
        deadline_hours = _number(deadline_hours, "deadline_hours", src)
        if not 0 < deadline_hours <= MAX_DEADLINE_HOURS:
            raise src.error(
                "deadline_hours",
                f"must be above 0 and at most {MAX_DEADLINE_HOURS:g} (a week), "
                f"got {deadline_hours:g}",
            )

    trainer_doc = _mapping(_optional(doc, "trainer", {}), "trainer", src, ("image",))
    image = _string(_optional(trainer_doc, "image", PLATFORM_TRAINER), "trainer.image", src, _NAME)
    description = _optional(doc, "description", "")
    if not isinstance(description, str):
        raise src.error("description", f"expected a string, got {_kind(description)}")
    return ModelSpec(
        model=model,
        task=task,
        key=key,
        label=label,
        columns=columns,
        metric=metric,
        promotion=Promotion(
            threshold,
            improvement,
            golden_tolerance,
            breaking_change,
            drift_threshold,
            suspect_drop,
            approval_hours,
            importance_share,
        ),
        trainer=TrainerRef(image),
        description=description,
        validation=validation,
        slo=slo,
        deadline_hours=deadline_hours,
        source=src.source,
        lines=dict(src.lines),
    )


def _bounded(
    doc: dict[str, Any],
    key: str,
    parent: str,
    src: _Lines,
    default: float,
    low: float,
    high: float | None = None,
) -> float:
    """An optional finite number in [low, high] (no upper bound when high is None)."""
    path = f"{parent}.{key}"
    value = _number(_optional(doc, key, default), path, src)
    if value < low:
        raise src.error(path, f"must be at least {low:g}, got {value:g}")
    if high is not None and value > high:
        raise src.error(path, f"must be at most {high:g}, got {value:g}")
    return value


def _validation(raw: Any, src: _Lines) -> Validation:
    doc = _mapping(raw, "validation", src, _VALIDATION_KEYS)
    min_rows = _optional(doc, "min_rows", Validation.min_rows)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int):
        raise src.error("validation.min_rows", f"expected a whole number, got {_kind(min_rows)}")
    if min_rows < 1:
        raise src.error("validation.min_rows", f"must be at least 1, got {min_rows}")
    return Validation(
        min_rows=min_rows,
        range_tolerance=_bounded(
            doc, "range_tolerance", "validation", src, Validation.range_tolerance, 0
        ),
        max_outside_share=_bounded(
            doc, "max_outside_share", "validation", src, Validation.max_outside_share, 0, 1
        ),
        null_rate_tolerance=_bounded(
            doc, "null_rate_tolerance", "validation", src, Validation.null_rate_tolerance, 0, 1
        ),
    )


def _slo(raw: Any, src: _Lines) -> Slo:
    doc = _mapping(raw, "slo", src, _SLO_KEYS)
    if all(doc.get(key) is None for key in _SLO_OBJECTIVES):
        raise src.error("slo", f"names no objective (give one of {', '.join(_SLO_OBJECTIVES)})")
    objectives: dict[str, float | None] = {}
    for key in _SLO_OBJECTIVES:
        value = doc.get(key)
        if value is not None:
            value = _number(value, f"slo.{key}", src)
            if value <= 0 and key != "max_error_rate":
                raise src.error(f"slo.{key}", f"must be above 0, got {value:g}")
            if key == "max_error_rate" and not 0 <= value <= 1:
                raise src.error(f"slo.{key}", f"a share is between 0 and 1, got {value:g}")
        objectives[key] = value
    window = _number(
        _optional(doc, "window_minutes", Slo.window_minutes), "slo.window_minutes", src
    )
    if not 0 < window <= MAX_SLO_WINDOW_MINUTES:
        raise src.error(
            "slo.window_minutes",
            f"must be above 0 and at most {MAX_SLO_WINDOW_MINUTES:g}, got {window:g}",
        )
    on_breach = _choice(
        _optional(doc, "on_breach", Slo.on_breach), "slo.on_breach", src, "a reaction", ON_BREACH
    )
    return Slo(**objectives, window_minutes=window, on_breach=on_breach)
