"""The graddesc workbook's `Intro` and `data` sheets.

`Intro`: what each sheet shows (every sheet of the workbook, the CF ones included), how to use
it, how to get the buttons, where torch's rules and the lesson's spreadsheet part ways; `data`:
x, the true b and a, y as a formula of them."""

from __future__ import annotations

from cfxl.records.types.line import COMPARE_SHEET, LINE_SHEETS, GraddescRecords, LineData
from cfxl.sheets.book import Book
from cfxl.sheets.refs import cell

DATA_TOP = 2     # row 3: b, row 4: a (the true values)
DATA_HEAD = 5    # row 6: headers; x and y from row 7
DATA_X, DATA_Y = 1, 2  # columns B and C

SHEET_TEXT = {
    "sgd": "plain SGD: new = value - lr * grad. Beside the analytic gradients, the lesson's "
           "finite-difference estimates (nudge b or a by h, see how err^2 moves).",
    "momentum": "SGD with momentum: a running buffer of gradients, buf = buf*momentum + grad, "
                "and the step follows the buffer.",
    "adagrad": "Adagrad: divide each step by the square root of the sum of all squared gradients "
               "so far, so steps shrink where gradients have been large.",
    "rmsprop": "RMSprop: divide by the square root of an exponentially decaying average of "
               "squared gradients, so old gradients are forgotten.",
    "adam": "Adam: momentum (exp_avg) and RMSprop (exp_avg_sq) together, each corrected for "
            "starting at zero (bias_correction1 and 2).",
    "adamw": "AdamW (torch.optim.AdamW, fastai's default): adam with decoupled weight decay. "
             "Each step first shrinks the value itself, value*(1 - lr*weight_decay), then takes "
             "Adam's step on the plain gradient, so the decay stays out of exp_avg and exp_avg_sq. "
             "At the same lr as adam its weight decay holds b well short of 30: the decay pulls "
             "b toward 0 by lr*weight_decay*b every step, while Adam's step stays about lr in "
             "size; edit weight_decay to 0 and it is adam. The lesson has no AdamW, so this "
             "sheet follows torch's rules under either rules.",
    "adam_ann": "Adam with a learning-rate schedule: the lr changes from epoch to epoch (column lr).",
    "eve": "Eve, the lesson's Adam variant: its Adam (no bias correction, no eps) with each step "
           "also divided by d, the loss's volatility: before each epoch r = |ft-1 - ft-2| / "
           "min(ft-1, ft-2) of the two losses before it, d = d*beta3 + (1-beta3)*r (epoch table). "
           "torch has no Eve, so this sheet follows the lesson's rules under either rules; its "
           "grey values come from numpy. The Reset's d is 1 and its two losses the start values' "
           "loss and half of it, so the first epoch's r and d are 1.",
}
COMPARE_TEXT = ("every optimizer sheet side by side: the last epoch's loss, b and a against the "
                "true values, and one chart of the loss by epoch; formulas reading each sheet, so "
                "an edit there moves them here")
# the sheets cfxl.sheets.cf_steps and cfxl.sheets.gradients write after these (cf=True)
CF_TEXT = {
    "cf_sgd": "the collab workbook's bias model on its slice's training ratings, trained "
              "full-batch by torch.optim's SGD: one row per (step, parameter element) and, beside "
              "each step, one per rating with its forward pass; the gradient (the chain rule over "
              "those rows), the update and the loss are formulas, so an edited lr re-trains",
    "cf_momentum": "the same with SGD and momentum: momentum_buffer per element",
    "cf_adam": "the same with Adam: exp_avg, exp_avg_sq and the bias corrections per element",
    "cf_adamw": "the same with AdamW: Adam's state, the gradient free of weight decay, and each "
                "new value taken from value*(1 - lr*weight_decay)",
    "gradients": "one step's gradient of every factor and bias by the chain rule, as formulas on "
                 "the bias grid, beside autograd's",
}
MACROS = ("The Reset and Run buttons come with the macro workbook: cfxl graddesc -o graddesc.xlsm "
          "(needs xlwings; the top-left corner of each sheet is kept free for them).")

BUTTONS = ("Reset (top left of each optimizer sheet) puts its start values back; Run carries on "
           "from its last row for as many epochs again, the state and step count included, as "
           "one longer torch run would. They run Python through xlwings (see xlwings.conf).")
DIFFERENCES = [
    ("Momentum: torch keeps a sum, buf = buf*momentum + grad (the first buf is the gradient "
     "itself); the lesson keeps an average weighted by (1 - beta), mom = mom*beta + "
     "(1-beta)*grad, so at the same lr torch's steps are about 1/(1-beta) = 10 times larger."),
    ("Adam: torch divides exp_avg by bias_correction1 = 1 - beta1^step and sqrt(exp_avg_sq) by "
     "sqrt(bias_correction2), then adds eps (1e-8 by default); the lesson's Adam has no bias "
     "correction and no eps."),
    ("RMSprop: torch divides by sqrt(square_avg) of the current row, updated first, plus eps; "
     "the lesson divides by the previous row's average and has no eps."),
    ("Adagrad: torch adds up every squared gradient since the start, step by step, and adds "
     "eps = 1e-10 after the square root; the lesson divides by sqrt(sum of the previous epoch's "
     "squared gradients)/count, fixed for a whole epoch."),
    ("Start state: torch starts every state at 0. The lesson's Reset button sets its mean "
     "squares (and adagrad's gradient sizes) to 10000, then replaces them with what one pass "
     "over the rows leaves; cfxl's lesson rules start from 10000 itself (row 4, editable)."),
    ("Annealing: cfxl's adam_ann uses torch's StepLR (the lr times gamma after each epoch); the "
     "lesson's macro divides the lr by 4 when sqrt(ms b) + sqrt(ms a) grows past twice its "
     "smallest value so far."),
    ("Loss: the lesson's 'rmse' cell is sqrt(SUM(err^2)); cfxl's loss per epoch is "
     "sqrt(AVERAGE(err^2)) over the epoch's rows, a true root mean square."),
    ("Rows: the lesson pastes the last row's b and a back to the top and recalculates, one epoch "
     "per click; here every epoch is on the sheet, each row chained to the one above. The "
     "lesson's adagrad_ann sheet is left out; its eve follows the lesson's rules (torch has no "
     "Eve), and adamw, which the lesson lacks, torch's."),
]


def write_intro_sheet(book: Book, records: GraddescRecords, *, buttons: bool = False,
                      cf: bool = False) -> None:
    """cf: the CF model's sheets (CF_TEXT) follow the line's; the Intro lists them too."""
    ws = book.sheet("Intro", "What this workbook shows and how to use it.")
    d = records.data
    made = (f"the {len(d.x)} x values are random integers 1..100 (seed {d.seed})"
            if d.seed is not None else f"the lesson's own {len(d.x)} x values")
    lines: list[tuple[str | None, str]] = [
        ("head", "Gradient descent on a line, one row at a time"),
        (None, (f"The model is y = b + a*x. The data sheet makes y from the true values "
                f"b = {d.b:g} and a = {d.a:g}; {made}.")),
        (None, ("Each optimizer sheet starts from the guesses b = 1, a = 1 and takes one step "
                "per data row (batch size 1), epochs stacked down the sheet. At its top, under "
                "the settings: the Error by epoch chart and the epoch table (the loss, b and a at "
                "each epoch's end and their distance to the true values).")),
        (None, ("Every number from the start row down is a formula: the prediction, err^2 = "
                "(pred - y)^2, the gradients de/db = 2(pred - y) and de/da = 2(pred - y)*x, the "
                "optimizer's state, and new b and new a, which the next row starts from.")),
        (None, ("Edit a yellow cell (the start values, lr, the optimizer's settings) and the "
                "whole trajectory and the loss per epoch recompute; the chart follows.")),
        (None, BUTTONS if buttons else MACROS),
        (None, ""),
        ("head", "Which rules"),
    ]
    if records.rules == "torch":
        lines += [
            (None, ("These sheets follow torch.optim's update rules exactly (its single-tensor "
                    "code, float64). The grey columns hold torch's own new b and new a for each "
                    "step; the difference columns beside them show how far the sheet is from "
                    "torch. Except eve: torch has no Eve, so it follows the lesson's rules, its "
                    "grey values from numpy.")),
            (None, ("Weight decay: torch's SGD, Adagrad, RMSprop and Adam add weight_decay * "
                    "value to the gradient (L2); AdamW shrinks the value itself by lr * "
                    "weight_decay before its step (decoupled), keeping its moments free of it.")),
            (None, ("State columns carry torch's names: momentum_buffer (SGD), sum (Adagrad), "
                    "square_avg (RMSprop), step, exp_avg and exp_avg_sq (Adam).")),
        ]
    else:
        lines += [
            (None, ("These sheets follow the lesson's own spreadsheet rules (graddesc.xlsm), "
                    "not torch's. The grey columns hold the same rules computed in numpy, and "
                    "the hidden _torch sheet holds those numpy values: the truth in this mode. "
                    "Except adamw: the lesson has no AdamW, so it follows torch's rules, its "
                    "grey values torch's.")),
            (None, ("State columns carry the lesson's names: mom (momentum average), ms (mean "
                    "square), histgrad (adagrad's per-epoch gradient size).")),
        ]
    lines += [(None, ""), ("head", "The sheets"), ("label", "data"),
              (None, ("x, the true b and a, and y = b + x*a (edit them: every sheet reads its x "
                      "and y from here)"))]
    for opt in records.runs:
        lines += [("label", LINE_SHEETS[opt]), (None, SHEET_TEXT[opt])]
    lines += [("label", COMPARE_SHEET), (None, COMPARE_TEXT)]
    for name, text in CF_TEXT.items() if cf else ():
        lines += [("label", name), (None, text)]
    lines += [(None, ""), ("head", "Where torch's rules differ from the lesson's spreadsheet")]
    lines += [(None, f"- {t}") for t in DIFFERENCES]
    lines += [(None, ""), ("head", "Proof"),
              (None, ("Every formula's expected value is stored in the hidden sheet _torch; "
                      "`cfxl recalc --verify` recomputes the workbook in LibreOffice and compares "
                      "them cell by cell."))]
    for i, (fmt, text) in enumerate(lines):
        book.text(ws, 2 + i, 0, text, fmt)
    ws.set_column(0, 0, 120)


def write_data_sheet(book: Book, d: LineData) -> None:
    ws = book.sheet("data", "The line's data: x, the true b and a (yellow, editable), and "
                            "y = b + x*a as a formula. Every optimizer sheet reads x and y here.")
    book.text(ws, DATA_TOP - 1, 0, "true values", "label")
    for i, (label, v) in enumerate((("b (intercept)", d.b), ("a (slope)", d.a))):
        book.text(ws, DATA_TOP + i, DATA_X, label, "label")
        book.number(ws, DATA_TOP + i, DATA_Y, v, "param")
    b, a = (cell(DATA_TOP + i, DATA_Y, absolute="rc") for i in (0, 1))
    book.text(ws, DATA_HEAD, DATA_X, "x", "head")
    book.text(ws, DATA_HEAD, DATA_Y, "y = b + x*a", "head")
    for i, (x, y) in enumerate(zip(d.x, d.y)):
        row = DATA_HEAD + 1 + i
        book.number(ws, row, DATA_X, x, "int")
        book.formula(ws, row, DATA_Y, f"={b}+{cell(row, DATA_X)}*{a}", y, "int")
    ws.set_column(DATA_X, DATA_Y, 14)
