"""The trainer's epoch time against a bare PyTorch loop on the same data and model (`make bench`).

Two contracts, one after the other: the churn model's (dags/churn_classifier.model.yaml, 8
numeric features) and the churn columns plus two string and one bool feature one-hot encoded
(tests/benchmarks/specs/churn_with_categories.model.yaml, 21 network inputs).

Target (from the issue): the trainer's per-epoch overhead (validation pass, MLflow logging,
bookkeeping) at most 10% over a bare loop, i.e. trainer epoch / bare epoch <= 1.10.

Set-up: the trainer CLI itself generates a day of data and preprocesses it into a temp dir,
and a real MLflow server (SQLite, local artifacts) runs on 127.0.0.1.

The trainer side is the real `train` subcommand, `trainer.cli.main(["train", ...])`, run in
this process against that server. Each epoch's time comes from the moments the trainer's own
per-epoch callback logs its `epoch k/N` line, read by a handler on the `trainer.train` logger.
That is more faithful than calling `fit(..., on_epoch=...)` with a copy of the callback: the
callback is a closure inside `train.py`, so a copy could drift from it, and timing the whole
command also shows the fixed costs (loading, run set-up, model logging). It is better than a
subprocess with log timestamps too: those have millisecond resolution and could not share this
process's thread setting, and the two sides could only alternate a whole command at a time.
The time from one `epoch` line to the next is one whole epoch as production runs it: the
training batches, the validation pass, the MLflow metrics call and the log line. Epoch 1 has no
earlier line, so it is left out on both sides. The trainer queues the metrics for MLflow's
logging thread (`synchronous=False`), whose request would overlap its next epoch; here the
handler finishes it first (`mlflow.flush_async_logging()`, a no-op for synchronous logging) so
that it does not slow the bare epoch instead, and charges the CPU time this process spent on it
to the trainer's epoch (the server's own work runs in its process, as in production).

The bare side is a hand-written loop on tensors made by the trainer's own loading code:
build_mlp with the same widths and dropout, Adam with the same learning rate, the same batch
size, a fresh random permutation per epoch, forward/backward/step, and nothing else.

The machine is small and shared (its speed moves by 2x within seconds), so the two sides
alternate epoch by epoch: when the trainer logs an epoch line, the handler runs one bare epoch
before returning, and that time is taken out of the trainer's figures (the trainer's next
epoch is timed from the moment the handler returns). Both use the same number of torch threads,
and the figures are medians over several train commands. The headline ratio is the median of
the per-pair ratios (trainer epoch k / the bare epoch right after it): when the machine's speed
shifts between or within commands, the pooled medians of the two sides can land in different
speed regimes, while the two epochs of a pair share one. The ratio of the pooled medians is
printed beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn

from ml_contract import SPEC_ENV, load_spec
from ml_platform.local.mlflow_server import local_mlflow_server
from trainer import storage
from trainer.cli import main as trainer_main
from trainer.fit import TensorData
from trainer.hyperparams import Hyperparams
from trainer.model import build_mlp
from trainer.prepared import load_prepared
from trainer.specs import resolve_spec

REPO = Path(__file__).resolve().parents[2]
CASES = {
    "churn (8 numeric features)": REPO / "dags" / "churn_classifier.model.yaml",
    "churn + categorical features": Path(__file__).with_name("specs")
    / "churn_with_categories.model.yaml",
}

TARGET = 1.10
ROWS = 100_000  # ~70k training rows: an epoch takes ~0.4s on one thread here
EPOCHS = 8  # per train command; epochs 2..8 are measured
REPEAT = 3  # train commands per contract
# One thread on both sides: batches of 128 x 64 gain nothing from intra-op threads, and on a
# two-core box a second one fights the MLflow server (and the neighbours) for the CPU.
THREADS = 1
DAY = "2026-11-02"
HP = Hyperparams(epochs=EPOCHS)


def _run_trainer(*args: str, cwd: Path) -> None:
    trainer = Path(sys.executable).with_name("trainer")
    done = subprocess.run(
        [str(trainer), "--xcom-path", str(cwd / "xcom.json"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    if done.returncode != 0:
        raise RuntimeError(f"trainer {args[0]} exited with {done.returncode}:\n{done.stderr}")


def add_categories(raw: Path, spec_file: Path) -> None:
    """Give the generated partition the spec's extra categorical columns (seeded, uniform)."""
    spec = load_spec(spec_file)
    uri = storage.join(storage.normalize(str(raw)), "data.parquet")
    frame = storage.read_parquet(uri)
    rng = np.random.default_rng(7)
    for column in spec.features:
        if column.is_categorical and column.name not in frame:
            values = np.asarray(column.categories, dtype=object)
            frame[column.name] = pd.Series(values[rng.integers(len(values), size=len(frame))])
            if column.dtype == "bool":
                frame[column.name] = frame[column.name].astype(bool)
    storage.write_parquet(frame, uri)


def prepare_data(tmp: Path, spec_file: Path) -> tuple[str, float, float]:
    """Generates and preprocesses a partition with the trainer CLI; returns its URI and times."""
    raw, prepared = tmp / spec_file.stem / "daily" / DAY, tmp / spec_file.stem / "prepared" / DAY
    started = time.perf_counter()
    _run_trainer("generate", "--date", DAY, "--rows", str(ROWS), "--output-uri", str(raw), cwd=tmp)
    add_categories(raw, spec_file)
    generated = time.perf_counter()
    _run_trainer(
        "preprocess",
        "--input-uri",
        str(raw),
        "--output-uri",
        str(prepared),
        "--spec",
        str(spec_file),
        cwd=tmp,
    )
    return str(prepared), generated - started, time.perf_counter() - generated


def load_tensors(data_uri: str) -> tuple[TensorData, float]:
    """What `train` does before fitting: read the manifest, encoder and splits, make tensors."""
    started = time.perf_counter()
    prepared = load_prepared(data_uri, resolve_spec(None, None, data_uri))
    splits = {name: prepared.split(name) for name in ("train", "val", "test")}
    (x_train, y_train), (x_val, y_val) = (prepared.encoded(splits[n]) for n in ("train", "val"))
    data = TensorData.from_numpy(x_train, y_train, x_val, y_val, torch.device("cpu"))
    return data, time.perf_counter() - started


class BareLoop:
    """A minimal loop: shuffle, slice, forward, backward, step; nothing else."""

    def __init__(self, data: TensorData, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = build_mlp(data.x_train.shape[1], HP.hidden_sizes, HP.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=HP.learning_rate)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.x, self.y = data.x_train, data.y_train

    def epoch(self) -> float:
        """Trains one epoch; returns its seconds."""
        model, optimizer, loss_fn, x, y = self.model, self.optimizer, self.loss_fn, self.x, self.y
        rows = x.shape[0]
        started = time.perf_counter()
        model.train()
        order = torch.randperm(rows)
        for start in range(0, rows, HP.batch_size):
            index = order[start : start + HP.batch_size]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started


class _Clock(logging.Handler):
    """Reads the clock whenever trainer.train logs; after an `epoch` line, runs a bare epoch."""

    def __init__(self, bare: BareLoop) -> None:
        super().__init__(logging.INFO)
        self.bare = bare
        self.marks: list[tuple[float, logging.LogRecord]] = []
        self.epoch_logged: list[float] = []  # when the trainer's callback logged epoch k
        self.resumed: list[float] = []  # when the trainer got control back after it
        self.bare_epochs: list[float] = []
        self.logging_cpu: list[float] = []  # this process's CPU seconds on the MLflow request
        self.fit_seconds: list[float] = []  # fit's own epoch timing (the line's last value)

    def emit(self, record: logging.LogRecord) -> None:
        now = time.perf_counter()
        self.marks.append((now, record))
        if str(record.msg).startswith("epoch "):
            self.epoch_logged.append(now)
            self.fit_seconds.append(float(record.args[-1]))
            cpu = time.process_time()  # the training thread waits: this is the logging thread
            mlflow.flush_async_logging()
            self.logging_cpu.append(time.process_time() - cpu)
            self.bare_epochs.append(self.bare.epoch())
            self.resumed.append(time.perf_counter())

    def first(self, prefix: str) -> float:
        found = next((t for t, r in self.marks if str(r.msg).startswith(prefix)), None)
        if found is None:
            raise RuntimeError(f"trainer.train logged no {prefix!r} line: did its logging change?")
        return found


def train_command(data_uri: str, tmp: Path, bare: BareLoop, epochs: int) -> dict:
    """Runs `trainer train` in this process, a bare epoch after each of its epochs.

    Returns the trainer's epoch times (2..N), the bare ones, and the command's phases, all
    without the time the bare epochs took.
    """
    clock = _Clock(bare)
    logger = logging.getLogger("trainer.train")
    logger.addHandler(clock)
    argv = ["--xcom-path", str(tmp / "xcom.json"), "train", "--data-uri", data_uri]
    argv += ["--experiment", "bench-trainer", "--epochs", str(epochs)]
    argv += ["--learning-rate", str(HP.learning_rate), "--batch-size", str(HP.batch_size)]
    argv += ["--optimizer", HP.optimizer, "--dropout", str(HP.dropout)]
    argv += ["--hidden-sizes", ",".join(str(size) for size in HP.hidden_sizes)]
    try:
        # The trainer logs to the current sys.stderr; MLflow prints a run link to stdout.
        with (
            open(tmp / "train.log", "a") as out,
            contextlib.redirect_stderr(out),
            contextlib.redirect_stdout(out),
        ):
            started = time.perf_counter()
            code = trainer_main(argv)
            ended = time.perf_counter()
    finally:
        logger.removeHandler(clock)
    if code != 0:
        tail = (tmp / "train.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"trainer train exited with {code}:\n{tail}")
    if len(clock.epoch_logged) != epochs:
        raise RuntimeError(
            f"expected {epochs} 'epoch' log lines from trainer.train,"
            f" got {len(clock.epoch_logged)}: did the per-epoch log line change?"
        )
    logged, resumed = clock.epoch_logged, clock.resumed
    gaps = [b - a for a, b in zip(resumed[:-1], logged[1:], strict=True)]
    trainer_epochs = [gap + cpu for gap, cpu in zip(gaps, clock.logging_cpu[1:], strict=True)]
    injected = sum(b - a for a, b in zip(logged, resumed, strict=True))
    return {
        "epochs": trainer_epochs,
        "fit": clock.fit_seconds[1:],
        "logging_cpu": clock.logging_cpu[1:],
        "bare": clock.bare_epochs[1:],
        "wall": ended - started - injected + sum(clock.logging_cpu),
        "before_run": clock.first("training on") - started,
        "run_and_epoch_1": clock.epoch_logged[0] - clock.first("training on"),
        "later_epochs": sum(trainer_epochs),
        "after_fit": ended - resumed[-1],
        "model_logging": ended - clock.first("logging the model"),
    }


def main() -> int:
    torch.set_num_threads(THREADS)
    for name in [key for key in os.environ if key.startswith("AIRFLOW_CTX_")]:
        del os.environ[name]  # outside a DAG run: no reuse of earlier tries
    os.environ.pop(SPEC_ENV, None)  # train reads each case's spec from its prepared data
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        started = time.perf_counter()
        with local_mlflow_server(tmp / "mlflow") as server:
            server_s = time.perf_counter() - started
            os.environ["MLFLOW_TRACKING_URI"] = server.url
            for case, spec_file in CASES.items():
                setup: dict[str, float] = {"server": server_s}
                data_uri, setup["generate"], setup["preprocess"] = prepare_data(tmp, spec_file)
                loads = [load_tensors(data_uri) for _ in range(3)]
                data = loads[-1][0]
                setup["load"] = statistics.median(seconds for _, seconds in loads)
                # Warm-up, not measured: imports, the first HTTP connection, the first log.
                warmup = train_command(data_uri, tmp, BareLoop(data, seed=0), epochs=2)
                runs = [
                    train_command(data_uri, tmp, BareLoop(data, seed=rep), EPOCHS)
                    for rep in range(REPEAT)
                ]
                print(f"== contract: {case} ({data.x_train.shape[1]} network inputs)")
                ratios[case] = report(data, setup, warmup, runs)
                print()
    for case, ratio in ratios.items():
        print(f"trainer epoch / bare epoch, {case}: {ratio:.2f} (target <= {TARGET:.2f})")
    return 0 if all(ratio <= TARGET for ratio in ratios.values()) else 1


def report(
    data: TensorData,
    setup: dict[str, float],
    warmup: dict,
    runs: list[dict],
) -> float:
    """Prints one contract's figures; returns the headline ratio."""
    median = statistics.median
    print(
        f"torch threads {THREADS}; {data.x_train.shape[0]:,} train / {data.x_val.shape[0]:,} val"
        f" rows; batch {HP.batch_size}, {HP.optimizer} lr {HP.learning_rate},"
        f" hidden {','.join(map(str, HP.hidden_sizes))}, dropout {HP.dropout}"
    )
    print(
        f"set-up: generate {ROWS:,} rows {setup['generate']:.2f}s,"
        f" preprocess {setup['preprocess']:.2f}s, MLflow server start {setup['server']:.2f}s,"
        f" warm-up train command (2 epochs) {warmup['wall']:.2f}s"
    )
    print(
        "one-off data loading (manifest, encoder, 3 splits, encoding, tensors):"
        f" {setup['load']:.3f}s (median of 3)"
    )
    print()
    header = ("run", "trainer epoch s", "of it fit() s", "bare epoch s", "ratio")
    print("{:>3} {:>16} {:>14} {:>13} {:>6}".format(*header))
    for rep, run in enumerate(runs, 1):
        epoch, fit_s, bare_s = median(run["epochs"]), median(run["fit"]), median(run["bare"])
        print(f"{rep:>3} {epoch:16.3f} {fit_s:14.3f} {bare_s:13.3f} {epoch / bare_s:6.2f}")
    trainer_epoch = median(s for run in runs for s in run["epochs"])
    fit_epoch = median(s for run in runs for s in run["fit"])
    bare_epoch = median(s for run in runs for s in run["bare"])
    print(
        f"{'all':>3} {trainer_epoch:16.3f} {fit_epoch:14.3f} {bare_epoch:13.3f}"
        f" {trainer_epoch / bare_epoch:6.2f}"
    )
    pairs = [t / b for run in runs for t, b in zip(run["epochs"], run["bare"], strict=True)]
    print(
        f"medians of epochs 2..{EPOCHS} of {REPEAT} train commands, each trainer epoch followed"
        " by a bare one; 'of it fit()' is fit's own epoch timing (batches, validation),"
        " without the MLflow/log callback"
    )
    logging_ms = 1000 * median(s for run in runs for s in run["logging_cpu"])
    print(f"CPU of MLflow's logging thread per epoch, in the trainer epoch: {logging_ms:.1f} ms")
    print()
    print("train command phases, without the bare epochs run between its epochs:")

    def phase(name: str) -> float:
        return median(run[name] for run in runs)

    wall = phase("wall")
    rows = [
        (f"whole train command, {EPOCHS} epochs (median of {REPEAT})", wall),
        ("  before the MLflow run (data loading, experiment lookup)", phase("before_run")),
        ("  run set-up (params, dataset input, tensors) + epoch 1", phase("run_and_epoch_1")),
        (f"  epochs 2..{EPOCHS}", phase("later_epochs")),
        ("  after the last epoch (final metrics, model, run end)", phase("after_fit")),
        ("    of it model logging", phase("model_logging")),
    ]
    for name, seconds in rows:
        print(f"{name:57} {seconds:6.2f}s")
    print(
        f"  fixed costs: wall - {EPOCHS} x trainer epoch = {wall - EPOCHS * trainer_epoch:.2f}s;"
        f" wall / ({EPOCHS} x bare epoch {EPOCHS * bare_epoch:.2f}s) ="
        f" {wall / (EPOCHS * bare_epoch):.2f}"
    )
    print(
        f"ratio of the pooled medians above {trainer_epoch / bare_epoch:.2f}; median of the"
        f" {len(pairs)} adjacent (trainer, bare) pairs' ratios {median(pairs):.2f}, the figure"
        " below: a pair shares the machine's speed of the moment, pooled medians do not"
    )
    return median(pairs)


if __name__ == "__main__":
    sys.exit(main())
