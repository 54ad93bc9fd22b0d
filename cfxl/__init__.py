"""cfxl: collaborative filtering trained in torch, shown in spreadsheets with live formulas."""

__version__ = "0.1.0"
