"""Ratings in: MovieLens files in every layout, the embedded sample, downloads (numpy, pandas)."""
