"""cfxl evaluate's numbers: the model's validation errors as the workbook's predictions sheet
has them, and the baselines Surprise users know, fitted as Surprise fits them."""

import math

import numpy as np
import pytest

from cfxl.data.ratings import split
from cfxl.engine.train import Config, fit
from cfxl.errors import CfxlError
from cfxl.records.evaluation import QUANTILES, als_biases, evaluate
from cfxl.records.model_tables import model_tables
from tests.tolerance import assert_close


@pytest.fixture(scope="module")
def trained(ratings):
    return fit(Config(epochs=1, bs=4096, n_factors=8), ratings)


def test_the_models_scores_are_the_predictions_sheets(trained, ratings):
    ev = evaluate(trained, ratings)
    rmse, mae = model_tables(trained, ratings).error_summary()
    model = ev.scores[0]
    assert model.name == "model"
    assert_close(model.rmse, rmse, scale=rmse)
    assert_close(model.mae, mae, scale=mae)
    assert ev.n_valid == int(trained.config.val_pct * len(ratings))
    assert ev.n_train + ev.n_valid == len(ratings)


def test_the_global_mean_baseline_is_the_training_mean(trained, ratings):
    ev = evaluate(trained, ratings)
    y = ratings.rating.astype(np.float64)
    train_idx, val_idx = split(len(y), trained.config.val_pct, trained.config.seed)
    mean = y[train_idx].mean()
    want = math.sqrt(np.mean((y[val_idx] - mean) ** 2))
    got = {s.name: s for s in ev.scores}["global mean"]
    assert_close(got.rmse, want, scale=want)


def test_the_bias_baseline_beats_the_mean_and_its_quantiles_are_ordered(trained, ratings):
    ev = evaluate(trained, ratings)
    scores = {s.name: s for s in ev.scores}
    assert scores["user + movie biases"].rmse < scores["global mean"].rmse
    for spread in (ev.user_rmse, ev.movie_rmse):
        values = [spread[q] for q in QUANTILES]
        assert values == sorted(values) and values[0] >= 0


def test_als_reaches_the_regularised_least_squares_biases():
    """Run long enough, Surprise's alternation stops moving: each bias is then the shrunk mean
    its own normal equation asks for, given the others."""
    rng = np.random.default_rng(0)
    u, m = rng.integers(0, 30, 2000), rng.integers(0, 40, 2000)
    r = rng.normal(size=2000) + 0.5 * np.arange(30)[u] / 30 - 0.3 * np.arange(40)[m] / 40
    bu, bi = als_biases(u, m, r, 30, 40, epochs=500, reg_u=15, reg_i=10)
    residual = r - bu[u] - bi[m]  # (2000,)
    size = np.bincount(u, weights=np.abs(r) + np.abs(bi[m]), minlength=30) + 15 * np.abs(bu)
    assert_close(np.bincount(u, weights=residual, minlength=30), 15 * bu, scale=size, rtol=1e-9)
    size = np.bincount(m, weights=np.abs(r) + np.abs(bu[u]), minlength=40) + 10 * np.abs(bi)
    assert_close(np.bincount(m, weights=residual, minlength=40), 10 * bi, scale=size, rtol=1e-9)


def test_a_model_without_a_validation_set_is_refused(ratings):
    trained = fit(Config(epochs=1, bs=8192, n_factors=2, val_pct=0), ratings)
    with pytest.raises(CfxlError, match="no validation set"):
        evaluate(trained, ratings)
