"""Render the demo workbook's main sheets to PNG pictures for the README, with LibreOffice.

    python docs/render_pictures.py [workbooks/collab_filter.xlsx]

xlsx -> pdf (soffice, headless; each sheet prints on one page, see cfxl.sheets.book) -> png
(pdftoppm, from poppler-utils) -> docs/images/<sheet>.png for the sheets in SHEETS.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openpyxl import load_workbook

HERE = Path(__file__).parent
SHEETS = ("dotprod", "bias", "movielens_1hot", "nn", "history", "bias_rank", "pca")


def main(book: Path) -> None:
    sheets = load_workbook(book, read_only=True).worksheets
    visible = [ws.title for ws in sheets if ws.sheet_state == "visible"]
    out = HERE / "images"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp, "profile").as_uri()
        subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless",
                        "--convert-to", "pdf", "--outdir", tmp, str(book)],
                       check=True, capture_output=True, timeout=300)
        pdf = Path(tmp, book.with_suffix(".pdf").name)
        subprocess.run(["pdftoppm", "-png", "-r", "70", str(pdf), f"{tmp}/page"], check=True)
        pages = sorted(Path(tmp).glob("page-*.png"))
        if len(pages) != len(sheets):  # LibreOffice prints hidden sheets too; cfxl's come last
            sys.exit(f"{len(pages)} pages for {len(sheets)} sheets: a sheet spilled over a page")
        for name, page in zip(visible, pages):
            if name in SHEETS:
                shutil.copy(page, out / f"{name}.png")
                print(out / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "workbooks/collab_filter.xlsx"))
