"""What openpyxl does not read from a workbook's zip: its sheets' parts and formula counts, its
VBA, form-control buttons and images. Every part is read through cfxl.proof.package, bounded."""

from __future__ import annotations

import html
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from openpyxl.utils import get_column_letter

from cfxl.proof.package import CHUNK, read_part

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "pr": "http://schemas.openxmlformats.org/package/2006/relationships",
      "xdr": "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing",
      "a": "http://schemas.openxmlformats.org/drawingml/2006/main"}
ANCHORS = {f"{{{NS['xdr']}}}{kind}Anchor" for kind in ("twoCell", "oneCell", "absolute")}
R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"

# Excel's VML is not always well-formed XML (bare <br> in text boxes), so it is read with patterns.
VML_SHAPE = re.compile(r"<(?:\w+:)?shape\b.*?</(?:\w+:)?shape>", re.S)
VML_TEXTBOX = re.compile(r"<(?:\w+:)?textbox\b[^>]*>(.*?)</(?:\w+:)?textbox>", re.S)
CONTROL = re.compile(r"<(?:\w+:)?control\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?control>)", re.S)
ATTR = re.compile(r'([\w:]+)="([^"]*)"')
FORMULA = re.compile(rb"<f(?=[\s>/])([^>]*)>")  # <f>, <f t="shared" .../>, <f t="array" ref=..>
ARRAY = re.compile(rb'\bt="array"')
REF = re.compile(rb'\bref="\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?"')
MACRO = re.compile(r"^[ \t]*(?:(?:Public|Private|Friend|Static)[ \t]+)*(?:Sub|Function)[ \t]+(\w+)",
                   re.M | re.I)


def _tag_text(name: str, text: str) -> str | None:
    m = re.search(rf"<(?:\w+:)?{name}\b[^>]*>(.*?)</(?:\w+:)?{name}>", text, re.S)
    return html.unescape(m.group(1).strip()) if m else None


def _text(markup: str) -> str:
    """The visible text of a bit of markup, whitespace collapsed."""
    markup = re.sub(r"<br\s*/?>", " ", markup, flags=re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def _cell(col: int, row: int) -> str:
    """A1 reference of 0-based column and row indices."""
    return f"{get_column_letter(col + 1)}{row + 1}"


def rels(zf: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """{relationship id: (type's last word, target part)} of a package part ('' for the root)."""
    folder, name = posixpath.split(part)
    data = read_part(zf, posixpath.join(folder, "_rels", name + ".rels"))
    if data is None:
        return {}
    out = {}
    for rel in ET.fromstring(data).iterfind("pr:Relationship", NS):
        target = rel.get("Target", "")
        if rel.get("TargetMode") == "External":
            continue
        if target.startswith("/"):
            target = target[1:]
        else:
            target = posixpath.normpath(posixpath.join(folder, target))
        out[rel.get("Id")] = (rel.get("Type", "").rsplit("/", 1)[-1], target)
    return out


def workbook_part(zf: zipfile.ZipFile) -> str:
    """The workbook's part (xl/workbook.xml unless the package says otherwise)."""
    found = (target for kind, target in rels(zf, "").values() if kind == "officeDocument")
    return next(found, "xl/workbook.xml")


def sheet_parts(zf: zipfile.ZipFile, *, kind: str | None = None) -> dict[str, str | None]:
    """{sheet name: its part}, in the workbook's order: every sheet with a part, or with kind
    ("worksheet") those of that kind, None where the part the workbook names is missing."""
    book = workbook_part(zf)
    targets = rels(zf, book)
    out, held = {}, set(zf.namelist())
    for s in ET.fromstring(read_part(zf, book) or b"<m/>").iterfind("m:sheets/m:sheet", NS):
        found, part = targets.get(s.get(R_ID), (kind, None))
        if kind is None and part is not None:
            out[s.get("name")] = part
        elif kind is not None and found == kind:
            out[s.get("name")] = part if part in held else None
    return out


def sheet_formulas(path: Path) -> dict[str, tuple[str | None, int]]:
    """{worksheet: (its part or None, the formula cells the part holds)} of an .xlsx or .xlsm, by
    a streamed count that does not parse the part (a damaged one is counted too); {} for an .ods.
    An array formula holds each cell of its block, as LibreOffice counts them."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {name: (part, _count_formulas(zf, part) if part else 0)
                    for name, part in sheet_parts(zf, kind="worksheet").items()}
    except (zipfile.BadZipFile, ET.ParseError, OSError):
        return {}  # no OOXML workbook (an .ods), or one only LibreOffice may make sense of


def _count_formulas(zf: zipfile.ZipFile, part: str) -> int:
    """<f> elements, each a cell or an array formula's block; text holds no '<' (it is escaped),
    so a chunk cut at its last '<' never splits one."""
    count, carry = 0, b""
    with zf.open(part) as f:
        while True:
            data = f.read(CHUNK)
            text = carry + data
            cut = text.rfind(b"<") if data else -1
            cut = len(text) if cut == -1 else cut
            for attributes in FORMULA.findall(text, 0, cut):
                ref = REF.search(attributes) if ARRAY.search(attributes) else None
                count += 1 if ref is None or ref[3] is None else (
                    (int(ref[4]) - int(ref[2]) + 1) * (_column(ref[3]) - _column(ref[1]) + 1))
            carry = text[cut:]
            if not data:
                return count


def _column(letters: bytes) -> int:
    """b"A" -> 1, b"AA" -> 27."""
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def vba_lines(zf: zipfile.ZipFile) -> list[str]:
    """'vba absent', or 'vba present' and, when oletools is installed, 'vba module NAME: macros'."""
    part = next((t for kind, t in rels(zf, workbook_part(zf)).values() if kind == "vbaProject"),
                "xl/vbaProject.bin")
    data = read_part(zf, part)
    if data is None:
        return ["vba absent"]
    return ["vba present"] + [f"vba module {name}: {', '.join(macros)}"
                              for name, macros in sorted(_vba_modules(data).items())]


def _vba_modules(data: bytes) -> dict[str, list[str]]:
    """{module: its Sub and Function names}, read with oletools when it is installed."""
    try:
        from oletools.olevba import VBA_Parser
    except ImportError:
        return {}
    try:
        parser = VBA_Parser("vbaProject.bin", data=data)
        modules = {}
        for _, _, filename, code in parser.extract_macros():
            names = MACRO.findall(code if isinstance(code, str) else code.decode("latin-1"))
            if names:
                modules[filename.rsplit(".", 1)[0]] = names
        return modules
    except Exception:  # oletools raises many kinds on a damaged project; 'vba present' still holds
        return {}


def sheet_extras(zf: zipfile.ZipFile, part: str | None) -> tuple[list[tuple[str, str, str]], int]:
    """A worksheet part's buttons, (cell, label, macro) sorted, and its number of pictures.

    Buttons are form controls bound to a macro and drawn shapes with a macro assigned.
    """
    if part is None:
        return [], 0
    buttons, images, ctrl_props = set(), 0, {}
    for rid, (kind, target) in rels(zf, part).items():
        data = read_part(zf, target)
        if data is None:
            continue
        if kind == "vmlDrawing":
            buttons |= _vml_buttons(data.decode("utf-8", "replace"))
        elif kind == "drawing":
            found, pics = _drawing_buttons(data)
            buttons |= found
            images += pics
        elif kind == "ctrlProp":
            ctrl_props[rid] = ET.fromstring(data).attrib
    if not buttons and ctrl_props:  # Excel writes VML too; ctrlProps alone come from other tools
        buttons = _control_buttons((read_part(zf, part) or b"").decode("utf-8", "replace"),
                                   ctrl_props)
    return sorted(buttons), images


def _vml_buttons(vml: str) -> set[tuple[str, str, str]]:
    found = set()
    for shape in VML_SHAPE.findall(vml):
        macro = _tag_text("FmlaMacro", shape)
        if not macro or not re.search(r'ObjectType\s*=\s*"Button"', shape):
            continue
        anchor = [int(x) for x in (_tag_text("Anchor", shape) or "").split(",") if x.strip()]
        cell = _cell(anchor[0], anchor[2]) if len(anchor) >= 4 else "?"
        box = VML_TEXTBOX.search(shape)
        found.add((cell, _text(box.group(1)) if box else "", macro))
    return found


def _drawing_buttons(data: bytes) -> tuple[set[tuple[str, str, str]], int]:
    """Shapes with a macro in a DrawingML drawing, and how many pictures it holds."""
    root = ET.fromstring(data)
    found, pics = set(), len(root.findall(".//xdr:pic", NS))
    for anchor in (e for e in root.iter() if e.tag in ANCHORS):  # also inside mc:AlternateContent
        start = anchor.find("xdr:from", NS)
        for sp in anchor.iter(f"{{{NS['xdr']}}}sp"):
            if sp.get("macro"):
                cell = "?" if start is None else _cell(int(start.findtext("xdr:col", "0", NS)),
                                                      int(start.findtext("xdr:row", "0", NS)))
                label = " ".join("".join(t.text or "" for t in sp.iter(f"{{{NS['a']}}}t")).split())
                found.add((cell, label, sp.get("macro")))
    return found, pics


def _control_buttons(sheet_xml: str, ctrl_props: dict[str, dict]) -> set[tuple[str, str, str]]:
    """Buttons known only from xl/ctrlProps: the label is the name of the sheet's <control>."""
    found = set()
    for attrs, body in CONTROL.findall(sheet_xml):
        attrs = dict(ATTR.findall(attrs))
        props = ctrl_props.get(attrs.get("r:id", ""), {})
        if props.get("objectType") != "Button" or not props.get("fmlaMacro"):
            continue
        col, row = _tag_text("col", body), _tag_text("row", body)
        cell = _cell(int(col), int(row)) if col and row else "?"
        found.add((cell, attrs.get("name", ""), props["fmlaMacro"]))
    return found
