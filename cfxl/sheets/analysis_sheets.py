"""The lesson's analysis as sheets: movies ranked by learned bias, and a PCA of the movie factors."""

from __future__ import annotations

from cfxl.records.types.tables import PCA, BiasRank
from cfxl.sheets.book import Book
from cfxl.sheets.refs import cell
from cfxl.sheets.table import Column, colour_scale, header, write_table

RANKED = {"rank": Column("int", 6), "movieId": Column("int", 9), "title": Column(None, 40),
          "genres": Column(None, 24), "n_ratings": Column("int", 9), "bias": Column("num", 9)}
N_CHART = 50  # movies in the scatter chart: more and the title labels cover each other
RIGHT = 8  # first column of the component tables, right of the coordinates


def write_bias_rank(book: Book, ranked: BiasRank | None, *, model: str = "") -> None:
    """The best and the worst n movies by learned bias, side by side, as the lesson lists them."""
    if ranked is None:
        book.sheet("bias_rank", f"The {model or 'this'} model has no movie biases, so there is no ranking "
                                "to show: train a dotbias model for one.")
        return
    min_ratings = ranked.min_ratings
    ws = book.sheet("bias_rank", f"The {ranked.n} movies with the highest and the lowest learned bias (i_bias) among "
                                 f"the {ranked.n_ranked:,} movies with at least {min_ratings} ratings: what "
                                 "the model thinks of a movie whoever watches it.")
    width = len(RANKED) + 1
    for side, (label, table) in enumerate((("best: highest bias", ranked.best),
                                           ("worst: lowest bias", ranked.worst))):
        col = side * width
        book.text(ws, 1, col, label, "section")
        end = write_table(book, ws, table, RANKED, row=2, col=col)
        colour_scale(ws, 3, end - 1, col + len(RANKED) - 1)
    ws.set_column(len(RANKED), len(RANKED), 3)
    ws.freeze_panes(3, 0)


def write_pca(book: Book, result: PCA) -> None:
    """Coordinates of the most rated movies on the first components, their extremes, and a scatter chart."""
    comps = result.components
    ws = book.sheet("pca", f"Principal components of the movie factors (i_weight) of the {len(result.coords):,} "
                           "most rated movies; the chart places the "
                           f"{min(N_CHART, len(result.coords))} most rated by the first two, and each "
                           "component is named by the genres its ends have in common.")
    columns = {"movieId": Column("int", 9), "title": Column(None, 40), "genres": Column(None, 24),
               "n_ratings": Column("int", 9), **{c: Column("num", 9) for c in comps}}
    end = write_table(book, ws, result.coords, columns, row=1)
    ws.freeze_panes(2, 0)

    ws.set_column(RIGHT - 1, RIGHT - 1, 3)
    widths = (10, 40, 10, 40, 10)  # component/rank, + end/top title, share/value, - end/bottom, value
    for j, w in enumerate(widths):
        ws.set_column(RIGHT + j, RIGHT + j, w)
    header(book, ws, 1, RIGHT, ("component", "+ end (high values)", "variance", "- end (low values)"))
    for j, c in enumerate(comps):
        book.text(ws, 2 + j, RIGHT, c, "label")
        book.text(ws, 2 + j, RIGHT + 1, result.labels[j][0])
        book.number(ws, 2 + j, RIGHT + 2, result.explained[j], "pct")
        book.text(ws, 2 + j, RIGHT + 3, result.labels[j][1])

    row = 3 + len(comps)
    for j, c in enumerate(comps):
        header(book, ws, row, RIGHT, ("rank", f"{c} top", c, f"{c} bottom", c))
        for i, (top, bottom) in enumerate(zip(result.top[j].itertuples(index=False),
                                              result.bottom[j].itertuples(index=False))):
            book.number(ws, row + 1 + i, RIGHT, i + 1, "int")
            book.text(ws, row + 1 + i, RIGHT + 1, top[0])
            book.number(ws, row + 1 + i, RIGHT + 2, top[1])
            book.text(ws, row + 1 + i, RIGHT + 3, bottom[0])
            book.number(ws, row + 1 + i, RIGHT + 4, bottom[1])
        row += len(result.top[j]) + 2

    if len(comps) >= 2 and end > 2:
        _scatter(book, ws, result, min(N_CHART, end - 2), anchor=(1, RIGHT + len(widths) + 1))


def _scatter(book: Book, ws, result, n: int, *, anchor: tuple[int, int]) -> None:
    """pc0 against pc1 for the first n rows (the most rated movies), each point labelled with its title."""
    first, last = 2, 2 + n - 1
    x_col, y_col = 4, 5  # pc0, pc1 beside movieId, title, genres, n_ratings
    chart = book.wb.add_chart({"type": "scatter"})
    chart.add_series({
        "name": "movies",
        "categories": [ws.name, first, x_col, last, x_col],
        "values": [ws.name, first, y_col, last, y_col],
        "marker": {"type": "circle", "size": 5, "fill": {"color": "#4472C4"}, "border": {"none": True}},
        "data_labels": {"custom": [{"value": f"='{ws.name}'!{cell(r, 1, absolute='rc')}"}
                                   for r in range(first, last + 1)],
                        "position": "right", "font": {"size": 8}},
    })
    (plus0, minus0), (plus1, minus1) = result.labels[:2]
    chart.set_title({"name": f"The {n} most rated movies by pc0 and pc1", "name_font": {"size": 12}})
    # tick labels at the edges: the axes cross at 0, in the middle of the cloud
    chart.set_x_axis({"name": _axis_name("pc0", plus0, minus0), "label_position": "low",
                      "major_gridlines": {"visible": False}})
    chart.set_y_axis({"name": _axis_name("pc1", plus1, minus1), "label_position": "low",
                      "major_gridlines": {"visible": False}})
    chart.set_legend({"none": True})
    chart.set_size({"width": 960, "height": 720})
    ws.insert_chart(*anchor, chart)


def _axis_name(component: str, plus: str, minus: str) -> str:
    return f"{component}: {minus} (-) vs {plus} (+)" if plus or minus else component
