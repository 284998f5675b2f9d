"""The metrics of each task on raw labels, and the promotion decision in either direction."""

from __future__ import annotations

import numpy as np
import pytest
from trainer_helpers import SHOP_SPECS

from ml_contract import load_spec, metrics_for
from trainer.evaluate import decide
from trainer.metrics import score

RMSE = metrics_for("regression")["rmse"]
LOG_LOSS = metrics_for("binary")["log_loss"]
ROC_AUC = metrics_for("binary")["roc_auc"]


@pytest.mark.parametrize(
    ("candidate", "champion", "deploy", "reason"),
    [
        (9.0, None, True, "no champion yet; candidate rmse 9.0000 meets the maximum 25.0000"),
        (25.0, None, True, "no champion yet; candidate rmse 25.0000 meets the maximum 25.0000"),
        (30.0, None, False, "candidate rmse 30.0000 is above the maximum 25.0000"),
        # Below the champion is better for an error: 10 -> 9 improves by 1.
        (
            9.0,
            10.0,
            True,
            "candidate rmse 9.0000 beats champion version 3 (10.0000) by +1.0000, "
            "at least the required 0.5000",
        ),
        (
            9.0,
            9.2,
            False,
            "candidate rmse 9.0000 does not beat champion version 3 (9.2000) by the required "
            "0.5000 (change +0.2000)",
        ),
        (
            9.0,
            8.0,
            False,
            "candidate rmse 9.0000 does not beat champion version 3 (8.0000) by the required "
            "0.5000 (change -1.0000)",
        ),
        # Worse than a champion that itself fails the bar: the bar decides first.
        (30.0, 40.0, False, "candidate rmse 30.0000 is above the maximum 25.0000"),
    ],
)
def test_decide_for_a_lower_is_better_metric(
    candidate: float, champion: float | None, deploy: bool, reason: str
):
    assert decide(RMSE, candidate, champion, "champion version 3", 25.0, 0.5) == (deploy, reason)


def test_decide_reads_the_direction_from_the_metric():
    # The same numbers, opposite answers: log_loss falls as models improve, roc_auc rises.
    assert decide(LOG_LOSS, 0.30, 0.40, "champion version 1", 0.5, 0.05)[0] is True
    assert decide(ROC_AUC, 0.30, 0.40, "champion version 1", 0.2, 0.05)[0] is False
    assert decide(LOG_LOSS, 0.45, 0.40, "champion version 1", 0.5, 0.0)[0] is False
    assert decide(ROC_AUC, 0.45, 0.40, "champion version 1", 0.2, 0.0)[0] is True
    assert decide(ROC_AUC, 0.69, None, "", 0.7, 0.0) == (
        False,
        "candidate roc_auc 0.6900 is below the minimum 0.7000",
    )


def test_binary_scores_take_the_probability_of_the_second_class_of_the_contract():
    spec = load_spec(SHOP_SPECS["binary"])  # classes: no, yes
    labels = np.array(["no", "yes", "yes", "no", "yes"], dtype=object)
    p_yes = np.array([0.1, 0.8, 0.6, 0.4, 0.3])

    scores = score(spec, labels, p_yes)

    assert set(scores) == set(metrics_for("binary"))
    assert scores["accuracy"] == pytest.approx(0.8)  # 0.3 for a "yes" is the one miss
    assert scores["roc_auc"] == pytest.approx(5 / 6)
    assert score(spec, labels, 1 - p_yes)["roc_auc"] == pytest.approx(1 / 6)


def test_multiclass_scores_read_probability_columns_in_the_contract_order():
    spec = load_spec(SHOP_SPECS["multiclass"])  # classes: low, mid, high
    labels = np.array(["low", "mid", "high", "high", "low", "mid"], dtype=object)
    right = np.eye(3)[[0, 1, 2, 2, 0, 1]] * 0.9 + 0.1 / 3

    perfect = score(spec, labels, right)
    swapped = score(spec, labels, right[:, [1, 0, 2]])  # as if the order were mid, low, high

    assert perfect["accuracy"] == perfect["f1"] == perfect["roc_auc"] == 1.0
    assert perfect["log_loss"] == pytest.approx(-np.log(0.9 + 0.1 / 3))
    assert swapped["accuracy"] == pytest.approx(2 / 6)
    assert swapped["log_loss"] > perfect["log_loss"]


def test_regression_scores_are_in_the_label_units():
    spec = load_spec(SHOP_SPECS["regression"])
    targets = np.array([100.0, 120.0, 80.0, 110.0])
    predictions = np.array([102.0, 117.0, 80.0, 106.0])

    scores = score(spec, targets, predictions)

    assert scores == {
        "rmse": pytest.approx(np.sqrt((4 + 9 + 0 + 16) / 4)),
        "mae": pytest.approx((2 + 3 + 0 + 4) / 4),
        "r2": pytest.approx(1 - 29 / 875),
    }
