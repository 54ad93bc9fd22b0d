"""The CF model's optimizer steps, live: torch.optim's updates as formulas on the cf_* sheets.

`cf_sgd`, `cf_momentum` and `cf_adam` unroll torch.optim's update of every recorded parameter
element as formulas (its rules: cfxl.sheets.rules), one row per (step, element).

Rows are grouped by step with the elements in the same order every step, so an element's
previous step is always `n_elements` rows up: its value is that row's new value, its state
follows from that row's. Step 0 holds the starting values (editable) and torch's empty state as
zeros (torch's first momentum_buffer is the gradient itself, 0.9 * 0 + grad; Adam's moments
start at 0), so every later row carries the same formulas. (That also keeps LibreOffice 7.4
right: a column whose first step had formulas of another shape than the rest gave false
circular-reference errors, Err:522, once a step had about 100 elements.)

The gradient is torch's recorded value (a number, from autograd on the batch), so editing lr,
momentum, a beta, eps or weight_decay in the yellow cells at the top replays torch's rule at the
new setting *given the recorded gradients*. Torch's own value after each step sits beside the
formula's, with the difference. `write_cf_sheets` also
writes the `gradients` sheet (cfxl.sheets.gradients), where the gradient column comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfxl.errors import CfxlError
from cfxl.records.types.cf import SLICE_OPTIMIZERS, CFStepRecords, OptSteps
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.gradients import write_gradients_sheet
from cfxl.sheets.table import write_id
from cfxl.sheets.refs import cell
from cfxl.sheets.rules import RULES, SHARED, render

HYPER_ROW = 1  # row 2: hyperparameter labels; their values in row 3
GROUP_ROW = 3  # row 4: titles over column groups
HEAD_ROW = 4   # row 5: column headers
FIRST = 5      # row 6: step 0 (the start), first element
HYPER_COL = 2  # column C: the first hyperparameter

# The hyperparameter cells of each sheet, in order: lr, the rule's own, each followed by
# 1 - it where the rule uses that (a formula, as torch computes it), weight_decay.
HYPER = {opt: ("lr", *(n for h in RULES[opt].hyper for n in (h, f"1 - {h}")
                       if n == h or RULES[opt].reads(f"{{$1-{h}}}")), "weight_decay")
         for opt in SLICE_OPTIMIZERS}
# Its state and update columns: torch's step count where the rule reads it, every stage after
# the gradient.
STATE = {opt: ("state step",) * RULES[opt].reads("{step}")
         + tuple(s.name for s in RULES[opt].stages if s.name != "grad") for opt in SLICE_OPTIMIZERS}
LEAD = ("name", "id", "step", "value", "grad", "grad_used")
COLUMN = {"param": "value", "dloss": "grad", "grad": "grad_used", "step": "state step"}  # rules'
TAIL = ("lr", "new value", "torch value_after", "difference")
CF_SHEETS = {"sgd": "cf_sgd", "momentum": "cf_momentum", "adam": "cf_adam"}
WHAT = {"sgd": "SGD", "momentum": "SGD with momentum (dampening 0, not Nesterov)",
        "adam": "Adam (torch's: bias-corrected, eps added after dividing by "
                "sqrt(bias_correction2))"}


@dataclass(frozen=True)
class StepLayout:
    """0-based positions on a cf_* sheet."""

    opt: str
    n_elements: int
    steps: int

    @property
    def columns(self) -> tuple[str, ...]:
        return LEAD + STATE[self.opt] + TAIL

    def col(self, name: str) -> int:
        return self.columns.index(name)

    def row(self, step: int, element: int) -> int:
        """Row of element (0-based) at step (0: the start; torch's steps are 1..steps)."""
        return FIRST + step * self.n_elements + element

    def hyper(self, name: str) -> str:
        """Absolute reference of a hyperparameter's value cell, e.g. $C$3 for lr."""
        return cell(HYPER_ROW + 1, HYPER_COL + HYPER[self.opt].index(name), absolute="rc")

    @property
    def loss_col(self) -> int:
        """The per-step loss table: step here, torch's loss in the next column."""
        return len(self.columns) + 1

    @property
    def last_row(self) -> int:
        return self.row(self.steps, self.n_elements - 1)


def write_cf_sheets(book: Book, rec: CFStepRecords) -> None:
    """`gradients`, then one cf_* sheet per recorded optimizer (cf_sgd, cf_momentum, cf_adam)."""
    write_gradients_sheet(book, rec.gradients)
    for run in rec.runs.values():
        write_cf_step_sheet(book, rec, run)


def _note(rec: CFStepRecords, run: OptSteps) -> str:
    if rec.traced:
        followed = {"u": {}, "i": {}}  # raw ids by kind, in order, each once
        for name, raw in zip(rec.names, rec.ids):
            followed[name[0]][raw] = None
        chosen = " and ".join(f"{what}{'s' * (len(ids) > 1)} {', '.join(map(str, ids))}"
                              for what, ids in (("user", followed["u"]), ("movie", followed["i"]))
                              if ids)
        data = (f"EmbeddingDotBias over all {rec.n_ratings:,} ratings, recording only the rows "
                f"of {chosen}")
    else:
        data = (f"The bias sheet's EmbeddingDotBias on the slice's {rec.n_ratings} ratings "
                f"(sigmoid range {rec.y_range[0]:g} to {rec.y_range[1]:g})")
    batch = "full-batch" if rec.bs is None else f"in batches of {rec.bs}"
    E = len(rec.names)
    return (f"{data}, {rec.n_factors} factors, trained {batch} by torch.optim {WHAT[run.opt]} for "
            f"{rec.steps} steps from its initial parameters (seed {rec.seed}), in float64. One row "
            f"per (step, element); the same element's previous step is {E:,} rows up; step 0 is "
            f"the start, with torch's empty state as zeros. grad is torch's recorded gradient for "
            f"the recorded trajectory; everything else is a formula of it and of the yellow "
            f"cells: change lr (or another setting, or a starting value) and every later value "
            f"follows, given those gradients.")


def write_cf_step_sheet(book: Book, rec: CFStepRecords, run: OptSteps) -> None:
    """One optimizer's steps: hyperparameters at the top, then a row per (step, element)."""
    E = len(rec.names)
    L = StepLayout(run.opt, E, len(run.lr))
    if L.last_row >= MAX_ROWS:
        raise CfxlError(f"{L.steps} steps of {E:,} elements need {L.last_row + 1:,} rows, more "
                        f"than a sheet's {MAX_ROWS:,}: trace fewer users or movies, or fewer steps")
    ws = book.sheet(CF_SHEETS[run.opt], _note(rec, run))
    _write_hyper(book, ws, L, run)

    state_cols = STATE[run.opt]
    if state_cols:
        book.text(ws, GROUP_ROW, L.col(state_cols[0]), "optimizer state (torch's names)", "group")
    book.text(ws, GROUP_ROW, L.col("torch value_after"), "torch's, recorded", "group")
    for c, label in enumerate(L.columns):
        book.text(ws, HEAD_ROW, c, label, "head")

    for e in range(E):
        _write_start(book, ws, L, rec, run, e)
    for s in range(1, L.steps + 1):
        for e in range(E):
            _write_row(book, ws, L, rec, run, s, e)

    _write_loss(book, ws, L, run)
    ws.set_column(0, 0, 15)
    ws.set_column(1, 2, 7)
    ws.set_column(3, len(L.columns) - 1, 15)
    ws.freeze_panes(FIRST, 1)


def _write_hyper(book: Book, ws, L: StepLayout, run: OptSteps) -> None:
    """The labelled hyperparameter cells, torch's settings for the run."""
    h = run.hyper
    values = {"lr": h["lr"], "weight_decay": h["weight_decay"], "momentum": h.get("momentum"),
              "eps": h.get("eps")}
    if "betas" in h:
        values.update(beta1=h["betas"][0], beta2=h["betas"][1])
    for d, name in enumerate(HYPER[L.opt]):
        book.text(ws, HYPER_ROW, HYPER_COL + d, name, "head")
        if name.startswith("1 - "):  # as torch computes it: 1 - beta, in float64
            beta = name[4:]
            book.formula(ws, HYPER_ROW + 1, HYPER_COL + d, f"=1-{L.hyper(beta)}",
                         1 - values[beta], None)
        else:
            book.number(ws, HYPER_ROW + 1, HYPER_COL + d, values[name], "hyper")


def _write_start(book: Book, ws, L: StepLayout, rec: CFStepRecords, run: OptSteps,
                 e: int) -> None:
    """Step 0 of an element: its starting value as the new value, and zeros for the state."""
    r = L.row(0, e)
    book.text(ws, r, L.col("name"), rec.names[e])
    write_id(book, ws, r, L.col("id"), rec.ids[e])
    book.number(ws, r, L.col("step"), 0, "int")
    for name in STATE[L.opt]:
        if name not in SHARED:
            book.number(ws, r, L.col(name), 0, "int" if name == "state step" else "sci")
    book.number(ws, r, L.col("new value"), run.value[0, e], "input6")
    book.number(ws, r, L.col("torch value_after"), run.value[0, e], "torch")


def _write_row(book: Book, ws, L: StepLayout, rec: CFStepRecords, run: OptSteps,
               step: int, e: int) -> None:
    """One element at one of torch's steps: torch's rule (cfxl.sheets.rules) as formulas over
    this row, the row n_elements up (the same element's previous step) and the hyper cells."""
    r, prev, s = L.row(step, e), L.row(step - 1, e), step - 1  # s: index into the records
    rule = RULES[L.opt]

    def ref(kind: str, name: str, mod: str | None) -> str:
        if kind == "$":
            return L.hyper(name.replace("1-", "1 - "))
        return cell(prev if mod else r, L.col(COLUMN.get(name, name)))

    book.text(ws, r, L.col("name"), rec.names[e])
    write_id(book, ws, r, L.col("id"), rec.ids[e])
    book.number(ws, r, L.col("step"), step, "int")
    book.formula(ws, r, L.col("value"), f"={cell(prev, L.col('new value'))}", run.value[s, e],
                 "num6")
    book.number(ws, r, L.col("grad"), run.grad[s, e], "sci")
    values = {"grad": run.grad_used[s, e], **{n: run.state[n][s, e] for n in rule.states}}
    if "betas" in run.hyper:  # torch's local bias_correction1 and 2: the same Python float
        t = run.state["step"][s]
        values |= {f"bias_correction{d + 1}": 1 - beta ** t
                   for d, beta in enumerate(run.hyper["betas"])}
    stages = {stage.name: stage for stage in rule.stages}
    for name in ("grad", *STATE[L.opt]):  # in column order
        if name == "state step":
            book.formula(ws, r, L.col(name), f"={cell(prev, L.col(name))}+1",
                         run.state["step"][s], "int")
        else:
            book.formula(ws, r, L.col(COLUMN.get(name, name)),
                         "=" + render(stages[name].formula, ref), values[name],
                         "num6" if name in SHARED else "sci")
    book.formula(ws, r, L.col("lr"), f"={L.hyper('lr')}", run.lr[s], None)
    book.formula(ws, r, L.col("new value"), "=" + render(rule.new_value, ref),
                 run.value_after[s, e], "num6")
    book.number(ws, r, L.col("torch value_after"), run.value_after[s, e], "torch")
    book.formula(ws, r, L.col("difference"),
                 f"={cell(r, L.col('new value'))}-{cell(r, L.col('torch value_after'))}", 0.0,
                 "torch_sci", check=False)


def _write_loss(book: Book, ws, L: StepLayout, run: OptSteps) -> None:
    """torch's loss before each step (values), and a line chart of it beside."""
    c = L.loss_col
    book.text(ws, GROUP_ROW, c, "loss by step", "group")
    book.text(ws, HEAD_ROW, c, "step", "head")
    book.text(ws, HEAD_ROW, c + 1, "MSE (torch)", "head")
    for s, loss in enumerate(run.loss):
        book.number(ws, FIRST + s, c, s + 1, "int")
        book.number(ws, FIRST + s, c + 1, loss, "torch")
    chart = book.wb.add_chart({"type": "line"})
    last = FIRST + L.steps - 1
    chart.add_series({"name": "MSE", "categories": [ws.name, FIRST, c, last, c],
                      "values": [ws.name, FIRST, c + 1, last, c + 1]})
    chart.set_title({"name": "Loss by step"})
    chart.set_x_axis({"name": "step"})
    chart.set_legend({"none": True})
    ws.insert_chart(HEAD_ROW, c + 3, chart)
    ws.set_column(c, c + 1, 11)
