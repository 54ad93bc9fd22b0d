"""Runs under a Python that can `import uno`: drives one LibreOffice listener for cfxl.proof.recalc."""

# This file is run as a script by an interpreter that may not be cfxl's own (Debian's python3-uno
# is built for /usr/bin/python3), so it uses only the standard library and uno, never cfxl.
# Protocol, one JSON object per line: stdin gets {"path": url, "output": url, "filter": name} or
# {"quit": true}; stdout answers {"ready": true} once connected (or {"error": message} and the
# worker exits), then per workbook
# {"sheets": [[name, {cell: value}, [formula cells]]], "errors": [[sheet, cell, text]]}
# or {"error": message, "lost": whether LibreOffice is gone}.

import json
import os
import sys
import time

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.sheet.CellFlags import DATETIME, FORMULA, STRING, VALUE
from com.sun.star.sheet.FormulaResult import ERROR


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def column_letters(col):
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def cells_in(ranges):
    """(row, column, "B3") of each cell of a SheetCellRanges, row by row within each range."""
    for r in ranges.getRangeAddresses():
        first = r.StartColumn
        cols = [column_letters(c) for c in range(first, r.EndColumn + 1)]
        for row in range(r.StartRow, r.EndRow + 1):
            for i, letters in enumerate(cols):
                yield row, first + i, f"{letters}{row + 1}"


def read_sheet(sheet):
    """(values of non-empty cells, formula cells, errors as (cell, text)) of one sheet."""
    cursor = sheet.createCursor()
    cursor.gotoEndOfUsedArea(False)
    end = cursor.getRangeAddress()
    data = sheet.getCellRangeByPosition(0, 0, end.EndColumn, end.EndRow).getDataArray()
    content = sheet.queryContentCells(VALUE | DATETIME | STRING | FORMULA)
    values = {name: data[row][col] for row, col, name in cells_in(content)}
    errors = []
    for row, col, name in cells_in(sheet.queryFormulaCells(ERROR)):
        errors.append((name, sheet.getCellByPosition(col, row).getString()))
        values[name] = errors[-1][1]  # the data array holds None for an error
    formulas = [name for _, _, name in cells_in(sheet.queryContentCells(FORMULA))]
    return values, formulas, errors


def recalc(desktop, request):
    # The listener's profile makes loading recompute every formula, cached values or not.
    doc = desktop.loadComponentFromURL(request["path"], "_blank", 0, (
        prop("Hidden", True), prop("ReadOnly", True),
        prop("MacroExecutionMode", 0), prop("UpdateDocMode", 0)))
    if doc is None:
        return {"error": "LibreOffice could not open it"}
    try:
        if not hasattr(doc, "getSheets"):
            return {"error": "LibreOffice opened it, but not as a spreadsheet"}
        sheets, errors = [], []
        for sheet in doc.getSheets():
            values, formulas, errs = read_sheet(sheet)
            sheets.append([sheet.getName(), values, formulas])
            errors += [[sheet.getName(), cell, text] for cell, text in errs]
        if request.get("output"):
            doc.storeToURL(request["output"], (prop("FilterName", request["filter"]),))
        return {"sheets": sheets, "errors": errors}
    finally:
        doc.close(True)


def connect(pipe_name, timeout):
    """The listener's desktop, retrying while LibreOffice starts."""
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + timeout
    while True:
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe_name};urp;StarOffice.ComponentContext")
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    # Keep stdout for the protocol: anything else printing to fd 1 goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def answer(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        desktop = connect(sys.argv[1], float(sys.argv[2]))
    except Exception as e:
        answer({"error": f"no answer on its pipe within {sys.argv[2]} s ({type(e).__name__})"})
        return
    answer({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        try:
            answer(recalc(desktop, request))
        except Exception as e:
            lost = type(e).__name__ == "DisposedException"  # LibreOffice is gone: start afresh
            answer({"error": f"{type(e).__name__}: {getattr(e, 'Message', '') or e}", "lost": lost})
            if lost:
                return
    try:
        desktop.terminate()
    except Exception:
        pass  # the bridge often drops while LibreOffice exits


if __name__ == "__main__":
    main()
