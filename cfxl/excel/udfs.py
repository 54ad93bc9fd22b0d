"""cfxl's Excel functions and scripts for xlwings: thin wrappers over cfxl.excel.model_functions and cfxl.excel.actions.

Desktop Excel (Windows): the macro workbook's xlwings.conf sheet names this module under
UDF Modules, so the add-in's "Import Functions" (or the ImportPythonUDFs macro) registers the
functions. xlwings Server and Lite import it as their custom-functions module. A range argument
arrives as a 2-D list; each function returns a value or a 2-D list that spills, and an error value
with its reason ("#VALUE! ...", "#N/A ...") instead of raising.
"""

from __future__ import annotations

import xlwings as xw

from cfxl.excel import actions
from cfxl.excel import functions
from cfxl.excel import model_functions
from cfxl.errors import CfxlError
from cfxl.excel.update import LiveBook
from cfxl.sheets import refs

# ------------------------------------------------------------------ the model's predictions


@xw.func
@xw.arg("user_id", ndim=2)
@xw.arg("movie_id", ndim=2)
@model_functions.excel_errors
def cfxl_predict(user_id, movie_id, model=None):
    """The model's predicted rating; ranges of ids broadcast (users down, movies across)."""
    return model_functions.predict(model_functions.load_model(model), user_id, movie_id)


@xw.func
@model_functions.excel_errors
def cfxl_recommend(user_id, n=10, exclude_seen=True, model=None):
    """The user's top-n movies (movieId, title, predicted), leaving out those rated when trained."""
    return model_functions.recommend(model_functions.load_model(model), user_id, n, bool(exclude_seen))


@xw.func
@model_functions.excel_errors
def cfxl_similar(movie_id, n=10, model=None):
    """The n movies nearest to this one by cosine similarity of their factors."""
    return model_functions.similar(model_functions.load_model(model), movie_id, n)


# ------------------------------------------------------------------ the model's building blocks


@xw.func
@xw.arg("u_range", ndim=2)
@xw.arg("m_range", ndim=2)
@model_functions.excel_errors
def cfxl_dot(u_range, m_range):
    """The dot product of user and movie factors (one per row for blocks of rows)."""
    return functions.dot(u_range, m_range)


@xw.func
@xw.arg("x", ndim=2)
@model_functions.excel_errors
def cfxl_sigmoid_range(x, lo, hi):
    """sigmoid(x) * (hi - lo) + lo, cell by cell, as the bias model squashes its output."""
    return functions.sigmoid_range(x, lo, hi)


# ------------------------------------------------------------------ one torch.optim step


@xw.func
@xw.arg("param", ndim=2)
@xw.arg("grad", ndim=2)
@model_functions.excel_errors
def cfxl_sgd_step(param, grad, lr, weight_decay=0.0):
    """One torch.optim.SGD step: the new value of each parameter cell."""
    return functions.sgd_step(param, grad, lr=lr, weight_decay=weight_decay).tolist()


@xw.func
@xw.arg("param", ndim=2)
@xw.arg("grad", ndim=2)
@xw.arg("buf", ndim=2)
@model_functions.excel_errors
def cfxl_momentum_step(param, grad, buf, lr, momentum=0.9, weight_decay=0.0, dampening=0.0, nesterov=False):
    """One torch.optim.SGD step with momentum: new value, momentum_buffer (blank buf: 1st step)."""
    return functions.sgd_step(param, grad, lr=lr, momentum=momentum, buf=buf, dampening=dampening,
                          weight_decay=weight_decay, nesterov=nesterov).tolist()


@xw.func
@xw.arg("param", ndim=2)
@xw.arg("grad", ndim=2)
@xw.arg("exp_avg", ndim=2)
@xw.arg("exp_avg_sq", ndim=2)
@model_functions.excel_errors
def cfxl_adam_step(param, grad, exp_avg, exp_avg_sq, lr, betas=None, eps=1e-8, weight_decay=0.0,
                   state_step=0):
    """One torch.optim.Adam step: new value, exp_avg, exp_avg_sq, step (state_step: steps done)."""
    return functions.adam_step(param, grad, exp_avg, exp_avg_sq, lr=lr, betas=betas, eps=eps,
                           weight_decay=weight_decay, state_step=state_step).tolist()


@xw.func
@xw.arg("ratings_range", ndim=2)
@model_functions.excel_errors
def cfxl_train(ratings_range, factors=5, epochs=300, lr=0.1):
    """Train the bias model on a ratings range (long or crosstab); its biases and factors spill."""
    return functions.train_table(ratings_range, factors, epochs, lr)


# ------------------------------------------------------------------ the buttons' actions


@xw.script
def cfxl_reset(book: xw.Book):
    """Reset the active optimizer sheet to its start values (xlwings Server and Lite)."""
    actions.perform(LiveBook(book), book.sheets.active.name, "reset")


@xw.script
def cfxl_run(book: xw.Book):
    """Run the active optimizer sheet on from its last row (xlwings Server and Lite)."""
    actions.perform(LiveBook(book), book.sheets.active.name, "run")


@xw.script
def cfxl_train_model(book: xw.Book):
    """Retrain the model from the ratings sheet and rewrite the model sheets (Server and Lite)."""
    actions.perform(LiveBook(book), book.sheets.active.name, "train")


@xw.script
def cfxl_refresh(book: xw.Book):
    """Rewrite the model sheets from the model file (xlwings Server and Lite)."""
    actions.perform(LiveBook(book), book.sheets.active.name, "refresh")


def on_button(action: str | None = None) -> None:
    """What the macro workbook's buttons run, through xlwings' RunPython: the clicked button's
    action (Excel names the button only on Windows), or the action a macro passes."""
    book = xw.Book.caller()
    sheet = book.sheets.active
    cell = None if action else _clicked(book, sheet)
    actions.perform(LiveBook(book), sheet.name, action, cell=cell)


def _clicked(book, sheet) -> str:
    """The cell under the button that was clicked, from Application.Caller (Windows COM)."""
    try:
        shape = sheet.api.Shapes(book.app.api.Caller)
        cell = shape.TopLeftCell
        return refs.cell(cell.Row - 1, cell.Column - 1)
    except Exception:  # macOS's AppleScript bridge and Server have no Application.Caller
        raise CfxlError("Excel did not say which button was clicked (it does only on Windows): "
                        "import templates/cfxl_macros.bas and assign its macros to the buttons, "
                        "or run `cfxl press BOOK ACTION SHEET` with the workbook "
                        "closed") from None
