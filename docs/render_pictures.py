"""Render the key regions of the demo workbooks' sheets to PNG pictures for the README.

    python docs/render_pictures.py [WORKBOOKS_FOLDER]   (default: workbooks/)

For each part of each entry of PICTURES: a copy of its workbook whose only printed page is that
region (its print area on a large page, so that nothing is shrunk; every other sheet hidden, so
not printed) -> pdf (LibreOffice, headless, trusting the file's values) -> a small grey raster
to find the drawn area -> that area rasterised at DPI (pdftoppm, from poppler-utils). The parts
are laid side by side or one above the other, reduced to a palette of at most 256 colours and
written as docs/images/<name>.png; numpy and zlib do the cropping and the PNG. Every picture
has the same scale, so text is the same size in all of them. `make pictures` runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from openpyxl.utils.cell import get_column_letter, range_boundaries

from cfxl.proof.office import find_soffice
from cfxl.proof.parts import rels, sheet_parts, workbook_part

HERE = Path(__file__).parent
OUT = HERE / "images"

# name: (workbook, sheet, region). A region is boxes side by side (" | ") in rows one above the
# other (" / "); a box is ranges and "chart" (the sheet's first chart, by its anchor) joined
# with "+", the smallest box holding them all. Edit these when a sheet's layout moves; the
# README shows each picture on its own row, with its caption (CAPTIONS).
PICTURES = {
    "dotprod": ("collab_filter.xlsx", "dotprod", "G2:P24 / O76:W80"),
    "bias_rank": ("collab_filter.xlsx", "bias_rank", "A2:F18"),
    "pca": ("collab_filter.xlsx", "pca", "chart"),
    "train": ("unrolled.xlsx", "train", "V3:Y20 | chart"),
    "adam": ("graddesc.xlsx", "adam", "A1:J18"),
}
CAPTIONS = {
    "dotprod": "`dotprod`: the slice's ratings (grey: held out for validation) and the movie "
               "factors (yellow: edit them, or let Solver train them); below, the train and "
               "valid RMSE and the objective, beside torch's",
    "bias_rank": "`bias_rank`: the movies with the highest learned bias",
    "pca": "`pca`: the movie factors' first two principal components",
    "train": "`train` (unrolled.xlsx): the settings (yellow) and the MSE of every step, "
             "training and held-out ratings",
    "adam": "`adam` (graddesc.xlsx): Adam's settings (yellow) and its loss by epoch",
}
DPI = 160          # twice what a repository page shows (about 880 pixels wide), for zooming in
MAX_WIDTH = 2100   # pixels (13 inches of sheet); wider, and shown 880 wide, text drops below ~10 px
MAX_BYTES = 300_000  # each picture goes into git history
WHITE = 250        # grey level above which a pixel is background
GAP = 24           # pixels between the parts of a picture
# A2 landscape (OOXML paper size 66): fit-to-page shrinks a region only if it is larger
PAGE_SETUP = '<pageSetup paperSize="66" orientation="landscape" fitToWidth="1" fitToHeight="1"/>'


def region_box(zf: zipfile.ZipFile, part: str, region: str) -> tuple[int, int, int, int]:
    """(first column, first row, last column, last row), 1-based, holding the region's parts."""
    boxes = []
    for item in region.split("+"):
        item = item.strip()
        boxes.append(chart_box(zf, part) if item == "chart" else range_boundaries(item))
    c0, r0, c1, r1 = zip(*boxes)
    return min(c0), min(r0), max(c1), max(r1)


def chart_box(zf: zipfile.ZipFile, part: str) -> tuple[int, int, int, int]:
    """The cells under the sheet's first chart (its drawing's first two-cell anchor)."""
    drawing = next((target for kind, target in rels(zf, part).values() if kind == "drawing"), None)
    if drawing is None:
        sys.exit(f"{part}: the sheet has no chart")
    xml = zf.read(drawing).decode("utf-8")
    anchor = re.search(r"<xdr:from><xdr:col>(\d+)</xdr:col>.*?<xdr:row>(\d+)</xdr:row>.*?"
                       r"<xdr:to><xdr:col>(\d+)</xdr:col><xdr:colOff>(\d+)</xdr:colOff>"
                       r"<xdr:row>(\d+)</xdr:row><xdr:rowOff>(\d+)</xdr:rowOff>", xml, re.DOTALL)
    if anchor is None:
        sys.exit(f"{drawing}: no two-cell anchor for its chart")
    c0, r0, c1, c1_off, r1, r1_off = map(int, anchor.groups())
    # "to" is the 0-based cell holding the bottom right corner; at offset 0 it is the cell after
    return c0 + 1, r0 + 1, c1 + (c1_off > 0), r1 + (r1_off > 0)


def one_page_copy(book: Path, sheet: str, region: str, target: Path) -> Path:
    """A copy of book printing only `region` of `sheet`: that sheet's print area, every other
    sheet hidden (LibreOffice prints no hidden sheet), other print areas removed."""
    with zipfile.ZipFile(book) as zin:
        parts = sheet_parts(zin)
        if sheet not in parts:
            sys.exit(f"{book}: no sheet {sheet!r} (it has {', '.join(parts)})")
        c0, r0, c1, r1 = region_box(zin, parts[sheet], region)
        index = list(parts).index(sheet)
        name = workbook_part(zin)
        xml = zin.read(name).decode("utf-8")
        xml = re.sub(r'<definedName name="_xlnm\.Print_Area"[^>]*>[^<]*</definedName>', "", xml)
        xml = re.sub(r"<sheet\b[^>]*>", lambda m: _state(m.group(0), sheet), xml)
        quoted = "'" + sheet.replace("'", "''") + "'"
        area = (f'<definedName name="_xlnm.Print_Area" localSheetId="{index}">{_escape(quoted)}!'
                f'${get_column_letter(c0)}${r0}:${get_column_letter(c1)}${r1}</definedName>')
        xml = (xml.replace("<definedNames>", "<definedNames>" + area, 1) if "<definedNames>" in xml
               else xml.replace("</sheets>", f"</sheets><definedNames>{area}</definedNames>", 1))
        xml = re.sub(r"<workbookView\b[^>]*>", lambda m: re.sub(
            r'\s+(?:activeTab|firstSheet)="\d+"', "", m.group(0)).replace(
            "<workbookView", f'<workbookView activeTab="{index}" firstSheet="{index}"', 1),
            xml, count=1)
        edited = {name: xml, parts[sheet]: _large_page(zin.read(parts[sheet]).decode("utf-8"))}
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info, edited[info.filename].encode("utf-8")
                              if info.filename in edited else zin.read(info))
    return target


def _large_page(xml: str) -> str:
    """The sheet's page setup replaced by PAGE_SETUP (fit to one page, on A2)."""
    if re.search(r"<pageSetup\b[^>]*/>", xml):
        return re.sub(r"<pageSetup\b[^>]*/>", PAGE_SETUP, xml, count=1)
    return re.sub(r"(<pageMargins\b[^>]*/>)", r"\1" + PAGE_SETUP, xml, count=1)


def _state(tag: str, shown: str) -> str:
    """A <sheet> element, hidden unless it is the sheet shown."""
    tag = re.sub(r'\s+state="\w+"', "", tag)
    if f'name="{_escape(shown)}"' in tag:
        return tag
    return tag.replace("<sheet ", '<sheet state="hidden" ', 1)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def to_pdf(books: list[Path], folder: Path) -> list[Path]:
    """Each book as a one-page PDF in folder (one LibreOffice run, a private profile)."""
    profile = (folder / "profile").as_uri()
    subprocess.run([find_soffice(), f"-env:UserInstallation={profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(folder), *map(str, books)],
                   check=True, capture_output=True, timeout=900)
    pdfs = [folder / book.with_suffix(".pdf").name for book in books]
    for book, pdf in zip(books, pdfs):
        info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True)
        pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
        if pages != 1:
            sys.exit(f"{book.name}: {pages} pages printed, expected the region alone on one page")
    return pdfs


def raster(pdf: Path, dpi: float, crop: tuple[int, int, int, int] | None = None,
           gray: bool = False) -> np.ndarray:
    """The PDF's page as an (h, w) grey or (h, w, 3) RGB array (pdftoppm's PPM/PGM output)."""
    args = ["pdftoppm", "-r", f"{dpi:.4f}", "-f", "1", "-l", "1", "-singlefile"]
    args += ["-gray"] if gray else []
    if crop is not None:
        x, y, w, h = crop
        args += ["-x", str(x), "-y", str(y), "-W", str(w), "-H", str(h)]
    data = subprocess.run(args + [str(pdf)], check=True, capture_output=True).stdout
    head = re.match(rb"P([56])\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    kind, w, h = head.group(1), int(head.group(2)), int(head.group(3))
    pixels = np.frombuffer(data, np.uint8, offset=head.end())
    return pixels.reshape(h, w) if kind == b"5" else pixels.reshape(h, w, 3)


def drawn_area(pdf: Path, dpi: float = 48) -> tuple[float, float, float, float]:
    """(left, top, width, height) in inches of what the page draws, a little margin around."""
    grey = raster(pdf, dpi, gray=True)
    ink = grey < WHITE
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        sys.exit(f"{pdf.name}: the page is blank")
    pad = 2
    top, left = max(rows[0] - pad, 0), max(cols[0] - pad, 0)
    bottom, right = min(rows[-1] + pad + 1, grey.shape[0]), min(cols[-1] + pad + 1, grey.shape[1])
    return left / dpi, top / dpi, (right - left) / dpi, (bottom - top) / dpi


def palette(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices (h, w) uint8, palette (n, 3) uint8), n <= 256: the most used colours (on a
    5-bit-per-channel grid, each its pixels' mean), every pixel mapped to the nearest."""
    flat = rgb.reshape(-1, 3).astype(np.int64)
    codes = (flat[:, 0] >> 3) << 10 | (flat[:, 1] >> 3) << 5 | flat[:, 2] >> 3
    bins, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    sums = np.stack([np.bincount(inverse, flat[:, k], len(bins)) for k in range(3)], axis=1)
    means = sums / counts[:, None]
    keep = np.argsort(-counts, kind="stable")[:256]
    colours = means[keep]
    nearest = np.empty(len(bins), np.int64)
    for start in range(0, len(bins), 4096):  # each bin to its nearest kept colour
        chunk = means[start:start + 4096]
        nearest[start:start + 4096] = ((chunk[:, None, :] - colours[None]) ** 2).sum(-1).argmin(1)
    index = nearest[inverse].reshape(rgb.shape[:2]).astype(np.uint8)
    return index, np.clip(np.rint(colours), 0, 255).astype(np.uint8)


def write_png(path: Path, index: np.ndarray, colours: np.ndarray) -> Path:
    """An 8-bit palette PNG (colour type 3) of index (h, w) over colours (n, 3)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    h, w = index.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), index], axis=1)  # filter 0 per row
    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 3, 0, 0, 0])  # 8-bit palette
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", header)
                     + chunk(b"PLTE", colours.tobytes())
                     + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
                     + chunk(b"IEND", b""))
    return path


def drawn(pdf: Path) -> np.ndarray:
    """The drawn area of the PDF's page, (h, w, 3) RGB at DPI."""
    left, top, width, height = drawn_area(pdf)
    return raster(pdf, DPI, tuple(int(round(v * DPI)) for v in (left, top, width, height)))


def compose(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Images side by side in each row, rows one above the other, GAP apart, on white."""
    def join(images, axis):
        size = max(im.shape[1 - axis] for im in images)
        padded = []
        for i, im in enumerate(images):
            pad = [(0, 0), (0, 0), (0, 0)]
            pad[1 - axis] = (0, size - im.shape[1 - axis])
            pad[axis] = (0, GAP if i < len(images) - 1 else 0)
            padded.append(np.pad(im, pad, constant_values=255))
        return np.concatenate(padded, axis=axis)
    return join([join(row, 1) for row in rows], 0)


def main(folder: Path) -> None:
    if shutil.which("pdftoppm") is None:
        sys.exit("pdftoppm is missing: apt-get install -y --no-install-recommends poppler-utils")
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        layout, copies = {}, []
        for name, (book, sheet, region) in PICTURES.items():
            layout[name] = []
            for r, row in enumerate(region.split(" / ")):
                layout[name].append([])
                for c, box in enumerate(row.split(" | ")):
                    copy = one_page_copy(folder / book, sheet, box,
                                         tmp / f"{name}-{r}-{c}{Path(book).suffix}")
                    layout[name][-1].append(len(copies))
                    copies.append(copy)
        pdfs = to_pdf(copies, tmp)
        for name, rows in layout.items():
            image = compose([[drawn(pdfs[i]) for i in row] for row in rows])
            path = write_png(OUT / f"{name}.png", *palette(image))
            size, width = path.stat().st_size, image.shape[1]
            print(f"{path} ({width} x {image.shape[0]}, {size // 1000} kB): {CAPTIONS[name]}")
            if size > MAX_BYTES or width > MAX_WIDTH:
                print(f"warning: {path} is over {MAX_BYTES:,} bytes or {MAX_WIDTH} pixels wide: "
                      "choose a smaller region in PICTURES", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "workbooks"))
