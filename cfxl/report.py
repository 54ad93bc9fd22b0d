"""The command line's plain-text reports: aligned tables of epochs, results and checks, built from
the library's records (the CLI only prints them)."""

from __future__ import annotations

EPOCH_COLS = [("epoch", "epoch", "d"), ("train_loss", "train_loss", ".5f"),
              ("val_loss", "val_loss", ".5f"), ("val_rmse", "val_rmse", ".5f"),
              ("lr", "lr", ".3g"), ("seconds", "seconds", ".2f")]
LESSON_COLS = [("model", "model", "s"), ("val_mse", "val MSE", ".4f"),
               ("val_rmse", "val RMSE", ".4f"), ("seconds", "seconds", ".1f")]
CHECK_COLS = [("sheet", "sheet", "s"), ("checked", "cells", ",d"),
              ("max_rel_err", "max rel err", ".2g")]


def format_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; cols are (key, header, format)."""
    cells = [[h for _, h, _ in cols]] + [[format(r[k], f) for k, _, f in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def epoch_printer(echo):
    """on_epoch for fit: echo a table row per epoch, its header before the first."""
    shown = {"header": False}

    def on_epoch(row: dict) -> None:
        head, line = format_table([row], EPOCH_COLS).splitlines()
        if not shown["header"]:
            echo(head)
            shown["header"] = True
        echo(line)
    return on_epoch


def lesson_printer(echo):
    """on_start for cfxl.workbooks.run_lesson: a heading per model, then its epoch table."""
    def on_start(name: str, config) -> object:
        echo(f"\n{name}: {config.opt}, schedule {config.schedule}, "
             f"weight decay {config.weight_decay:g}")
        return epoch_printer(echo)
    return on_start


def ratings_line(data) -> str:
    return (f"{data.source}: {len(data):,} ratings, {data.n_users:,} users, "
            f"{data.n_movies:,} movies")


def ratings_info(data) -> str:
    lo, hi = data.rating_range
    return (f"file:     {data.source}\nratings:  {len(data):,}\nusers:    {data.n_users:,}\n"
            f"movies:   {data.n_movies:,}\nrange:    {lo:g} to {hi:g}\n"
            f"titles:   {'yes' if data.titles is not None else 'no'}")


def duplicates_note(data) -> str | None:
    """What reading changed: duplicate ratings dropped, titles cut to fit a cell; None if nothing."""
    notes = []
    if data.dropped_duplicates:
        notes.append(f"note: {data.source}: dropped {data.dropped_duplicates:,} duplicate "
                     "(user, movie) ratings, keeping the last of each")
    if data.cut_titles:
        notes.append(f"note: {data.titles.attrs['source']}: {count(data.cut_titles, 'title')} "
                     "(or genres) longer than a spreadsheet cell's 32,767 characters cut to fit, "
                     "each ending in '... [cut: N characters]'")
    return "\n".join(notes) or None


def lesson_table(models: dict) -> str:
    """Each lesson model's last validation MSE and RMSE, and its training time."""
    rows = [{"model": name, "val_mse": m.history[-1]["val_loss"],
             "val_rmse": m.history[-1]["val_rmse"],
             "seconds": sum(h["seconds"] for h in m.history)} for name, m in models.items()]
    return ("Validation after training (lesson on ml-latest-small: EmbeddingDot 1.130, "
            "EmbeddingDotBias 0.801, EmbeddingNet 0.781 MSE)\n" + format_table(rows, LESSON_COLS))


def recalc_report(done, report=None) -> tuple[str, str | None]:
    """(the text, the problems in one line or None) of a recalculation (cfxl.proof.recalc) and,
    when given, its comparison with torch (cfxl.proof.verify.Report)."""
    from cfxl.sheets.refs import on_sheet

    formulas = sum(map(len, done.formulas.values()))
    how = " (soffice --convert-to: values to 15 significant digits)" * (done.via == "convert")
    lines = [f"{done.path}: {count(formulas, 'formula')} in {count(len(done.values), 'sheet')} "
             f"recomputed by LibreOffice in {done.seconds:.2f} s{how}"]
    lines += [f"sheet {_quoted(sheet)}: {what}" for sheet, what in done.lost.items()]
    lines += [f"{on_sheet(sheet, cell)}: {text}" for sheet, cell, text in done.errors]
    problems = [f"{count(len(done.lost), 'sheet')} not read whole by LibreOffice "
                f"({', '.join(map(_quoted, done.lost))})"] if done.lost else []
    problems += [count(len(done.errors), "formula error")] if done.errors else []
    if report is not None:
        rows = [{"sheet": s, "checked": c.checked, "max_rel_err": c.max_rel_err}
                for s, c in report.sheets.items()]
        lines += [f"against torch (rtol {report.rtol:g}, atol {report.atol:g}):",
                  format_table(rows, CHECK_COLS)]
        lines += [f"{on_sheet(m.sheet, m.cell)}: LibreOffice {m.engine!r}, torch {m.torch!r}: "
                  f"{m.problem}" for m in report.failures]
        if report.failures:
            problems.append(f"{count(len(report.failures), 'cell')} off torch's values")
    return "\n".join(lines), ", ".join(problems) or None


def _quoted(sheet: str) -> str:
    return "'" + sheet.replace("'", "''") + "'"
