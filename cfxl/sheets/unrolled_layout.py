"""Where everything sits on the `train` sheet: a band of rows per step, and the top.

Every band is the same shape a fixed number of rows below the last; the top holds the ratings,
settings, summary and loss table.

A band is a title row (step, MSE, Adam's bias corrections) and, going down, seven blocks on the
`bias` sheet's columns (user bias and factors left, user ids, then a column per movie):
`params` (movie bias and factor rows over the prediction grid, user bias and factors left of
it), the error grid, `grad` (the gradients, framed the same way around the d loss/dx grid), the
optimizer's `momentum_buffer`, `exp_avg` and `exp_avg_sq` and the `updated` parameters (shaped
like the parameters, with no grid inside). Band k's `params` are band k - 1's `updated`: the
same cell one band up. Band 0 is the start: in the rows its other blocks would use, the ratings
(held-out ones marked), the editable `start` (torch's initial parameters, shaped like the
parameters around the held-out grid: 1 where a rating is held out for validation), a legend and
the chart; its state blocks hold zeros and its `updated` block copies the start.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfxl.records.types.unrolled import UNROLLED_STATES
from cfxl.sheets.grid import Frame, GridLayout

FIRST_BAND = 1   # row 2: band 0's title row
FRAMES = ("params", "grad", *UNROLLED_STATES, "updated")
# The settings at the top, in order: editable (yellow) except lo, hi and n.
SETTINGS = ("lr", "optimizer", "momentum", "beta1", "beta2", "eps", "weight_decay", "lo", "hi",
            "n", "n_valid")
SUMMARY = ("first MSE", "last MSE", "torch's last MSE", "difference", "train RMSE", "valid RMSE",
           "torch's valid RMSE", "steps K", "factors F", "formulas per step", "formulas in all")


@dataclass(frozen=True)
class UnrolledLayout:
    """0-based positions on the `train` sheet for a slice of n_users x n_movies, F factors and
    K steps (bands 1..K; band 0 is the start)."""

    n_users: int
    n_movies: int
    n_factors: int
    steps: int

    title_row = FIRST_BAND + 1  # the ratings' movie titles, ids and rows, inside band 0
    id_row = FIRST_BAND + 2
    rating_row = FIRST_BAND + 3
    step_col = 1                # band title row: "step" in A, the step number in B

    @property
    def grid(self) -> GridLayout:
        return GridLayout(self.n_users, self.n_movies, self.n_factors, True, self.rating_row)

    @property
    def frame_rows(self) -> int:  # movie bias, factor rows, head row, user rows
        return 2 + self.n_factors + self.n_users

    @property
    def band_rows(self) -> int:  # title, six frames, the error grid (head + users), a blank row
        return 1 + 6 * self.frame_rows + 1 + self.n_users + 1

    def band(self, k: int) -> int:
        """The title row of band k."""
        return FIRST_BAND + k * self.band_rows

    def frame(self, k: int, name: str) -> Frame:
        at = 1 + FRAMES.index(name) * self.frame_rows
        if name != "params":  # the error grid sits between params and grad
            at += 1 + self.n_users
        return Frame(self.n_users, self.n_movies, self.n_factors, True, self.rating_row,
                     top=self.band(k) + at)

    @property
    def start(self) -> Frame:
        """The editable start, right below the ratings; its grid is the held-out grid."""
        return Frame(self.n_users, self.n_movies, self.n_factors, True, self.rating_row,
                     top=self.rating_row + self.n_users + 1)

    def err_head(self, k: int) -> int:
        return self.band(k) + 1 + self.frame_rows

    def err_row(self, k: int) -> int:
        return self.err_head(k) + 1

    # the band title row's cells: the MSE, then Adam's bias corrections, each after its label
    @property
    def loss_col(self) -> int:
        return self.grid.grid_col

    @property
    def bc_cols(self) -> tuple[int, int]:
        return self.grid.grid_col + 4, self.grid.grid_col + 8

    @property
    def valid_col(self) -> int:
        """The held-out ratings' MSE at the band's parameters."""
        return self.grid.grid_col + 12

    @property
    def side_col(self) -> int:
        """The top's settings, summary and loss table: right of everything the bands use."""
        return max(self.grid.last_col, self.valid_col) + 2

    def setting(self, name: str) -> tuple[int, int]:
        """A setting's value cell; its label is left of it (below the tall movie-title row)."""
        return self.id_row + SETTINGS.index(name), self.side_col + 1

    def summary(self, name: str) -> tuple[int, int]:
        return self.id_row + len(SETTINGS) + 2 + SUMMARY.index(name), self.side_col + 1

    @property
    def table_head(self) -> int:  # step | MSE | valid MSE | torch's two, then a row per step
        return self.summary(SUMMARY[-1])[0] + 2

    def table_row(self, k: int) -> int:
        return self.table_head + k

    @property
    def legend_rows(self) -> range:
        """Band 0's rows below the start that its params, error and grad blocks leave free (the
        chart is anchored at the first, right of the legend's text)."""
        return range(self.start.top + self.frame_rows, self.frame(0, "momentum_buffer").top)

    @property
    def chart_col(self) -> int:
        return self.grid.grid_col + 4

    @property
    def formulas_per_step(self) -> int:
        """Formulas in a band: three grids (prediction, error, d loss/dx), six per parameter
        element (parameter, gradient, three states, update) and five in the title row (step,
        MSE, the two bias corrections, the valid MSE)."""
        U, M, k = self.n_users, self.n_movies, self.n_factors
        return 3 * U * M + 6 * (U + M) * (k + 1) + 5

    @property
    def formulas(self) -> int:
        """All formulas: the bands, the loss table (two per step), band 0's copy of the start,
        the summary's first and last MSE, difference and two RMSEs, n and n_valid."""
        elements = (self.n_users + self.n_movies) * (self.n_factors + 1)
        return self.steps * (self.formulas_per_step + 2) + elements + 7
