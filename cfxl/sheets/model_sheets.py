"""The whole model as value sheets: users, movies, predictions, epochs, bias_rank, pca and config.

These sheets hold values at the real size of the data (the lesson's sheets hold live formulas
for a 15 x 15 slice); the predictions' errors and their RMSE and MAE are formulas. Long tables
are capped at `max_rows` with a note row; `csv_dir` gets the complete tables as CSV files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cfxl.records.types.tables import ModelTables
from cfxl.sheets.analysis_sheets import write_bias_rank, write_pca
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.refs import area, column
from cfxl.sheets.styles import error_scale
from cfxl.sheets.table import Column, Pending, capped, colour_scale, write_table

FIRST = 2  # every table: note in row 0, header in row 1, data from row 2
EPOCHS = "epochs"  # not `history`: a name English Excel reserves for itself (its UI refuses it)
CSV_TABLES = ("users", "movies", "predictions", EPOCHS)
READ_ONLY = "Values from the trained model: editing them changes nothing else."
ID = Column("int", 9)
FACTOR = Column("num", 8.5)
PREDICTIONS = {"userId": ID, "movieId": ID, "title": Column(None, 40), "actual": Column("rating", 8),
               "predicted": Column("num", 10), "error": Column("num", 9)}
SUMMARY = len(PREDICTIONS) + 1  # the RMSE and MAE block, right of the table and a narrow gap
N_POINTS = 2000  # points in the predicted-vs-actual chart: a sample big enough to see the spread


def write_model_sheets(book: Book, tables: ModelTables, *, csv_dir=None, max_rows: int = MAX_ROWS - 10) -> None:
    """Write the sheets users, movies, predictions, epochs, bias_rank, pca and config.

    Tables longer than max_rows rows (note and header included) are cut there with a note row,
    which names csv_dir's complete table when the tables are written there as CSV too.
    """
    factors = {c: FACTOR for c in tables.factor_columns}
    bias = {"bias": Column("num", 9)} if tables.has_bias else {}

    users = {"userId": ID, "index": Column("int", 7), "n_ratings": Column("int", 9), **bias, **factors}
    _long_sheet(book, "users", tables.users, users, max_rows, csv_dir, freeze_cols=1,
                note=f"Each user's learned parameters ({len(tables.users):,} users): index is the "
                     f"row of u_weight{' and u_bias' if bias else ''}, n_ratings counts the user's "
                     f"ratings, f1..f{len(factors)} are the factors. {READ_ONLY}")
    movies = {"movieId": ID, "index": Column("int", 7), "title": Column(None, 40),
              "genres": Column(None, 24), "n_ratings": Column("int", 9), **bias, **factors}
    by_count = tables.movies.sort_values(["n_ratings", "index"], ascending=[False, True], kind="stable")
    _long_sheet(book, "movies", by_count, movies, max_rows, csv_dir, freeze_cols=3, autofilter=True,
                note=f"Each movie's learned parameters ({len(tables.movies):,} movies), the most rated "
                     f"first (sort and filter with the header's buttons): index is the row of "
                     f"i_weight{' and i_bias' if bias else ''}. {READ_ONLY}")
    write_predictions(book, tables, max_rows=max_rows, csv_dir=csv_dir)
    write_epochs(book, tables)
    write_bias_rank(book, tables.bias_rank, model=str(tables.config.get("model", "")))
    write_pca(book, tables.pca)
    write_config(book, tables)


def _long_sheet(book: Book, name: str, table, columns: dict[str, Column], max_rows: int, csv_dir,
                *, note: str, freeze_cols: int, autofilter: bool = False, beside=None):
    """A capped value table with its note, streamed (written row by row: bounded memory);
    beside(ws) gives the cells right of the table (a Pending), written as their rows come.
    Returns (sheet, rows shown, row after the last)."""
    ws = book.sheet(name, note, streamed=True)
    shown, left_out = capped(table, FIRST, max_rows)
    beside = Pending() if beside is None else beside(ws)
    end = write_table(book, ws, shown, columns, row=FIRST - 1, beside=beside)
    ws.freeze_panes(FIRST, freeze_cols)
    names = list(columns)
    if "bias" in columns:
        colour_scale(ws, FIRST, end - 1, names.index("bias"))
    if autofilter:
        ws.autofilter(FIRST - 1, 0, max(end - 1, FIRST - 1), len(names) - 1)
    if left_out:
        where = (f"the complete table is {Path(csv_dir) / (name + '.csv')}" if csv_dir is not None
                 else "`cfxl export --csv-dir DIR` writes the complete table as CSV")
        beside.upto(end - 1)
        book.text(ws, end, 0, f"{left_out:,} more rows left out (of {len(table):,}): a sheet here holds "
                              f"{max_rows:,} rows; {where}.", "note")
    beside.rest()
    return ws, len(shown), end


def write_predictions(book: Book, tables: ModelTables, *, max_rows: int, csv_dir=None) -> None:
    """The validation ratings with the model's predictions; error = predicted - actual as a
    formula per row; RMSE and MAE over the rows shown, verified; a predicted-vs-actual chart.
    The summary right of the table is written as the table's rows reach it (a streamed sheet)."""
    table, total = tables.predictions, len(tables.predictions)
    actual, predicted, error = (list(PREDICTIONS).index(k) for k in ("actual", "predicted", "error"))
    columns = {**PREDICTIONS, "error": Column("num", PREDICTIONS["error"].width,
                                              f"={column(predicted)}{{row}}-{column(actual)}{{row}}")}
    n = len(capped(table, FIRST, max_rows)[0])
    end = FIRST + n
    lo, hi = tables.rating_range
    s = SUMMARY
    errors = area(FIRST, error, max(end - 1, FIRST), error)
    rmse, mae = tables.error_summary(n)
    over = (f"over the {n:,} rows shown of {total:,} (the sheet is capped; config's final_val_rmse "
            "is over all of them)" if n < total else f"over all {total:,} validation ratings")

    def summary(ws):
        for j, (label, formula, value) in enumerate((("RMSE", f"=SQRT(SUMSQ({errors})/COUNT({errors}))", rmse),
                                                     ("MAE", f"=SUMPRODUCT(ABS({errors}))/COUNT({errors})", mae))):
            book.text(ws, FIRST - 1, s + 2 * j, label, "right")
            if n:
                book.formula(ws, FIRST - 1, s + 2 * j + 1, formula, value, "loss")

    def rating_range(ws):  # lowest, highest: the chart's diagonal
        book.text(ws, FIRST + 1, s, "rating range", "right")
        book.number(ws, FIRST + 1, s + 1, lo, "rating")
        book.number(ws, FIRST + 1, s + 2, hi, "rating")

    def beside(ws) -> Pending:
        cells = Pending()
        cells.add(FIRST - 1, lambda: summary(ws))
        cells.add(FIRST, lambda: book.text(ws, FIRST, s, f"RMSE and MAE of the errors {over}, "
                                                         "filtered or not.", "note"))
        cells.add(FIRST + 1, lambda: rating_range(ws))
        return cells

    ws, n, end = _long_sheet(book, "predictions", table, columns, max_rows, csv_dir, freeze_cols=0,
                             beside=beside,
                             note=f"The model's predictions for the {total:,} validation ratings (eval "
                                  "mode, dropout off). error = predicted - actual (positive: rated too "
                                  "high), RMSE and MAE are formulas: change a rating and they follow. "
                                  "Filter with the header's buttons.")
    ws.autofilter(FIRST - 1, 0, max(end - 1, FIRST - 1), error)
    if n:
        ws.conditional_format(FIRST, error, end - 1, error, error_scale(hi - lo))
    ws.set_column(s - 1, s - 1, 3)
    for j, width in enumerate((12, 9, 6, 9)):
        ws.set_column(s + j, s + j, width)
    if n:
        _prediction_chart(book, ws, min(n, N_POINTS), total, (actual, predicted), anchor=(FIRST + 3, s))


def _prediction_chart(book: Book, ws, n: int, total: int, cols: tuple[int, int], *, anchor) -> None:
    """Predicted against actual for the first n rows (a random sample: the split draws the
    validation ratings in random order), and the line predicted = actual."""
    x, y = cols
    last = FIRST + n - 1
    chart = book.wb.add_chart({"type": "scatter"})
    chart.add_series({"name": "predictions", "categories": [ws.name, FIRST, x, last, x],
                      "values": [ws.name, FIRST, y, last, y],
                      "marker": {"type": "circle", "size": 3, "border": {"none": True},
                                 "fill": {"color": "#4472C4", "transparency": 60}}})
    diagonal = [ws.name, FIRST + 1, SUMMARY + 1, FIRST + 1, SUMMARY + 2]  # (lo, hi) twice: the line
    chart.add_series({"name": "predicted = actual", "categories": diagonal, "values": diagonal,
                      "marker": {"type": "none"}, "line": {"color": "#7F7F7F", "dash_type": "dash"}})
    sample = f"the first {n:,} of {total:,} rows (a random sample)" if n < total else f"all {total:,} rows"
    chart.set_title({"name": f"Predicted vs actual: {sample}", "name_font": {"size": 11}})
    chart.set_x_axis({"name": "actual rating", "major_gridlines": {"visible": False}})
    chart.set_y_axis({"name": "predicted", "major_gridlines": {"visible": True}})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 560, "height": 420})
    ws.insert_chart(*anchor, chart)


def write_epochs(book: Book, tables: ModelTables) -> None:
    """Per-epoch losses and learning rate, and a line chart of the train and validation loss."""
    epochs = tables.epochs
    ws = book.sheet(EPOCHS, f"Training of the whole model ({tables.model_label}), one row per epoch: "
                            "mean squared error on the training ratings (averaged over the epoch's "
                            f"batches) and on the validation ratings after the epoch. {READ_ONLY}")
    columns = {"epoch": Column("int", 7), "train_loss": Column("num", 11), "val_loss": Column("num", 11),
               "val_rmse": Column("num", 11), "lr": Column("general", 10)}
    end = write_table(book, ws, epochs, columns, row=FIRST - 1)
    ws.freeze_panes(FIRST, 0)
    if not len(epochs):
        return
    chart = book.wb.add_chart({"type": "line"})
    last = end - 1
    for col, label, colour in ((1, "train loss", "#4472C4"), (2, "validation loss", "#ED7D31")):
        chart.add_series({"name": label, "categories": [EPOCHS, FIRST, 0, last, 0],
                          "values": [EPOCHS, FIRST, col, last, col],
                          "line": {"color": colour, "width": 2.25},
                          "marker": {"type": "circle", "size": 5,
                                     "border": {"color": colour}, "fill": {"color": colour}}})
    chart.set_title({"name": f"Loss by epoch: {tables.model_label}", "name_font": {"size": 11}})
    chart.set_x_axis({"name": "epoch"})
    losses = epochs[["train_loss", "val_loss"]].to_numpy(dtype=np.float64)  # (n_epochs, 2)
    chart.set_y_axis({"name": "mean squared error", "major_gridlines": {"visible": True},
                      "min": axis_floor(losses[np.isfinite(losses)])})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 640, "height": 360})
    ws.insert_chart(FIRST - 1, len(columns) + 1, chart)


def axis_floor(values: np.ndarray) -> float:
    """A round number a little below the smallest value, so the chart's axis starts near the
    data (losses of 0.7 to 0.9 drawn from 0 would be a flat line); never below 0."""
    if not len(values):
        return 0.0
    lo, hi = float(values.min()), float(values.max())
    step = 10.0 ** math.floor(math.log10(max(hi - lo, abs(lo) * 1e-3, 1e-12)))
    floor = math.floor((lo - 0.05 * (hi - lo)) / step) * step
    return max(0.0, floor - step if floor >= lo else floor)  # below the data, not through it


def write_config(book: Book, tables: ModelTables) -> None:
    """How the workbook was made: every training setting, the data file and its hash, the
    software; settings the run does not use are greyed, with why."""
    ws = book.sheet("config", "How this model was trained and exported: every setting of the run, the "
                              "data file and its SHA-256, the software versions and the counts. Greyed: "
                              "settings the chosen model, optimizer or schedule does not use.")
    for j, (name, width) in enumerate((("setting", 18), ("value", 66), ("note", 70))):
        book.text(ws, FIRST - 1, j, name, "head")
        ws.set_column(j, j, width)
    for i, (key, value) in enumerate(tables.config.items()):
        row = FIRST + i
        grey = key in tables.unused
        book.text(ws, row, 0, key, "unused" if grey else None)
        fmt = book.fmt("unused" if grey else "general")
        if isinstance(value, bool):
            ws.write_boolean(row, 1, value, fmt)
        elif isinstance(value, (int, float)):
            if math.isfinite(value):  # no value (a run without validation ratings): left blank
                ws.write_number(row, 1, value, fmt)
        else:
            book.text(ws, row, 1, value, "unused" if grey else None)
        note = f"not used: {tables.unused[key]}" if grey else tables.notes.get(key)
        if note:
            book.text(ws, row, 2, note, "unused" if grey else "note")
    ws.freeze_panes(FIRST, 0)
