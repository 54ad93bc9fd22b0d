"""The workbook layer: XlsxWriter sheets built from plain numpy records (never from torch)."""
