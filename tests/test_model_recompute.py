"""The predictions sheet recomputed by LibreOffice: its RMSE and MAE are torch's, and an edited
rating moves its error and both of them as a fresh computation says."""

import math

import numpy as np
import openpyxl
import pytest
from test_udfs import small_ratings
from tolerance import assert_close

from cfxl.data.ratings import read_ratings, split
from cfxl.engine.train import Config, fit
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.records.model_tables import model_tables
from cfxl.sheets.model_sheets import write_model_sheets

pytestmark = pytest.mark.recompute

FIRST_ROW = 3  # the predictions' first data row, 1-based

# predictions from two float32 forward passes (batched differently): a few float32 roundings
FLOAT32_FEW = 8 * float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return read_ratings(small_ratings(tmp_path_factory.mktemp("data") / "small"))


@pytest.fixture(scope="module")
def trained(data, seed):
    return fit(Config(n_factors=3, epochs=3, bs=64, seed=seed, device="cpu"), data, progress=False)


@pytest.fixture(scope="module")
def build(trained, data):
    tables = model_tables(trained, data)
    return lambda book: write_model_sheets(book, tables)


def validation(trained, data):
    """(predicted by a fresh torch forward pass, actual) for the validation ratings, float64."""
    _, val = split(len(data), trained.config.val_pct, trained.config.seed)
    users, movies = data.users.ids[data.user_idx[val]], data.movies.ids[data.movie_idx[val]]
    return trained.predict(users, movies).astype(np.float64), data.rating[val].astype(np.float64)


def test_libreoffice_gives_the_rmse_and_mae_torch_gives(book, engine, trained, data):
    report = verify(book, engine=engine)
    assert report.ok, report.failures[:3]
    assert report.sheets["predictions"].checked == 2
    predicted, actual = validation(trained, data)
    values = recalc(book, engine=engine).values["predictions"]
    rmse, mae = math.sqrt(np.mean((predicted - actual) ** 2)), np.mean(np.abs(predicted - actual))
    assert_close([values["I2"], values["K2"]], [rmse, mae], rtol=FLOAT32_FEW)  # two float32 forward passes


def test_an_edited_rating_moves_its_error_the_rmse_and_the_mae(book, engine, save_exactly, tmp_path,
                                                                 trained, data):
    predicted, actual = validation(trained, data)
    wb = openpyxl.load_workbook(book)
    ws = wb["predictions"]
    n = len(actual)
    edited = actual.copy()
    for i in (0, 7, n - 1):  # a rating changed to the other end of the scale
        edited[i] = 0.5 if actual[i] >= 3 else 5.0
        ws.cell(FIRST_ROW + i, 4).value = float(edited[i])
    values = recalc(save_exactly(wb, tmp_path / "edited.xlsx"), engine=engine).values["predictions"]
    shown = np.array([values[f"E{FIRST_ROW + i}"] for i in range(n)])  # the model's, as written
    assert_close(shown, predicted, rtol=2.0 ** -23)  # float32 on any machine
    errors = np.array([values[f"F{FIRST_ROW + i}"] for i in range(n)])
    assert_close(errors, shown - edited, scale=5.0)
    assert errors[0] == shown[0] - edited[0] != shown[0] - actual[0]
    assert_close(values["I2"], math.sqrt(math.fsum(errors ** 2) / n))
    assert_close(values["K2"], math.fsum(np.abs(errors)) / n)
