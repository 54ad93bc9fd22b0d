"""The embedded sample: MovieLens-shaped and as noisy, and a trained bias model recovers its planted truth."""

import numpy as np
import pytest

from cfxl.data.ratings import read_ratings, split
from cfxl.data.sample import AXES, load_planted
from cfxl.engine.train import Config, fit


@pytest.fixture(scope="module")
def sample():
    return read_ratings()


def test_shape_of_ml_latest_small(sample):
    assert 500 <= sample.n_users <= 700 and 8000 <= sample.n_movies <= 11000
    assert 90_000 <= len(sample) <= 110_000
    assert sample.rating_range == (0.5, 5.0)
    assert set(np.unique(sample.rating * 2)) <= set(range(1, 11))
    counts = np.bincount(sample.user_idx)
    assert counts.min() >= 20 and counts.max() > 10 * np.median(counts)  # power-law activity
    assert sample.titles is not None and len(sample.titles) >= sample.n_movies


def test_statistics_of_movielens(sample):
    """ml-latest-small: mean 3.50, sd 1.04; per user median 70; per movie median 3, a third of
    the movies rated once; ml-100k: user means spread 0.445, movie means (>= 20 ratings) 0.533."""
    r = sample.rating.astype(np.float64)
    assert 3.4 < r.mean() < 3.6 and 1.0 < r.std() < 1.2
    per_user = np.bincount(sample.user_idx)
    per_movie = np.bincount(sample.movie_idx)
    assert 50 <= np.median(per_user) <= 90 and np.median(per_movie) <= 4
    assert 0.25 < np.mean(per_movie == 1) < 0.4 and 250 < per_movie.max() < 450
    user_means = np.bincount(sample.user_idx, r) / per_user
    often = per_movie >= 20
    movie_means = np.bincount(sample.movie_idx, r, sample.n_movies)[often] / per_movie[often]
    assert 0.35 < user_means.std() < 0.5 and 0.4 < movie_means.std() < 0.6


def test_memorising_recipe_overfits_and_the_default_does_not(sample):
    """As on real ml-100k: cfxl 0.1's defaults (bs 64, constant lr, no weight decay) get worse
    each epoch, to about predicting the training mean; the default recipe does clearly better."""
    train, valid = split(len(sample), 0.2, 42)
    y = sample.rating.astype(np.float64)
    mean = np.sqrt(np.mean((y[valid] - y[train].mean()) ** 2))  # 1.136
    old = fit(Config(bs=64, epochs=3, schedule="constant", weight_decay=0.0, keep_best=False,
                     device="cpu"), sample, progress=False)
    rmse = [h["val_rmse"] for h in old.history]  # 1.036, 1.074, 1.099
    assert rmse[0] < rmse[1] < rmse[2] and rmse[2] > 0.95 * mean
    new = fit(Config(device="cpu"), sample, progress=False).kept["val_rmse"]  # 0.931
    assert new < rmse[2] - 0.1 and new < 0.85 * mean


@pytest.fixture(scope="module")
def trained(sample):
    config = Config(model="dotbias", n_factors=10, opt="adam", lr=1e-2, weight_decay=1e-4, bs=1024,
                    epochs=6, device="cpu")
    return fit(config, sample, progress=False)


def test_learned_biases_recover_the_planted_ones(sample, trained):
    movies, users = load_planted()
    counts = np.bincount(sample.movie_idx, minlength=sample.n_movies)
    often = np.flatnonzero(counts >= 20)
    learned = trained.model.i_bias.weight.detach().numpy()[often, 0]
    planted = movies.loc[sample.movies.ids[often], "bias"].to_numpy()
    assert np.corrcoef(learned, planted)[0, 1] > 0.85  # measured 0.877
    learned_u = trained.model.u_bias.weight.detach().numpy()[:, 0]
    planted_u = users.loc[sample.users.ids, "bias"].to_numpy()
    assert np.corrcoef(learned_u, planted_u)[0, 1] > 0.8  # measured 0.827


# measured 0.89, 0.86, 0.79: the weakest planted taste is the hardest to find under the noise
CARRIED = {"spectacle": 0.8, "dark": 0.8, "vintage": 0.75}


def test_factors_carry_the_planted_taste_axes(sample, trained):
    """Each planted axis is (nearly) a linear function of the learned movie factors."""
    movies, _ = load_planted()
    top = np.argsort(-np.bincount(sample.movie_idx), kind="stable")[:1000]
    factors = trained.model.i_weight.weight.detach().numpy()[top]  # (1000, n_factors)
    X = np.c_[factors, np.ones(len(top))]
    for axis in AXES:
        y = movies.loc[sample.movies.ids[top], axis].to_numpy()
        fitted = X @ np.linalg.lstsq(X, y, rcond=None)[0]
        assert np.corrcoef(fitted, y)[0, 1] > CARRIED[axis], axis
