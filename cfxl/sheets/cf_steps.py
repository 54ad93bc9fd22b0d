"""The CF model's optimizer steps, live: torch.optim's updates as formulas on the cf_* sheets.

`cf_sgd`, `cf_momentum`, `cf_adam` and `cf_adamw` unroll torch.optim's update of every recorded
parameter element as formulas (its rules: cfxl.sheets.rules), one row per (step, element).

Rows are grouped by step with the elements in the same order every step, so an element's
previous step is always `height` rows up: its value is that row's new value, its state follows
from that row's. Step 0 holds the starting values and torch's empty state as zeros (torch's first
momentum_buffer is the gradient itself, 0.9 * 0 + grad; Adam's moments start at 0), so every later
row carries the same formulas. (That also keeps LibreOffice 7.4 right: a column whose first step
had formulas of another shape than the rest gave false circular-reference errors, Err:522, once a
step had about 100 elements.)

A live sheet (the slice model, full batch) holds beside each step's elements the forward pass at
every rating, one row per rating (cfxl.sheets.cf_chain): x, the prediction, the error and
d loss/dx from that step's parameter cells; each element's gradient sums them (the chain rule),
and each step's MSE is a formula of the errors. Edit lr, momentum, a beta, eps, weight_decay or a
starting value (yellow) and the whole run follows, as torch.optim would train it. A traced run
(the whole data's model) keeps torch's recorded gradient: its settings are shown, not editable.
Torch's own value after each step sits beside the formula's, with the difference.
`write_cf_sheets` also writes the `gradients` sheet (cfxl.sheets.gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

from cfxl.errors import CfxlError
from cfxl.records.types.cf import CF_OPTIMIZERS, CFStepRecords, OptSteps
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.cf_chain import Chain, chain_of, scales
from cfxl.sheets.gradients import write_gradients_sheet
from cfxl.sheets.table import write_id
from cfxl.sheets.refs import area, cell
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
         for opt in CF_OPTIMIZERS}
# Its state and update columns: torch's step count where the rule reads it, every stage after
# the gradient.
STATE = {opt: ("state step",) * RULES[opt].reads("{step}")
         + tuple(s.name for s in RULES[opt].stages if s.name != "grad") for opt in CF_OPTIMIZERS}
LEAD = ("name", "id", "step", "value", "grad", "grad_used")
COLUMN = {"param": "value", "dloss": "grad", "grad": "grad_used", "step": "state step"}  # rules'
TAIL = ("new value", "torch value_after", "difference")
# a live sheet's forward pass, one row per rating, right of the elements; its constants above it
RATING = ("userId", "movieId", "rating", "x", "prediction", "error", "d loss/dx")
CONSTANTS = ("lo", "hi", "n")
CF_SHEETS = {"sgd": "cf_sgd", "momentum": "cf_momentum", "adam": "cf_adam", "adamw": "cf_adamw"}
WHAT = {"sgd": "SGD", "momentum": "SGD with momentum (dampening 0, not Nesterov)",
        "adam": "Adam (torch's: bias-corrected, eps added after dividing by "
                "sqrt(bias_correction2))",
        "adamw": "AdamW (Adam with decoupled weight decay: each value first shrinks by "
                 "lr*weight_decay, then Adam's step on the plain gradient, grad_used = grad)"}


@dataclass(frozen=True)
class StepLayout:
    """0-based positions on a cf_* sheet."""

    opt: str
    n_elements: int
    steps: int
    n_ratings: int = 0  # a live sheet's forward-pass rows per step; 0: gradients as recorded

    @property
    def columns(self) -> tuple[str, ...]:
        return LEAD + STATE[self.opt] + TAIL

    def col(self, name: str) -> int:
        return self.columns.index(name)

    @property
    def height(self) -> int:
        """Rows per step: its elements, and beside them (a live sheet) its ratings."""
        return max(self.n_elements, self.n_ratings)

    def row(self, step: int, element: int) -> int:
        """Row of element (0-based) at step (0: the start; torch's steps are 1..steps); the
        same row holds rating number `element` of the step's forward pass."""
        return FIRST + step * self.height + element

    def rcol(self, name: str) -> int:
        """A column of the forward pass (RATING), one blank column right of the elements."""
        return len(self.columns) + 1 + RATING.index(name)

    def constant(self, name: str) -> str:
        """Absolute reference of lo, hi or n, above the forward pass's first columns."""
        return cell(HYPER_ROW + 1, self.rcol("userId") + CONSTANTS.index(name), absolute="rc")

    def hyper(self, name: str) -> str:
        """Absolute reference of a hyperparameter's value cell, e.g. $C$3 for lr."""
        return cell(HYPER_ROW + 1, HYPER_COL + HYPER[self.opt].index(name), absolute="rc")

    @property
    def loss_col(self) -> int:
        """The per-step loss table: step here, the MSE (a live sheet's formula) and torch's."""
        return self.rcol(RATING[-1]) + 2 if self.n_ratings else len(self.columns) + 1

    @property
    def last_row(self) -> int:
        return self.row(self.steps, self.height - 1)


def write_cf_sheets(book: Book, rec: CFStepRecords) -> None:
    """`gradients`, then one cf_* sheet per recorded optimizer (cf_sgd, cf_momentum, cf_adam,
    cf_adamw)."""
    write_gradients_sheet(book, rec.gradients)
    chain = chain_of(rec) if rec.live else None
    for run in rec.runs.values():
        write_cf_step_sheet(book, rec, run, chain)


def _note(rec: CFStepRecords, run: OptSteps, L: StepLayout) -> list[str]:
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
        data = (f"The bias sheet's EmbeddingDotBias on the slice's {rec.n_ratings} training "
                f"ratings ({rec.gradients.slice.n_valid} more held out, never trained on; "
                f"sigmoid range {rec.y_range[0]:g} to {rec.y_range[1]:g})")
    batch = "full-batch" if rec.bs is None else f"in batches of {rec.bs}"
    head = (f"{data}, {rec.n_factors} factors, trained {batch} by torch.optim {WHAT[run.opt]} for "
            f"{rec.steps} steps from its initial parameters (seed {rec.seed}), in float64. One row "
            f"per (step, element); the same element's previous step is {L.height:,} rows up; "
            f"step 0 is the start, with torch's empty state as zeros.")
    if rec.live:
        return [head + " Beside each step's elements, the forward pass at each rating (x, "
                "prediction, error = prediction - rating, d loss/dx); grad sums it by the chain "
                "rule, as the gradients sheet does.",
                "Edit lr or another setting, or a starting value (yellow): every gradient, state, "
                "value and the loss by step follow, as torch.optim would train the model."]
    return [head, "Settings as torch used them, not editable: grad is torch's recorded gradient "
            "of a model this sheet does not hold (all the data's ratings, or the batches drawn), "
            "so another setting could not be replayed here. The update formulas show torch's rule."]


def write_cf_step_sheet(book: Book, rec: CFStepRecords, run: OptSteps,
                        chain: Chain | None = None) -> None:
    """One optimizer's steps: hyperparameters at the top, then a row per (step, element), with
    (chain: a live run) the forward pass at each rating beside each step's elements."""
    E = len(rec.names)
    L = StepLayout(run.opt, E, len(run.lr), 0 if chain is None else len(chain.y))
    if L.last_row >= MAX_ROWS:
        raise CfxlError(f"{L.steps} steps of {E:,} elements need {L.last_row + 1:,} rows, more "
                        f"than a sheet's {MAX_ROWS:,}: trace fewer users or movies, or fewer steps")
    ws = book.sheet(CF_SHEETS[run.opt], _note(rec, run, L))
    _write_hyper(book, ws, L, run, live=chain is not None)

    state_cols = STATE[run.opt]
    if state_cols:
        book.text(ws, GROUP_ROW, L.col(state_cols[0]), "optimizer state (torch's names)", "group")
    book.text(ws, GROUP_ROW, L.col("torch value_after"), "torch's, recorded", "group")
    for c, label in enumerate(L.columns):
        book.text(ws, HEAD_ROW, c, label, "head")
    size = None if chain is None else scales(chain, run)
    if chain is not None:
        _write_constants(book, ws, L, rec)

    for e in range(E):
        _write_start(book, ws, L, rec, run, e, live=chain is not None)
    for s in range(1, L.steps + 1):
        if chain is not None:
            _write_forward(book, ws, L, rec, chain, run, s, size)
        for e in range(E):
            _write_row(book, ws, L, rec, run, s, e, chain, size)

    _write_loss(book, ws, L, run, size)
    ws.set_column(0, 0, 15)
    ws.set_column(1, 2, 7)
    ws.set_column(3, len(L.columns) - 1, 15)
    if chain is not None:
        ws.set_column(L.rcol("userId"), L.rcol("rating"), 8)
        ws.set_column(L.rcol("x"), L.rcol(RATING[-1]), 11)
    ws.freeze_panes(FIRST, 1)


def _write_hyper(book: Book, ws, L: StepLayout, run: OptSteps, *, live: bool) -> None:
    """The labelled hyperparameter cells, torch's settings for the run: yellow where live."""
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
            book.number(ws, HYPER_ROW + 1, HYPER_COL + d, values[name],
                        ("hyper_sci" if name == "eps" else "hyper") if live else "general")


def _write_constants(book: Book, ws, L: StepLayout, rec: CFStepRecords) -> None:
    """lo and hi of the sigmoid range, and n (ratings in the loss), above the forward pass."""
    c = L.rcol("userId")
    book.text(ws, GROUP_ROW, c, "forward pass at each rating (this step's parameters)", "group")
    for d, name in enumerate(CONSTANTS):
        book.text(ws, HYPER_ROW, c + d, name, "head")
    book.number(ws, HYPER_ROW + 1, c, rec.y_range[0], "num2")
    book.number(ws, HYPER_ROW + 1, c + 1, rec.y_range[1], "num2")
    ratings = area(L.row(1, 0), L.rcol("rating"), L.row(1, rec.n_ratings - 1), L.rcol("rating"))
    book.formula(ws, HYPER_ROW + 1, c + 2, f"=COUNT({ratings})", rec.n_ratings, "int")
    for name in RATING:
        book.text(ws, HEAD_ROW, L.rcol(name), name, "head")


def _write_start(book: Book, ws, L: StepLayout, rec: CFStepRecords, run: OptSteps,
                 e: int, *, live: bool) -> None:
    """Step 0 of an element: its starting value as the new value, and zeros for the state."""
    r = L.row(0, e)
    book.text(ws, r, L.col("name"), rec.names[e])
    write_id(book, ws, r, L.col("id"), rec.ids[e])
    book.number(ws, r, L.col("step"), 0, "int")
    for name in STATE[L.opt]:
        if name not in SHARED:
            book.number(ws, r, L.col(name), 0, "int" if name == "state step" else "sci")
    book.number(ws, r, L.col("new value"), run.value[0, e], "input6" if live else "num6")
    book.number(ws, r, L.col("torch value_after"), run.value[0, e], "torch")


def _write_forward(book: Book, ws, L: StepLayout, rec: CFStepRecords, chain: Chain,
                   run: OptSteps, step: int, size: dict) -> None:
    """One step's forward pass, a row per training rating: x from this step's parameter cells,
    the prediction (the sigmoid range, in torch's order of operations), the error (prediction -
    rating) and d loss/dx = 2/n error (prediction - lo)(hi - prediction)/(hi - lo)."""
    s, F = step - 1, chain.n_factors
    lo, hi, n = (L.constant(name) for name in CONSTANTS)

    def value(e: int) -> str:
        return cell(L.row(step, e), L.col("value"))

    for r, (u, m) in enumerate(zip(chain.users.tolist(), chain.movies.tolist())):
        row = L.row(step, r)
        at = {name: cell(row, L.rcol(name)) for name in RATING}
        user = f"{value(chain.u_weight(u))}:{value(chain.u_weight(u, F - 1))}"
        movie = f"{value(chain.i_weight(m))}:{value(chain.i_weight(m, F - 1))}"
        write_id(book, ws, row, L.rcol("userId"), rec.gradients.slice.user_ids[u])
        write_id(book, ws, row, L.rcol("movieId"), rec.gradients.slice.movie_ids[m])
        book.number(ws, row, L.rcol("rating"), chain.y[r], "rating")
        p = at["prediction"]
        for name, formula, values in (
                ("x", f"SUMPRODUCT({user},{movie})+{value(chain.u_bias(u))}"
                      f"+{value(chain.i_bias(m))}", run.x),
                ("prediction", f"1/(1+EXP(-{at['x']}))*({hi}-{lo})+{lo}", run.pred),
                ("error", f"{p}-{at['rating']}", run.pred - chain.y),
                ("d loss/dx", f"2/{n}*{at['error']}*(({p}-{lo})*({hi}-{p})/({hi}-{lo}))",
                 run.dloss_dx)):
            book.formula(ws, row, L.rcol(name), "=" + formula, values[s, r],
                         "sci" if name == "d loss/dx" else "num", scale=size[name][s, r])


def _gradient(L: StepLayout, chain: Chain, step: int, e: int) -> str:
    """An element's gradient: over its ratings, d loss/dx times the other side's factor (this
    step's value), summed; a user bias's is the SUM of its user's consecutive d loss/dx."""
    dx = L.rcol("d loss/dx")
    terms = chain.terms[e]
    if not terms:
        return "=0"
    if all(o is None for _, o in terms) and [r for r, _ in terms] == list(
            range(terms[0][0], terms[-1][0] + 1)):
        return f"=SUM({area(L.row(step, terms[0][0]), dx, L.row(step, terms[-1][0]), dx)})"
    return "=" + "+".join(cell(L.row(step, r), dx) if o is None else
                          f"{cell(L.row(step, r), dx)}*{cell(L.row(step, o), L.col('value'))}"
                          for r, o in terms)


def _write_row(book: Book, ws, L: StepLayout, rec: CFStepRecords, run: OptSteps,
               step: int, e: int, chain: Chain | None, size: dict | None) -> None:
    """One element at one of torch's steps: torch's rule (cfxl.sheets.rules) as formulas over
    this row, the row `height` up (the same element's previous step) and the hyper cells; the
    gradient a formula of the step's forward pass (live) or torch's recorded number."""
    r, prev, s = L.row(step, e), L.row(step - 1, e), step - 1  # s: index into the records
    rule = RULES[L.opt]

    def scale(name: str):
        return None if size is None or name not in size else size[name][s, e]

    def ref(kind: str, name: str, mod: str | None) -> str:
        if kind == "$" or name == "lr":  # lr: the same every step, the top cell itself
            return L.hyper(name.replace("1-", "1 - "))
        return cell(prev if mod else r, L.col(COLUMN.get(name, name)))

    book.text(ws, r, L.col("name"), rec.names[e])
    write_id(book, ws, r, L.col("id"), rec.ids[e])
    book.number(ws, r, L.col("step"), step, "int")
    book.formula(ws, r, L.col("value"), f"={cell(prev, L.col('new value'))}", run.value[s, e],
                 "num6", check=chain is None)  # live: a copy of the new value verified above
    if chain is None:
        book.number(ws, r, L.col("grad"), run.grad[s, e], "sci")
    else:
        book.formula(ws, r, L.col("grad"), _gradient(L, chain, step, e), run.grad[s, e], "sci",
                     scale=scale("grad"))
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
                         "num6" if name in SHARED else "sci",
                         scale=scale("grad_used" if name == "grad" else name))
    book.formula(ws, r, L.col("new value"), "=" + render(rule.new_value, ref),
                 run.value_after[s, e], "num6", scale=scale("new value"))
    book.number(ws, r, L.col("torch value_after"), run.value_after[s, e], "torch")
    book.formula(ws, r, L.col("difference"),
                 f"={cell(r, L.col('new value'))}-{cell(r, L.col('torch value_after'))}", 0.0,
                 "torch_sci", check=False)


def _write_loss(book: Book, ws, L: StepLayout, run: OptSteps, size: dict | None) -> None:
    """The MSE before each step (a live sheet: SUMSQ of the step's errors / n) beside torch's,
    and a line chart of both."""
    c = L.loss_col
    live = size is not None
    book.text(ws, GROUP_ROW, c, "loss by step", "group")
    for d, head in enumerate(("step", "MSE", "MSE (torch)")[:2 + live]):
        book.text(ws, HEAD_ROW, c + d, head, "head")
    for s, loss in enumerate(run.loss):
        book.number(ws, FIRST + s, c, s + 1, "int")
        if live:
            errors = area(L.row(s + 1, 0), L.rcol("error"), L.row(s + 1, L.n_ratings - 1),
                          L.rcol("error"))
            book.formula(ws, FIRST + s, c + 1, f"=SUMSQ({errors})/{L.constant('n')}", loss,
                         "num", scale=size["MSE"][s])
        book.number(ws, FIRST + s, c + 1 + live, loss, "torch")
    chart = book.wb.add_chart({"type": "line"})
    last = FIRST + L.steps - 1
    for d, name in enumerate(("MSE", "torch, as recorded")[:1 + live]):
        chart.add_series({"name": name, "categories": [ws.name, FIRST, c, last, c],
                          "values": [ws.name, FIRST, c + 1 + d, last, c + 1 + d],
                          **({"line": {"dash_type": "dash", "color": "#7F7F7F"}} if d else {})})
    chart.set_title({"name": "Loss by step"})
    chart.set_x_axis({"name": "step"})
    chart.set_legend({"position": "bottom"} if live else {"none": True})
    ws.insert_chart(HEAD_ROW, c + 4, chart)
    ws.set_column(c, c + 2, 11)
