"""Every named cell format of the workbooks: one table, registered by each Book when created.

Yellow marks a cell a reader may edit; grey, a value torch (or numpy's rules) computed, shown
for comparison. A format no cell uses costs nothing: XlsxWriter writes only those used.
"""

from __future__ import annotations

EDITABLE = "#FFF2CC"  # yellow
TRUTH = "#7F7F7F"     # grey
NOTE = "#555555"

FORMATS = {
    # text: notes, headers, labels
    "note": {"italic": True, "font_color": NOTE},
    "head": {"bold": True, "bottom": 1},
    "col_head": {"bold": True, "bottom": 1, "text_wrap": True, "valign": "bottom"},
    "label": {"bold": True},
    "right": {"bold": True, "align": "right"},
    "group": {"bold": True, "italic": True, "font_color": "#1F4E79"},
    "section": {"bold": True, "font_size": 12},
    "title": {"text_wrap": True, "valign": "bottom", "align": "center", "font_size": 8},
    "wrap": {"text_wrap": True, "valign": "top"},
    "start": {"italic": True, "num_format": "General", "font_color": NOTE},
    # numbers
    "general": {},
    "int": {"num_format": "0"},
    "id": {"bold": True, "num_format": "0", "align": "center"},
    "rating": {"num_format": "0.0", "align": "center"},
    "num": {"num_format": "0.0000"},
    "num2": {"num_format": "0.00"},
    "num3": {"num_format": "0.000"},
    "num6": {"num_format": "0.000000"},
    "sci": {"num_format": "0.000E+00"},   # gradients and optimizer state: any magnitude
    "pct": {"num_format": "0.0%"},
    "loss": {"bold": True, "num_format": "0.000000", "bg_color": "#E2EFDA"},
    "onehot": {"num_format": "0", "align": "center", "font_color": "#A6A6A6"},
    # editable
    "input": {"bg_color": EDITABLE, "num_format": "0.0000"},
    "input6": {"bg_color": EDITABLE, "num_format": "0.000000"},  # a starting parameter
    "hyper": {"bg_color": EDITABLE, "border": 1},                 # a setting, any magnitude
    "param": {"bg_color": EDITABLE, "num_format": "General", "align": "left"},
    "start_input": {"bg_color": EDITABLE, "num_format": "General"},
    # the truth, for comparison
    "torch": {"num_format": "0.000000", "font_color": TRUTH},
    "torch_sci": {"num_format": "0.000E+00", "font_color": TRUTH},
    "diff": {"num_format": "0.0E+00", "font_color": TRUTH},
    # conditional: a one-hot cell that is 1
    "hot": {"bold": True, "font_color": "#000000", "bg_color": "#C6EFCE"},
}
