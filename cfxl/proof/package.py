"""A workbook file looked at before anything reads it: what it is, and its parts bounded.

A folder, a missing file, an encrypted workbook (an OLE compound file holding an EncryptionInfo
stream) and an Excel 97-2003 file are each named for what they are. A zip's parts are bounded
before openpyxl reads them (`check_parts`): a part read a piece at a time (a worksheet, the
shared strings) may inflate to SHEET_LIMIT, any other part, read whole, to PART_LIMIT, all of
them together to TOTAL_LIMIT; each part is inflated once, streamed, so one whose header
understates its size (a zip bomb's trick) is caught in bounded memory. The error names the part.
cfxl's own reads of parts (`read_part`) go in chunks, under the same limits.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from pathlib import Path

from cfxl.errors import CfxlError

# cfxl's own largest sheet, the users table of ml-32m's 200,000 users with 50 factors, is just
# under 500 MiB; a part read whole (styles, drawings, a VBA project) is kilobytes to a few MiB.
SHEET_LIMIT = 512 << 20
PART_LIMIT = 64 << 20
TOTAL_LIMIT = 2 << 30
STREAMED = re.compile(r"(?:.*/)?(?:worksheets/[^/]+|sharedStrings)\.xml")  # openpyxl streams them
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the Compound File Binary format's signature
CHUNK = 1 << 20  # what one read inflates at most
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local header: 30 bytes


def mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


def file_head(path: Path, n: int = 16) -> bytes:
    """The first n bytes of the workbook file at path; a CfxlError that says what it is when it
    is no workbook file at all: a folder, missing, unreadable, encrypted or an old .xls."""
    if path.is_dir():
        raise CfxlError(f"{path} is a folder, not a workbook")
    try:
        with open(path, "rb") as f:
            head = f.read(max(n, len(OLE_MAGIC)))
    except FileNotFoundError:
        raise CfxlError(f"{path}: no such file") from None
    except OSError as e:
        raise CfxlError(f"{path}: cannot read it ({e.strerror or e})") from None
    if head.startswith(OLE_MAGIC):
        raise CfxlError(f"{path} is {_ole_kind(path)}")
    return head[:n]


def _ole_kind(path: Path) -> str:
    """What an OLE compound file is, from the names of its streams (UTF-16 at the start of a
    128-byte directory entry: the entries sit at multiples of 128 bytes in the file)."""
    names = {"EncryptionInfo": "encrypted", "Workbook": "xls", "Book": "xls"}
    wanted = {name.encode("utf-16-le") + b"\0\0": kind for name, kind in names.items()}
    found = set()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):  # CHUNK is a multiple of 128: no entry straddles two
            for needle, kind in wanted.items():
                at = chunk.find(needle)
                while at != -1:
                    if at % 128 == 0 and chunk[at + 64:at + 66] == struct.pack("<H", len(needle)):
                        found.add(kind)
                    at = chunk.find(needle, at + 1)
    if "encrypted" in found:
        return ("encrypted (a password-protected workbook: an OLE compound file with an "
                "EncryptionInfo stream); remove the password in Excel or LibreOffice and save it "
                "again")
    if "xls" in found:
        return "an Excel 97-2003 workbook (.xls); save it as .xlsx in Excel or LibreOffice"
    return "an OLE compound file (an older Office document), not a workbook"


def check_parts(zf: zipfile.ZipFile, path: Path, source: str) -> None:
    """Refuse a zip whose parts inflate past their limits (see the top), by what their headers
    say and then by inflating each, streamed: memory stays at about CHUNK."""
    total = 0
    infos = zf.infolist()
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CfxlError(f"{source}: part {info.filename} is compressed in a way Excel never "
                            f"writes (zip method {info.compress_type})")
        _bounded(source, info.filename, info.file_size)
        total += info.file_size
        if total > TOTAL_LIMIT:
            raise CfxlError(f"{source}: its parts inflate to more than {mib(TOTAL_LIMIT)} "
                            f"together (at {info.filename}): too big for cfxl to read")
    with open(path, "rb") as f:
        for info in infos:
            size = _inflated_size(f, info)
            if size < 0:
                raise CfxlError(f"{source}: part {info.filename} is damaged (its compressed "
                                "data cannot be read)")
            _bounded(source, info.filename, size)
            if size != info.file_size:
                raise CfxlError(f"{source}: part {info.filename} inflates to {size:,} bytes where "
                                f"its header says {info.file_size:,}: a damaged file or a zip bomb")


def _limit(name: str) -> int:
    return SHEET_LIMIT if STREAMED.fullmatch(name) else PART_LIMIT


def _bounded(source: str, name: str, size: int) -> None:
    if size > _limit(name):
        kind = "a sheet" if STREAMED.fullmatch(name) else "a part read whole"
        raise CfxlError(f"{source}: part {name} inflates to more than {mib(_limit(name))}, the "
                        f"most cfxl reads of {kind} (a zip bomb, or a damaged file)")


def _inflated_size(f, info: zipfile.ZipInfo) -> int:
    """The size a member really inflates to, counted CHUNK by CHUNK from its compressed bytes
    (zipfile trusts the header's size and inflates a whole member in one call); counting stops
    just past the part's limit."""
    f.seek(info.header_offset)
    header = f.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        return -1  # not where the directory says
    name_length, extra_length = LOCAL_HEADER.unpack(header)[-2:]
    f.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
    left = info.compress_size
    if info.compress_type == zipfile.ZIP_STORED:
        return left
    inflate, size, limit = zlib.decompressobj(-zlib.MAX_WBITS), 0, _limit(info.filename)
    while left > 0 and not inflate.eof and size <= limit:
        data = f.read(min(left, 1 << 16))
        if not data:
            break
        left -= len(data)
        try:
            size += len(inflate.decompress(data, CHUNK))
            while inflate.unconsumed_tail and size <= limit:
                size += len(inflate.decompress(inflate.unconsumed_tail, CHUNK))
        except zlib.error:
            return -1
    return size


def read_part(zf: zipfile.ZipFile, name: str) -> bytes | None:
    """A part of the zip, read in chunks and refused past its limit; None if it is absent."""
    try:
        member = zf.open(name)
    except KeyError:
        return None
    out = bytearray()
    with member:
        while data := member.read(CHUNK):
            out += data
            _bounded(zf.filename or "workbook", name, len(out))
    return bytes(out)
