"""Every named cell format of the workbooks: one table, registered by each Book when created.

Yellow marks a cell a reader may edit; grey, a value torch (or numpy's rules) computed, shown
for comparison. A format no cell uses costs nothing: XlsxWriter writes only those used.

One number format per magnitude class, on every sheet:
- `int`: counts, steps, epochs (and `id` for ids);
- `rating`: ratings, 0.0 (half stars);
- `num`: values of a bounded size: data, parameters, predictions, errors, losses (0.0000);
- `sci`: values of any size: gradients, optimizer state, sums of squares (0.000E+00);
- `hyper` (and `param`): settings as typed, in General (lr 0.01, betas 0.9); `hyper_sci` for
  eps, 1E-08 and 1E-10 alike (General shows 0.00000001 in LibreOffice, 1E-08 in Excel).
The `_in` (yellow) and torch (grey) variants keep the class's format.

One sign for an error everywhere: prediction - rating (positive: the model rates too high),
coloured by `error_scale`, a diverging palette centred on zero.
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
    "hyper_sci": {"bg_color": EDITABLE, "border": 1, "num_format": "0E+00"},  # eps: 1E-08
    "param": {"bg_color": EDITABLE, "num_format": "General", "align": "left"},
    "start_input": {"bg_color": EDITABLE, "num_format": "General"},
    # the truth, for comparison
    "torch": {"num_format": "0.000000", "font_color": TRUTH},
    "torch_sci": {"num_format": "0.000E+00", "font_color": TRUTH},
    "diff": {"num_format": "0.0E+00", "font_color": TRUTH},
    "sci_in": {"bg_color": EDITABLE, "num_format": "0.000E+00"},
    "num_in": {"bg_color": EDITABLE, "num_format": "0.0000"},
    # a setting the chosen model, optimizer or schedule does not use (config sheet)
    "unused": {"font_color": "#A6A6A6", "bg_color": "#F2F2F2"},
    # a rated cell held out for validation: grey fill, a border
    "held_out": {"num_format": "0.0", "align": "center", "bg_color": "#D9D9D9", "border": 1},
    # conditional: a one-hot cell that is 1
    "hot": {"bold": True, "font_color": "#000000", "bg_color": "#C6EFCE"},
}


UNDER, ZERO, OVER = "#4575B4", "#FFFFFF", "#D73027"  # blue: rated too low; red: too high


def error_scale(limit: float) -> dict:
    """The conditional format for errors (prediction - rating): a colour scale from blue at
    -limit through white at 0 to red at +limit, the same on every sheet (limit: the widest
    error the ratings allow, max - min rating)."""
    return {"type": "3_color_scale", "min_type": "num", "min_value": -limit, "min_color": UNDER,
            "mid_type": "num", "mid_value": 0, "mid_color": ZERO,
            "max_type": "num", "max_value": limit, "max_color": OVER}
