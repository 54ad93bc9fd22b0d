"""Macro workbooks: the snapshot says whether VBA is there and which macro each button runs."""

import zipfile

import openpyxl

from cfxl.proof.diff import diff, format_diff
from cfxl.proof.parts import _control_buttons
from cfxl.proof.snapshot import snapshot

VML = """<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office"
 xmlns:x="urn:schemas-microsoft-com:office:excel">
 <v:shape id="_x0000_s1025" type="#_x0000_t201" o:button="t" fillcolor="buttonFace [67]">
  <v:textbox><div style='text-align:center'><font face="Calibri">Train<br>one epoch</font></div>
  </v:textbox>
  <x:ClientData ObjectType="Button"><x:Anchor>1, 0, 3, 0, 3, 0, 5, 0</x:Anchor>
   <x:FmlaMacro>[0]!TrainEpoch</x:FmlaMacro></x:ClientData>
 </v:shape>
 <v:shape id="_x0000_s1026" type="#_x0000_t202"><x:ClientData ObjectType="Note">
  <x:Anchor>2, 0, 0, 0, 4, 0, 4, 0</x:Anchor></x:ClientData></v:shape>
</xml>"""
DRAWING = """<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
 xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><xdr:twoCellAnchor>
 <xdr:from><xdr:col>5</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>0</xdr:row><xdr:rowOff>0</xdr:rowOff>
 </xdr:from><xdr:to><xdr:col>7</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>2</xdr:row>
 <xdr:rowOff>0</xdr:rowOff></xdr:to><xdr:sp macro="[0]!Reset" textlink=""><xdr:nvSpPr>
 <xdr:cNvPr id="2" name="Reset"/><xdr:cNvSpPr/></xdr:nvSpPr><xdr:spPr/><xdr:txBody><a:bodyPr/>
 <a:p><a:r><a:t>Reset</a:t></a:r></a:p></xdr:txBody></xdr:sp><xdr:clientData/></xdr:twoCellAnchor>
 <xdr:oneCellAnchor><xdr:from><xdr:col>0</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>9</xdr:row>
 <xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:ext cx="10" cy="10"/><xdr:pic><xdr:nvPicPr>
 <xdr:cNvPr id="3" name="logo"/><xdr:cNvPicPr/></xdr:nvPicPr><xdr:blipFill/><xdr:spPr/></xdr:pic>
 <xdr:clientData/></xdr:oneCellAnchor></xdr:wsDr>"""
REL = '<Relationship Id="{}" Type="{}" Target="{}"/>'
OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"


def make_xlsm(xlsx, xlsm):
    """An .xlsm made from an openpyxl workbook: a dummy VBA project, a VML form button bound to
    a macro, a DrawingML shape bound to another, and a picture (the parts Excel writes)."""
    with zipfile.ZipFile(xlsx) as src:
        parts = {name: src.read(name) for name in src.namelist()}
    types = parts["[Content_Types].xml"].decode()
    types = types.replace("openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                          "ms-excel.sheet.macroEnabled.main+xml")
    types = types.replace("<Default ", '<Default Extension="bin" ContentType='
                          '"application/vnd.ms-office.vbaProject"/><Default Extension="vml" '
                          'ContentType="application/vnd.openxmlformats-officedocument.vmlDrawing"/>'
                          "<Default ", 1)
    types = types.replace("</Types>", '<Override PartName="/xl/drawings/drawing9.xml" ContentType='
                          '"application/vnd.openxmlformats-officedocument.drawing+xml"/></Types>')
    book_rels = parts["xl/_rels/workbook.xml.rels"].decode()
    vba = REL.format("rIdVBA", "http://schemas.microsoft.com/office/2006/relationships/vbaProject",
                     "vbaProject.bin")
    sheet_rels = ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                  + REL.format("rId1", OFFICE + "vmlDrawing", "../drawings/vmlDrawing1.vml")
                  + REL.format("rId2", OFFICE + "drawing", "/xl/drawings/drawing9.xml")
                  + "</Relationships>")
    sheet = parts["xl/worksheets/sheet1.xml"].decode().replace(
        "</worksheet>", f'<drawing xmlns:r="{OFFICE[:-1]}" r:id="rId2"/>'
        f'<legacyDrawing xmlns:r="{OFFICE[:-1]}" r:id="rId1"/></worksheet>')
    parts.update({"[Content_Types].xml": types, "xl/worksheets/sheet1.xml": sheet,
                  "xl/_rels/workbook.xml.rels": book_rels.replace("</Relationships>",
                                                                  vba + "</Relationships>"),
                  "xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 not a real VBA project",
                  "xl/worksheets/_rels/sheet1.xml.rels": sheet_rels,
                  "xl/drawings/vmlDrawing1.vml": VML, "xl/drawings/drawing9.xml": DRAWING})
    with zipfile.ZipFile(xlsm, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)
    return xlsm


def test_xlsm_vba_and_button_bindings(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "train"
    wb.active["A1"] = "lr"
    wb.save(tmp_path / "plain.xlsx")
    xlsm = make_xlsm(tmp_path / "plain.xlsx", tmp_path / "macros.xlsm")
    lines = snapshot(xlsm).splitlines()
    assert "  vba present" in lines
    assert '  button B4 "Train one epoch" -> [0]!TrainEpoch' in lines
    assert '  button F1 "Reset" -> [0]!Reset' in lines
    assert sum(line.startswith("  button") for line in lines) == 2  # the Note is no button
    assert "  images 1" in lines
    report = format_diff(diff(tmp_path / "plain.xlsx", xlsm))
    assert "  - vba absent\n  + vba present" in report
    assert '  + button B4 "Train one epoch" -> [0]!TrainEpoch' in report


def test_buttons_known_only_from_ctrl_props(tmp_path):
    sheet = ('<controls><mc:AlternateContent><mc:Choice Requires="x14"><control shapeId="1025" '
             'r:id="rId3" name="Button 1"><controlPr><anchor><from><xdr:col>2</xdr:col>'
             '<xdr:colOff>0</xdr:colOff><xdr:row>6</xdr:row></from></anchor></controlPr></control>'
             '</mc:Choice></mc:AlternateContent><control shapeId="1026" r:id="rId4" name="Check"/>'
             "</controls>")
    props = {"rId3": {"objectType": "Button", "fmlaMacro": "[0]!Fit"},
             "rId4": {"objectType": "CheckBox"}}
    assert _control_buttons(sheet, props) == {("C7", "Button 1", "[0]!Fit")}
