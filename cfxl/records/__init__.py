"""The only bridge from torch to the workbooks: float64 replays recorded as plain numpy records."""
