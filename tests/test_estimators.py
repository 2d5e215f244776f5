"""The model pieces: settings that scale with the book, logistic regression whose contributions add
up, calibration that never inverts a ranking, AUC helpers that agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.config import ModelConfig
from churnml.models.artifact import Calibration, TrainedModel
from churnml.models.estimators import candidates, fit, fit_linear, leaf_size
from churnml.models.metrics import weighted_auc
from churnml.models.train import Dataset, trainable


def _book(accounts: int, months: int = 24, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per account and month; churn follows usage and seats, with noise."""
    rng = np.random.default_rng(seed)
    n = accounts * months
    x = pd.DataFrame({"usage": rng.gamma(2.0, 10.0, n), "seats": rng.integers(1, 50, n),
                      "tickets": rng.poisson(1.0, n).astype(float)})  # fmt: skip
    x.loc[rng.random(n) < 0.1, "tickets"] = np.nan
    logit = -3.0 - 0.08 * (x.usage - 20) + 0.4 * x.tickets.fillna(1) - 0.02 * x.seats
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)


@pytest.mark.parametrize(("accounts", "leaf"), [(300, 48), (20_000, 1000)])
def test_lightgbm_settings_scale_with_the_book(accounts: int, leaf: int) -> None:
    rows = accounts * 24
    assert leaf_size(rows) == leaf
    recipes = candidates(ModelConfig(), rows)
    families = [r.family for r in recipes]
    assert families.index("logistic_regression") < families.index("lightgbm")  # simplest first
    assert {r.params["min_data_in_leaf"] for r in recipes if r.family == "lightgbm"} == {
        leaf, 2 * leaf
    }  # fmt: skip


def test_a_small_book_still_gets_trees_that_split() -> None:
    x, y = _book(300)
    cfg = ModelConfig()
    recipe = next(r for r in candidates(cfg, len(y)) if r.family == "lightgbm")
    trees, rounds = fit(recipe, x, y, cfg, rounds=50)
    leaves = trees.booster.dump_model()["tree_info"][0]["num_leaves"]
    assert rounds == 50 and leaves == recipe.params["num_leaves"]
    test_x, test_y = _book(300, seed=1)
    assert roc_auc_score(test_y, trees.raw(test_x)) > 0.7


def test_logistic_contributions_add_up_to_the_raw_score() -> None:
    x, y = _book(100)
    x["plan"] = pd.Categorical(np.where(x.seats > 25, "pro", "starter"))
    model = fit_linear(x, y, c=1.0, seed=0)
    contributions = model.contributions(x)
    assert contributions.shape == (len(x), x.shape[1] + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), model.raw(x), atol=1e-9)
    assert roc_auc_score(y, model.raw(x)) > 0.7


def test_a_models_frame_has_its_columns_in_its_order_numbers_as_floats() -> None:
    shell = TrainedModel(None, ["seats", "plan", "usage"], {"plan": ["basic", "pro"]},  # type: ignore[arg-type]
                         Calibration("platt", {}))  # fmt: skip
    rows = pd.DataFrame({"usage": [1, 2, 3], "extra": [0, 0, 0], "plan": ["pro", "gold", None],
                         "seats": [True, False, True]})  # fmt: skip
    frame = shell.frame(rows)
    assert list(frame.columns) == ["seats", "plan", "usage"]
    assert frame.seats.tolist() == [1.0, 0.0, 1.0] and frame.usage.dtype == "float64"
    assert frame.plan.tolist()[0] == "pro" and frame.plan.isna().tolist() == [False, True, True]
    texts = shell.frame(rows.assign(usage=["4", "n/a", "5.5"]))  # a custom table's text
    np.testing.assert_array_equal(texts.usage, [4.0, np.nan, 5.5])
    with pytest.raises(ValueError, match="lacks 1 column"):
        shell.frame(rows.drop(columns="seats"))


def test_calibration_never_inverts_the_ranking() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=2000)
    y = (rng.random(2000) < np.where(raw > 0, 0.02, 0.2)).astype(float)  # higher raw, fewer
    flat = Calibration.fit(raw, y, "platt")
    np.testing.assert_allclose(flat.apply(raw), y.mean(), rtol=1e-3)  # the base rate for all
    assert flat.flat and not Calibration.fit(-raw, y, "platt").flat


def test_weighted_auc_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y, p = (rng.random(500) < 0.3).astype(float), rng.integers(0, 50, 500) / 50  # with ties
    w = rng.integers(0, 4, (3, 500)).astype(float)  # three resamples, as the bootstrap draws
    expected = [roc_auc_score(y, p, sample_weight=row) for row in w]
    np.testing.assert_allclose(weighted_auc(y, p, w), expected, rtol=1e-12)


def test_too_few_positives_is_a_reason_not_to_train() -> None:
    frame = pd.DataFrame({"y": [1.0] * 5 + [0.0] * 200})
    ds = Dataset(frame, "y", [], [])
    assert "5 rows of the rarer class, fewer than model.min_positives = 20" in trainable(ds, 20)
    assert trainable(ds, 5) is None
    single = Dataset(pd.DataFrame({"y": [0.0] * 10}), "y", [], [])
    assert "a single class" in trainable(single, 1)
