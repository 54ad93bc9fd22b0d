"""A worksheet's structure as snapshot lines: panes, merges, names, rules, charts, comments."""

from __future__ import annotations

import json

from openpyxl.utils import get_column_letter


def sheet_lines(ws, buttons: list[tuple[str, str, str]], images: int) -> list[str]:
    """The structure lines of a worksheet, in a fixed order of kinds, each kind sorted."""
    out = []
    if ws.freeze_panes:
        out.append(f"freeze {ws.freeze_panes}")
    if ws.auto_filter.ref:
        out.append(f"autofilter {ws.auto_filter.ref}")
    merged = sorted(ws.merged_cells.ranges, key=lambda r: (r.min_row, r.min_col, r.bounds))
    out += [f"merged {r.coord}" for r in merged]
    out += [name_line(d) for _, d in sorted(ws.defined_names.items())]
    out += sorted(_validation(dv) for dv in ws.data_validations.dataValidation)
    for cf in sorted(ws.conditional_formatting, key=lambda cf: str(cf.sqref)):
        rules = sorted(cf.rules, key=lambda r: r.priority)
        out += [f"format {cf.sqref} {_rule(r)}" for r in rules]
    for chart in ws._charts:  # openpyxl keeps the charts it read here, in file order
        out += _chart_lines(chart)
    out += [f"button {cell} {quote(label)} -> {macro}" for cell, label, macro in buttons]
    comments = sorted((c.row, c.column, c.comment) for c in ws._cells.values() if c.comment)
    out += [f"comment {get_column_letter(col)}{row} {quote(c.text)} by {quote(c.author or '')}"
            for row, col, c in comments]
    if images:
        out.append(f"images {images}")
    return out


def name_line(defined) -> str:
    """A defined name: `name lr = params!$B$2`."""
    hidden = " hidden" if defined.hidden else ""
    return f"name {defined.name}{hidden} = {defined.attr_text}"


def quote(text: str) -> str:
    """A JSON string: one line, quotes and control characters escaped."""
    return json.dumps(text, ensure_ascii=False)


def _validation(dv) -> str:
    formulas = " and ".join(f for f in (dv.formula1, dv.formula2) if f is not None)
    bits = ("validation", str(dv.sqref), dv.type or "any", dv.operator, formulas)
    return " ".join(b for b in bits if b)


def _color(color) -> str:
    if color is None:
        return "none"
    if color.type == "rgb":
        return color.rgb
    tint = f"{color.tint:+g}" if color.tint else ""
    return f"{color.type}{color.value}{tint}" if color.type in ("theme", "indexed") else "auto"


def _cfvo(o) -> str:
    """A scale point: min, max, or a type and its value (percentile 50)."""
    if o.val is None:
        return o.type
    return f"{o.type} {o.val:.15g}" if isinstance(o.val, float) else f"{o.type} {o.val}"


def _rule(rule) -> str:
    """A conditional-format rule: type, operator, formulas, and its scale, bar or icons."""
    bits = [rule.type, rule.operator, None if rule.text is None else quote(rule.text),
            " and ".join(rule.formula) or None]
    if rule.colorScale is not None:
        scale = rule.colorScale
        bits.append(", ".join(f"{_cfvo(o)} {_color(c)}" for o, c in zip(scale.cfvo, scale.color)))
    if rule.dataBar is not None:
        bar = rule.dataBar
        bits.append(", ".join(_cfvo(o) for o in bar.cfvo) + f" {_color(bar.color)}")
    if rule.iconSet is not None:
        icons = rule.iconSet  # no name: Excel's default set
        points = ", ".join(_cfvo(o) for o in icons.cfvo)
        bits.append(f"{icons.iconSet or '3TrafficLights1'} {points}")
    return " ".join(b for b in bits if b)


def _anchor_cell(anchor) -> str:
    start = getattr(anchor, "_from", None)
    if start is None:
        return anchor if isinstance(anchor, str) else "absolute"
    return f"{get_column_letter(start.col + 1)}{start.row + 1}"


def _title(title) -> str | None:
    """A chart or axis title's text, or =REF when it is taken from a cell."""
    tx = getattr(title, "tx", None)
    if tx is None:
        return None
    if tx.strRef is not None:
        return f"={tx.strRef.f}"
    if tx.rich is None:
        return None
    return "\n".join("".join(run.t or "" for run in (p.r or [])) for p in tx.rich.p)


def _source(data) -> str | None:
    """The reference a series' data comes from (or 'literal' for values typed into the chart)."""
    if data is None:
        return None
    for ref in (getattr(data, a, None) for a in ("numRef", "strRef", "multiLvlStrRef")):
        if ref is not None and ref.f:
            return ref.f
    return "literal"


def _chart_lines(chart) -> list[str]:
    """One line for the chart (types, titles), one per series (name, data references)."""
    cell = _anchor_cell(chart.anchor)
    head = [f"chart {cell}", "+".join(c.tagname for c in chart._charts)]
    x_axis, y_axis = (getattr(chart, axis, None) for axis in ("x_axis", "y_axis"))  # none: pie
    for label, title in (("title", chart.title), ("x", getattr(x_axis, "title", None)),
                         ("y", getattr(y_axis, "title", None))):
        text = _title(title)
        if text is not None:
            head.append(f"{label} {quote(text)}")
    lines = [" ".join(head)]
    for plot in chart._charts:
        for s in plot.series:
            bits = [f"chart {cell} series"]
            if s.tx is not None:  # the series name: from a cell, or typed in
                bits.append(f"={s.tx.strRef.f}" if s.tx.strRef else quote(s.tx.v or ""))
            for label, attr in (("cat", "cat"), ("val", "val"), ("x", "xVal"), ("y", "yVal"),
                                ("size", "bubbleSize")):
                ref = _source(getattr(s, attr, None))
                if ref is not None:
                    bits.append(f"{label} {ref}")
            lines.append(" ".join(bits))
    return lines
