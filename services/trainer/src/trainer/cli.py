"""`trainer [--xcom-path PATH] <subcommand>`: the entry point the Airflow DAGs call.

Each subcommand writes its result as JSON to the XCom path and logs it as one line.
Exit codes: 0 success, 1 a TrainerError or an unreachable MLflow / storage endpoint (one
line on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from ml_contract import SPEC_ENV
from ml_dependencies import BadBound, bounded_dependencies, unreachable
from trainer.errors import TrainerError
from trainer.hyperparams import OPTIMIZERS, Hyperparams
from trainer.xcom import DEFAULT_XCOM_PATH, XCOM_ENV, write_xcom, xcom_path

log = logging.getLogger("trainer")

PROG = "trainer"


def _bounded(
    kind: Callable[[str], float], low: float | None, high: float | None, closed_high: bool = True
) -> Callable[[str], float]:
    """An argparse type that parses with `kind` and rejects values outside [low, high]."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        too_high = high is not None and (value > high if closed_high else value >= high)
        if (low is not None and value < low) or too_high:
            upper = "" if high is None else f" and {'at most' if closed_high else 'below'} {high:g}"
            raise argparse.ArgumentTypeError(f"{text} must be at least {low:g}{upper}")
        return value

    return parse


def _open_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid float") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (exclusive)")
    return value


def _positive_float(text: str) -> float:
    value = _bounded(float, 0, None)(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of layer widths such as 64,32"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every layer width must be at least 1")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Validate, preprocess, train, evaluate and monitor tabular models, each "
        "under its model spec (data contract, metric, thresholds).",
    )
    parser.add_argument(
        "--xcom-path",
        help=f"where to write the result JSON (default: ${XCOM_ENV}, else {DEFAULT_XCOM_PATH})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<subcommand>")

    from trainer.generate import CHURN, SOURCES

    gen = commands.add_parser("generate", help="write a day's partition of a demo data source")
    gen.add_argument("--source", choices=SOURCES, default=CHURN, help="default: %(default)s")
    gen.add_argument("--date", required=True, help="partition date, YYYY-MM-DD (seeds the data)")
    gen.add_argument("--output-uri", required=True, help="partition folder (file://, s3://, path)")
    gen.add_argument(
        "--rows", type=_bounded(int, 1, None), help="default: 4000 (churn), 80%% of a dataset"
    )
    gen.add_argument(
        "--drift", type=_bounded(float, 0, 5), default=0.0, help="0 = reference distribution"
    )
    gen.set_defaults(handler=_generate)

    val = commands.add_parser("validate", help="check a partition or Parquet file")
    val.add_argument("--input-uri", required=True, help="partition folder or one .parquet file")
    val.add_argument(
        "--report-uri",
        help="report JSON (default: <partition>/_validation.json, or <file>.validation.json)",
    )
    _spec_flags(val, model_name=True)
    val.set_defaults(handler=_validate)

    pre = commands.add_parser("preprocess", help="validate, split and scale")
    pre.add_argument("--input-uri", required=True)
    pre.add_argument("--output-uri", required=True)
    pre.add_argument("--seed", type=_bounded(int, 0, None), default=42)
    pre.add_argument("--val-fraction", type=_open_fraction, default=0.15)
    pre.add_argument("--test-fraction", type=_open_fraction, default=0.15)
    _spec_flags(pre, model_name=True)
    pre.set_defaults(handler=_preprocess)

    defaults = Hyperparams()
    tr = commands.add_parser("train", help="train the MLP and log it to MLflow")
    tr.add_argument("--data-uri", required=True, help="a preprocess output folder")
    tr.add_argument("--experiment", required=True, help="MLflow experiment (created if missing)")
    tr.add_argument("--learning-rate", type=_positive_float, default=defaults.learning_rate)
    tr.add_argument("--batch-size", type=_bounded(int, 1, None), default=defaults.batch_size)
    tr.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    tr.add_argument("--epochs", type=_bounded(int, 1, None), default=defaults.epochs)
    tr.add_argument(
        "--hidden-sizes",
        type=_hidden_sizes,
        default=defaults.hidden_sizes,
        help="layer widths, e.g. 64,32",
    )
    tr.add_argument(
        "--dropout", type=_bounded(float, 0, 1, closed_high=False), default=defaults.dropout
    )
    tr.add_argument("--weight-decay", type=_bounded(float, 0, None), default=defaults.weight_decay)
    tr.add_argument("--seed", type=_bounded(int, 0, None), default=defaults.seed)
    _spec_flags(tr, model_name=True)
    tr.set_defaults(handler=_train)

    ev = commands.add_parser("evaluate", help="compare a candidate with the @champion")
    ev.add_argument("--model-uri", required=True, help="the candidate, e.g. models:/m-...")
    ev.add_argument("--data-uri", required=True, help="a preprocess output folder")
    ev.add_argument("--model-name", required=True, help="registered model holding @champion")
    ev.add_argument("--run-id", help="candidate's MLflow run: gets eval_<metric> and tags")
    ev.add_argument("--metric", help="default: the spec's metric")
    ev.add_argument(
        "--threshold",
        "--min-metric",
        type=float,
        help="the bar: at least this (at most, for error metrics); default: the spec's",
    )
    ev.add_argument("--min-improvement", type=_bounded(float, 0, None), help="default: the spec's")
    _spec_flags(ev, model_name=False)
    ev.set_defaults(handler=_evaluate)

    mon = commands.add_parser("monitor", help="drift of new data and decay of the @champion")
    mon.add_argument("--current-uri", required=True, help="the newest labelled partition")
    mon.add_argument("--model-name", required=True, help="registered model holding @champion")
    mon.add_argument(
        "--reference-uri", help="training reference (default: the champion's training partition)"
    )
    mon.add_argument("--metric", help="default: the spec's metric")
    mon.add_argument("--psi-threshold", type=_positive_float, default=0.2)
    mon.add_argument(
        "--threshold",
        "--min-metric",
        type=float,
        help="the champion's bar on the new data; default: the spec's promotion threshold",
    )
    _spec_flags(mon, model_name=False)
    mon.set_defaults(handler=_monitor)
    return parser


def _spec_flags(parser: argparse.ArgumentParser, model_name: bool) -> None:
    """--spec, and --model-name where the subcommand has none of its own."""
    parser.add_argument(
        "--spec",
        help=f"the model spec (.model.yaml or its JSON); default: ${SPEC_ENV}, else the spec "
        "logged with --model-name in MLflow",
    )
    if model_name:
        parser.add_argument(
            "--model-name",
            help="registered model whose logged spec to use (without --spec), and whose "
            "champion's reference profile validate and preprocess check the rows against",
        )


def spec_of(args: argparse.Namespace, data_uri: str | None = None):  # noqa: ANN201
    """The ModelSpec the subcommand runs under (trainer.specs.resolve_spec's order)."""
    from trainer.specs import resolve_spec

    return resolve_spec(args.spec, getattr(args, "model_name", None), data_uri)


# Handlers import their module lazily: `trainer validate` need not import torch or mlflow.
def _generate(args: argparse.Namespace) -> dict:
    from trainer.generate import run_generate

    return run_generate(args.date, args.output_uri, args.rows, args.drift, args.source)


def _validate(args: argparse.Namespace) -> dict:
    from trainer.validation import run_validate

    spec = spec_of(args)
    return run_validate(args.input_uri, args.report_uri, spec, _reference_of(args))


def _reference_of(args: argparse.Namespace) -> dict | None:
    """The champion's reference profile with --model-name (None without, or no champion)."""
    if not args.model_name:
        return None
    from trainer.profile import champion_profile

    return champion_profile(args.model_name)


def _preprocess(args: argparse.Namespace) -> dict:
    from trainer.preprocess import run_preprocess

    return run_preprocess(
        args.input_uri,
        args.output_uri,
        args.seed,
        args.val_fraction,
        args.test_fraction,
        spec_of(args),
        reference=_reference_of(args),
    )


def _train(args: argparse.Namespace) -> dict:
    from trainer.train import run_train

    hp = Hyperparams(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        epochs=args.epochs,
        hidden_sizes=tuple(args.hidden_sizes),
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    return run_train(args.data_uri, args.experiment, hp, spec_of(args, args.data_uri))


def _evaluate(args: argparse.Namespace) -> dict:
    from trainer.evaluate import run_evaluate

    return run_evaluate(
        args.model_uri,
        args.data_uri,
        args.model_name,
        args.run_id,
        spec_of(args, args.data_uri),
        args.metric,
        args.threshold,
        args.min_improvement,
    )


def _monitor(args: argparse.Namespace) -> dict:
    from trainer.monitor import run_monitor

    return run_monitor(
        args.current_uri,
        args.model_name,
        args.reference_uri,
        spec_of(args),
        args.metric,
        args.psi_threshold,
        args.threshold,
    )


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (tests swap it between runs)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _CurrentStderrHandler) for h in root.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def one_line_error(exc: BaseException) -> str | None:
    """What main prints for an expected failure: an unreachable MLflow or storage endpoint
    (whatever error it surfaced as), a TrainerError, or a bad ML_PLATFORM_DEPENDENCY_TIMEOUT
    (the user's to fix, like a TrainerError); None for anything else."""
    message = unreachable(exc)
    if message is None and isinstance(exc, TrainerError | BadBound):
        message = str(exc)
    return None if message is None else " ".join(message.split())  # one line, always


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        with bounded_dependencies():
            path = xcom_path(args.xcom_path)
            result = args.handler(args)
            write_xcom(result, path)
    except Exception as exc:
        message = one_line_error(exc)
        if message is None:
            raise  # a bug: the traceback is what helps
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
    log.info("%s: %s", args.command, json.dumps(result, sort_keys=True))
    return 0
