"""The proof contract every workbook cfxl writes follows: torch's values in a hidden sheet.

For each verified formula cell, the hidden sheet `_torch` holds one row under the header
`sheet | cell | value | scale`: the value torch computed for it and, where the value is a small
difference of large numbers (pred - y near convergence), the size of those numbers. The sheets
write it (cfxl.sheets.book); cfxl.proof.verify reads it back after LibreOffice recomputes.
"""

TORCH_SHEET = "_torch"
TORCH_HEADER = ("sheet", "cell", "value", "scale")
