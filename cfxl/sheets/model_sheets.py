"""The whole model as value sheets: users, movies, predictions, history, bias_rank, pca and config.

These sheets hold values at the real size of the data (the lesson's sheets hold live formulas
for a 15 x 15 slice). Long tables are capped at `max_rows` with a note row; `csv_dir` gets
the complete tables as CSV files.
"""

from __future__ import annotations

import math
from pathlib import Path

from cfxl.records.types.tables import ModelTables
from cfxl.sheets.analysis_sheets import write_bias_rank, write_pca
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.table import Column, capped, colour_scale, write_table


FIRST = 2  # every table: note in row 0, header in row 1, data from row 2
CSV_TABLES = ("users", "movies", "predictions", "history")
READ_ONLY = "Values from the trained model: editing them changes nothing else."
ID = Column("int", 9)
FACTOR = Column("num", 8.5)


def write_model_sheets(book: Book, tables: ModelTables, *, csv_dir=None, max_rows: int = MAX_ROWS - 10) -> None:
    """Write the sheets users, movies, predictions, history, bias_rank, pca and config.

    Tables longer than max_rows rows (note and header included) are cut there with a note row,
    which names csv_dir's complete table when the tables are written there as CSV too.
    """
    factors = {c: FACTOR for c in tables.factor_columns}
    bias = {"bias": Column("num", 9)} if tables.has_bias else {}

    users = {"userId": ID, "index": Column("int", 7), "n_ratings": Column("int", 9), **bias, **factors}
    _long_sheet(book, "users", tables.users, users, max_rows, csv_dir, freeze_cols=1,
                note=f"Each user's learned parameters ({len(tables.users):,} users): index is the "
                     f"row of u_weight{' and u_bias' if bias else ''}, n_ratings counts the user's "
                     f"ratings. {READ_ONLY}")
    movies = {"movieId": ID, "index": Column("int", 7), "title": Column(None, 40),
              "genres": Column(None, 24), "n_ratings": Column("int", 9), **bias, **factors}
    _long_sheet(book, "movies", tables.movies, movies, max_rows, csv_dir, freeze_cols=3,
                note=f"Each movie's learned parameters ({len(tables.movies):,} movies): index is the "
                     f"row of i_weight{' and i_bias' if bias else ''}. {READ_ONLY}")
    predictions = {"userId": ID, "movieId": ID, "title": Column(None, 40), "actual": Column("rating", 8),
                   "predicted": Column("num3", 10), "error": Column("num3", 9)}
    _long_sheet(book, "predictions", tables.predictions, predictions, max_rows, csv_dir,
                freeze_cols=0, scale=("error",), autofilter=True,
                note=f"The model's predictions for the {len(tables.predictions):,} validation ratings "
                     f"(eval mode, dropout off); error = predicted - actual. Filter with the header's "
                     f"buttons. {READ_ONLY}")
    write_history(book, tables)
    write_bias_rank(book, tables.bias_rank, model=str(tables.config.get("model", "")))
    write_pca(book, tables.pca)
    write_config(book, tables.config)


def _long_sheet(book: Book, name: str, table, columns: dict[str, Column], max_rows: int, csv_dir,
                *, note: str, freeze_cols: int, scale=("bias",), autofilter: bool = False) -> None:
    ws = book.sheet(name, note)
    shown, left_out = capped(table, FIRST, max_rows)
    end = write_table(book, ws, shown, columns, row=FIRST - 1)
    ws.freeze_panes(FIRST, freeze_cols)
    names = list(columns)
    for column in scale:
        if column in columns:
            colour_scale(ws, FIRST, end - 1, names.index(column))
    if autofilter:
        ws.autofilter(FIRST - 1, 0, max(end - 1, FIRST - 1), len(names) - 1)
    if left_out:
        where = (f"the complete table is {Path(csv_dir) / (name + '.csv')}" if csv_dir is not None
                 else "`cfxl export --csv-dir DIR` writes the complete table as CSV")
        book.text(ws, end, 0, f"{left_out:,} more rows left out (of {len(table):,}): a sheet here holds "
                              f"{max_rows:,} rows; {where}.", "note")


def write_history(book: Book, tables: ModelTables) -> None:
    """Per-epoch losses and learning rate, and a line chart of the train and validation loss."""
    history = tables.history
    ws = book.sheet("history", "Training history, one row per epoch: mean squared error on the "
                               "training ratings (averaged over the epoch's batches) and on the validation "
                               f"ratings after the epoch. {READ_ONLY}")
    columns = {"epoch": Column("int", 7), "train_loss": Column("num6", 11), "val_loss": Column("num6", 11),
               "val_rmse": Column("num6", 11), "lr": Column("general", 10)}
    end = write_table(book, ws, history, columns, row=FIRST - 1)
    ws.freeze_panes(FIRST, 0)
    if not len(history):
        return
    chart = book.wb.add_chart({"type": "line"})
    last = end - 1
    for col, label, colour in ((1, "train loss", "#4472C4"), (2, "validation loss", "#ED7D31")):
        chart.add_series({"name": label, "categories": ["history", FIRST, 0, last, 0],
                          "values": ["history", FIRST, col, last, col],
                          "line": {"color": colour, "width": 2.25},
                          "marker": {"type": "circle", "size": 5,
                                     "border": {"color": colour}, "fill": {"color": colour}}})
    chart.set_title({"name": "Loss by epoch"})
    chart.set_x_axis({"name": "epoch"})
    chart.set_y_axis({"name": "mean squared error", "major_gridlines": {"visible": True}})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 640, "height": 360})
    ws.insert_chart(FIRST - 1, len(columns) + 1, chart)


def write_config(book: Book, config: dict) -> None:
    """How the workbook was made: every training setting, the data file and its hash, the software."""
    ws = book.sheet("config", "How this model was trained and exported: every setting of the run, the "
                              "data file and its SHA-256, the software versions and the counts.")
    book.text(ws, FIRST - 1, 0, "setting", "head")
    book.text(ws, FIRST - 1, 1, "value", "head")
    ws.set_column(0, 0, 18)
    ws.set_column(1, 1, 66)
    left = book.fmt("general")
    for i, (key, value) in enumerate(config.items()):
        row = FIRST + i
        book.text(ws, row, 0, key)
        if isinstance(value, bool):
            ws.write_boolean(row, 1, value, left)
        elif isinstance(value, (int, float)):
            if math.isfinite(value):  # no value (a run without validation ratings): left blank
                ws.write_number(row, 1, value, left)
        else:
            book.text(ws, row, 1, value)
    ws.freeze_panes(FIRST, 0)
