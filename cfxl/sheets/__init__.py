"""The workbook layer: records in, XlsxWriter sheets out. Never imports torch."""
