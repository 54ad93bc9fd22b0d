"""The embedded sample: MovieLens-shaped, and a trained bias model recovers its planted truth."""

import numpy as np
import pytest

from cfxl.data.ratings import read_ratings
from cfxl.data.sample import AXES, load_planted
from cfxl.engine.train import Config, fit


@pytest.fixture(scope="module")
def sample():
    return read_ratings()


def test_shape_of_ml_latest_small(sample):
    assert 500 <= sample.n_users <= 700 and 8000 <= sample.n_movies <= 10000
    assert 90_000 <= len(sample) <= 110_000
    assert sample.rating_range == (0.5, 5.0)
    assert set(np.unique(sample.rating * 2)) <= set(range(1, 11))
    counts = np.bincount(sample.user_idx)
    assert counts.min() >= 20 and counts.max() > 10 * np.median(counts)  # power-law activity
    assert sample.titles is not None and len(sample.titles) >= sample.n_movies


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
    assert np.corrcoef(learned, planted)[0, 1] > 0.9
    learned_u = trained.model.u_bias.weight.detach().numpy()[:, 0]
    planted_u = users.loc[sample.users.ids, "bias"].to_numpy()
    assert np.corrcoef(learned_u, planted_u)[0, 1] > 0.8


def test_factors_carry_the_planted_taste_axes(sample, trained):
    """Each planted axis is (nearly) a linear function of the learned movie factors."""
    movies, _ = load_planted()
    top = np.argsort(-np.bincount(sample.movie_idx), kind="stable")[:1000]
    factors = trained.model.i_weight.weight.detach().numpy()[top]  # (1000, n_factors)
    X = np.c_[factors, np.ones(len(top))]
    for axis in AXES:
        y = movies.loc[sample.movies.ids[top], axis].to_numpy()
        fitted = X @ np.linalg.lstsq(X, y, rcond=None)[0]
        assert np.corrcoef(fitted, y)[0, 1] > 0.8, axis
