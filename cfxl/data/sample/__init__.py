"""cfxl's bundled synthetic, MovieLens-shaped data set and its planted truth (see README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_DIR = Path(__file__).parent
RATINGS_CSV = SAMPLE_DIR / "ratings.csv"  # userId,movieId,rating,timestamp (ml-latest-small)
MOVIES_CSV = SAMPLE_DIR / "movies.csv"  # movieId,title,genres
PLANTED_MOVIES_CSV = SAMPLE_DIR / "planted.csv"  # movieId,bias,<AXES>
PLANTED_USERS_CSV = SAMPLE_DIR / "planted_users.csv"  # userId,bias,<AXES>

# the planted taste axes, strongest first; a movie's value is + at the first end of the meaning
AXES = {
    "spectacle": "blockbuster vs dialog-driven: Action, Adventure, Sci-Fi, Fantasy vs Drama, "
                 "Romance, Documentary",
    "dark": "dark vs family: Horror, Thriller, Crime, Film-Noir vs Children, Animation, Musical, "
            "Comedy",
    "vintage": "old-fashioned vs modern: old films, Western, War, Film-Noir, Musical vs recent "
               "films, Sci-Fi, Animation, Horror",
}


def load_planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The planted truth: (movies by movieId, users by userId), columns `bias` and AXES."""
    import pandas as pd  # only here: importing cfxl.data.sample stays light

    return (pd.read_csv(PLANTED_MOVIES_CSV, index_col="movieId"),
            pd.read_csv(PLANTED_USERS_CSV, index_col="userId"))
