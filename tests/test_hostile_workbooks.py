"""Hostile and foreign files given as workbooks, to recalc, snapshot and diff alike: a zip bomb is
refused by name in bounded memory, an encrypted workbook, an old .xls and a folder are each said
to be what they are, in one line."""

import json
import struct
import subprocess
import sys
import zipfile
import zlib

import openpyxl
import pytest
from click.testing import CliRunner

from cfxl.cli import cli
from cfxl.proof import package

GiB = 1 << 30
COMMANDS = {"recalc": 1, "snapshot": 1, "diff": 2}  # the exit status of each on bad input


def small_workbook(path):
    wb = openpyxl.Workbook()
    wb.active["A1"], wb.active["B1"] = 2, "=A1*3"
    wb.save(path)
    return path


def bomb(path, part: str, size: int, *, declared: int | None = None):
    """A small workbook plus part: size zero bytes, deflated (about size / 1000 on disk). With
    declared, its headers say it holds that many bytes (and their checksum): a bomb that lies."""
    with zipfile.ZipFile(small_workbook(path.with_name("small.xlsx"))) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != part:
                dst.writestr(item, src.read(item))
        info = zipfile.ZipInfo(part)
        info.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(info, "w") as f:
            for _ in range(size >> 20):
                f.write(bytes(1 << 20))
    if declared is not None:
        data, name = bytearray(path.read_bytes()), part.encode()
        # (signature, offset of the name's length, of the name, of crc32 then the two sizes)
        for signature, length_at, name_at, crc_at in ((b"PK\x03\x04", 26, 30, 14),
                                                      (b"PK\x01\x02", 28, 46, 16)):
            at = data.find(signature)
            while at != -1:
                length = struct.unpack_from("<H", data, at + length_at)[0]
                if data[at + name_at:at + name_at + length] == name:
                    struct.pack_into("<L", data, at + crc_at, zlib.crc32(bytes(declared)))
                    struct.pack_into("<L", data, at + crc_at + 8, declared)  # the inflated size
                at = data.find(signature, at + 4)
        path.write_bytes(bytes(data))
        with zipfile.ZipFile(path) as zf:
            assert zf.read(part) == bytes(declared)  # zipfile believes it
    return path


PEAK = """
import json, resource, sys
import cfxl.proof.snapshot, cfxl.proof.diff  # imported before the baseline
from cfxl.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    main(sys.argv[1:])
except SystemExit as e:
    status = e.code
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"status": status, "grown_kib": grown}))
"""


def peak(*args) -> tuple[int, int, str]:
    """(exit status, growth of peak memory in bytes, stderr) of `cfxl ARGS` in a fresh Python."""
    done = subprocess.run([sys.executable, "-c", PEAK, *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["status"], result["grown_kib"] * 1024, done.stderr


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """The issue's case: an .xlsx of about 1 MB whose xl/vbaProject.bin inflates to 1 GiB."""
    return bomb(tmp_path_factory.mktemp("bomb") / "bomb.xlsx", "xl/vbaProject.bin", GiB)


@pytest.mark.parametrize("command", ["snapshot", "diff"])
def test_a_zip_bomb_is_refused_by_name_in_bounded_memory(zip_bomb, tmp_path, command):
    assert zip_bomb.stat().st_size < GiB / 500
    args = [zip_bomb] if command == "snapshot" else [small_workbook(tmp_path / "a.xlsx"), zip_bomb]
    status, grown, said = peak(command, *args)
    assert status == COMMANDS[command]
    assert said == (f"cfxl: error: {zip_bomb}: part xl/vbaProject.bin inflates to more than "
                    "64 MiB, the most cfxl reads of a part read whole (a zip bomb, or a damaged "
                    "file)\n")
    assert grown < package.PART_LIMIT  # reading it whole took 2.1 GB


def test_a_bomb_whose_header_understates_its_size_is_caught_streamed(tmp_path):
    """zipfile trusts the header (and a checksum of what it admits to): reading the part whole,
    as openpyxl reads styles, inflates all of it in one call."""
    liar = bomb(tmp_path / "liar.xlsx", "xl/styles.xml", GiB, declared=1000)
    status, grown, said = peak("snapshot", liar)
    assert status == 1 and grown < package.PART_LIMIT
    assert said.startswith(f"cfxl: error: {liar}: part xl/styles.xml inflates to more than 64 MiB")


def test_parts_are_bounded_by_how_they_are_read_and_all_together(tmp_path, monkeypatch):
    """A sheet, read a piece at a time, may be bigger than a part read whole; all parts together
    are bounded too."""
    assert package.SHEET_LIMIT > package.PART_LIMIT
    big = package.PART_LIMIT + (1 << 20)
    sheet = bomb(tmp_path / "sheet.xlsx", "xl/worksheets/sheet1.xml", big)
    with zipfile.ZipFile(sheet) as zf:
        package.check_parts(zf, sheet, "sheet.xlsx")  # a sheet's size: accepted
    result = CliRunner().invoke(cli, ["snapshot", str(sheet)])
    assert result.exit_code == 1 and "cannot read it as a workbook (ParseError" in result.output
    monkeypatch.setattr(package, "TOTAL_LIMIT", big)
    result = CliRunner().invoke(cli, ["diff", str(sheet), str(sheet)])
    assert result.exit_code == 2
    assert result.output.startswith(f"cfxl: error: {sheet}: its parts inflate to more than "
                                    f"{big >> 20} MiB together (at ")


def encrypted(path):
    """A real password-protected workbook, encrypted as Excel does (ECMA-376 agile encryption)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = small_workbook(path.with_name("plain.xlsx"))
    with open(plain, "rb") as f, open(path, "wb") as out:
        OOXMLFile(f).encrypt("secret", out)
    return path


def folder(path):
    path.mkdir()
    return path


def compound_file(path):
    """An OLE compound file whose one stream is named Workbook: what an .xls holds."""
    sector = 512
    header = bytearray(sector)
    header[:8] = package.OLE_MAGIC
    struct.pack_into("<HHH", header, 0x18, 0x3E, 3, 0xFFFE)  # version, byte order
    struct.pack_into("<H", header, 0x1E, 9)  # 512-byte sectors
    entry = bytearray(128)
    name = "Workbook".encode("utf-16-le") + b"\0\0"
    entry[:len(name)] = name
    struct.pack_into("<H", entry, 64, len(name))
    path.write_bytes(bytes(header) + bytes(128) + bytes(entry) + bytes(sector - 256))
    return path


CASES = {
    "encrypted": (encrypted, "book.xlsx is encrypted (a password-protected workbook: an OLE "
                             "compound file with an EncryptionInfo stream); remove the password "
                             "in Excel or LibreOffice and save it again"),
    "folder": (folder, "book.xlsx is a folder, not a workbook"),
    "xls": (compound_file, "book.xlsx is an Excel 97-2003 workbook (.xls); save it as .xlsx in "
                           "Excel or LibreOffice"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_a_file_that_is_no_workbook_is_named_for_what_it_is(tmp_path, command, case):
    make, message = CASES[case]
    bad = make(tmp_path / "book.xlsx")
    args = [bad] if command != "diff" else [small_workbook(tmp_path / "ok.xlsx"), bad]
    result = CliRunner().invoke(cli, [command, *map(str, args)])
    assert result.exit_code == COMMANDS[command], result.output
    assert result.output == f"cfxl: error: {tmp_path}/{message}\n"
