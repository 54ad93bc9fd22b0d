"""Recompute workbooks in LibreOffice (headless), every formula forced, and read the values back.

No cached value is trusted: LibreOffice runs with a private profile that recalculates every
formula on load (its default keeps the values a file caches). `Engine` keeps one LibreOffice
running for many workbooks, driven over UNO by a Python that can import uno: once started
(about 1 s), a small workbook takes 0.04 s and 60,000 cells 0.25 s. Where no Python can import
uno (or CFXL_RECALC=convert asks for it), each workbook is a `soffice --convert-to` round trip
read back in Python instead (cfxl.proof.convert): LibreOffice starts for every file and values
come to 15 significant digits. Either way, a sheet of the file that LibreOffice dropped, or
loaded with fewer formulas than its part holds, is reported (`Recalculated.lost`). `recalc` is
the one-off. Checking the values against torch's is cfxl.proof.verify's job (the `_torch` sheet).
"""

from __future__ import annotations

import functools
import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cfxl.errors import CfxlError
from cfxl.io import atomic_write, ensure_writable
from cfxl.proof import package, parts
from cfxl.proof.convert import recalc_by_conversion
from cfxl.proof.office import HEADLESS, INSTALL, find_soffice, kill, make_profile, profile_option

FILTERS = {".xlsx": "Calc MS Excel 2007 XML", ".xlsm": "Calc MS Excel 2007 VBA XML",
           ".ods": "calc8"}
WORKER = Path(__file__).with_name("_uno_worker.py")
VIA = ("uno", "convert")  # the UNO engine, or soffice --convert-to round trips
VIA_ENV = "CFXL_RECALC"  # uno or convert: one way, whatever is installed


@dataclass
class Recalculated:
    """A workbook's values as LibreOffice computed them, every formula recomputed."""

    path: Path
    values: dict[str, dict[str, float | str]]  # sheet -> "B3" -> number, text or error text
    formulas: dict[str, set[str]]  # sheet -> its formula cells
    errors: list[tuple[str, str, str]]  # (sheet, cell, "#DIV/0!") for each formula error
    seconds: float  # time LibreOffice took, loading to reading back
    lost: dict[str, str] = field(default_factory=dict)  # sheet -> what LibreOffice did not read
    via: str = "uno"  # how: the UNO engine or a soffice --convert-to round trip (VIA)


@functools.cache
def uno_python(soffice: str) -> str | None:
    """A Python that can `import uno`: ours, the system's (Debian's python3-uno) or LO's own."""
    bundled = Path(soffice).resolve().parent / "python"  # macOS and Windows ship their own
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", str(bundled)]):
        if os.path.exists(python) and subprocess.run(
                [python, "-c", "import uno"], capture_output=True, timeout=60).returncode == 0:
            return python
    return None


def find_uno_python(soffice: str) -> str:
    """uno_python, or a CfxlError that says how to install the uno bridge."""
    if python := uno_python(soffice):
        return python
    raise CfxlError("no Python here can import LibreOffice's uno bridge; install it with: "
                    f"{INSTALL}")


def _workbook(path) -> Path:
    """path, if LibreOffice may read it as a workbook; else a CfxlError that says what it is."""
    path = Path(path)
    head = package.file_head(path)
    if (path.suffix.lower() not in FILTERS or not head.startswith(b"PK")
            or not zipfile.is_zipfile(path)):
        raise CfxlError(f"{path} is not a workbook (expected an .xlsx, .xlsm or .ods file)")
    return path


def _output(output, force: bool) -> Path | None:
    if output is None:
        return None
    output = Path(output)
    if output.suffix.lower() not in FILTERS:
        raise CfxlError(f"{output}: can only write .xlsx, .xlsm or .ods")
    return ensure_writable(output, force=force)


def _lost(expected: dict[str, tuple[str | None, int]], loaded: dict[str, set]) -> dict[str, str]:
    """{sheet: what of it LibreOffice did not read} against what the file holds (expected, from
    cfxl.proof.parts.sheet_formulas): a sheet it dropped, or formulas it did not load."""
    lost = {}
    for name, (part, n) in expected.items():
        if part is None:
            lost[name] = "the file lacks its part: LibreOffice shows it empty"
        elif name not in loaded:
            lost[name] = f"in the file ({part}), but LibreOffice did not load it"
        elif len(loaded[name]) < n:
            lost[name] = (f"LibreOffice loaded {len(loaded[name]):,} of the {n:,} formulas its "
                          f"part {part} holds (a damaged part)")
    return lost


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _stop(office, worker, profile: Path, log, gentle: bool = True) -> None:
    if gentle and worker.poll() is None:
        try:
            worker.stdin.write('{"quit": true}\n')
            worker.stdin.flush()
            worker.wait(timeout=10)
            office.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for proc in (worker, office):
        kill(proc)  # also after a clean exit: no stray soffice.bin may outlive the engine
    if log is not None:
        log.close()
    shutil.rmtree(profile, ignore_errors=True)


class Engine:
    """One LibreOffice for many workbooks: a UNO listener with a private profile, kept running.

    soffice listens on a private pipe; a small worker (cfxl/proof/_uno_worker.py, run by a Python
    that can import uno) loads each workbook, reads every sheet back and closes it. A workbook that
    runs past `timeout` seconds stops LibreOffice; the next one starts a fresh engine. via:
    "uno", or "convert" for soffice --convert-to round trips with one private profile (no UNO);
    None: CFXL_RECALC, else uno where a Python can import it. Not thread-safe: one engine per
    thread or process.
    """

    def __init__(self, *, timeout: float = 300.0, start_timeout: float = 60.0,
                 via: str | None = None):
        via = via or os.environ.get(VIA_ENV) or None
        if via not in (None, *VIA):
            raise CfxlError(f"{VIA_ENV} may be {' or '.join(VIA)}, not {via!r}")
        self.timeout, self.start_timeout, self.via = timeout, start_timeout, via
        self._finalizer = None

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._finalizer is not None and self._finalizer.alive

    def start(self) -> Engine:
        if self.running:
            return self
        self._soffice = soffice = find_soffice()
        if self.via is None:
            self.via = "uno" if uno_python(soffice) else "convert"
        python = find_uno_python(soffice) if self.via == "uno" else None
        self._profile = make_profile()
        if python is None:  # each workbook starts its own soffice, with this profile
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._profile, True)
            return self
        log = open(self._profile / "log.txt", "w")
        pipe = f"cfxl{os.getpid()}x{secrets.token_hex(6)}"
        office = subprocess.Popen(
            [soffice, *HEADLESS, "--nodefault", profile_option(self._profile),
             f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self._worker = subprocess.Popen(
            [python, str(WORKER), pipe, str(self.start_timeout)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        self._procs = (office, self._worker)
        self._finalizer = weakref.finalize(self, _stop, office, self._worker, self._profile, log)
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(self._worker.stdout, self._lines), daemon=True).start()
        reply = self._receive(self.start_timeout + 10, "while starting")
        if "error" in reply:
            self._fail(f"LibreOffice did not start: {reply['error']}")
        return self

    def close(self) -> None:
        """Stop LibreOffice and remove its profile (also done at exit if forgotten)."""
        if self._finalizer is not None:
            self._finalizer()

    def _abort(self) -> None:
        for proc in self._procs:
            kill(proc)
        self.close()

    def _fail(self, message: str):
        log = (self._profile / "log.txt").read_text(errors="replace").strip()[-1000:]
        self._abort()
        raise CfxlError(message + (f"; its log ends:\n{log}" if log else ""))

    def _receive(self, timeout: float, what: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._fail(f"LibreOffice took more than {timeout:g} s {what}; stopped it")
        if line is None:
            self._fail(f"LibreOffice stopped unexpectedly {what}")
        return json.loads(line)

    def recalc(self, path, *, output=None, force: bool = False) -> Recalculated:
        """Recompute every formula of the workbook at path; optionally save the result to output
        (written whole or not at all; an existing file only with force)."""
        path, output = _workbook(path), _output(output, force)
        expected = parts.sheet_formulas(path)  # what the file holds, to compare
        self.start()
        start = time.perf_counter()
        if output is None:
            reply = self._recalc(path, None, "")
        else:
            replies = []
            atomic_write(output, lambda tmp: replies.append(
                self._recalc(path, tmp, output.suffix.lower())), force=force)
            reply = replies[0]
        formulas = {name: set(cells) for name, _, cells in reply["sheets"]}
        return Recalculated(
            path, values={name: values for name, values, _ in reply["sheets"]},
            formulas=formulas, errors=[tuple(e) for e in reply["errors"]],
            seconds=time.perf_counter() - start, lost=_lost(expected, formulas), via=self.via)

    def _recalc(self, path: Path, output: Path | None, suffix: str) -> dict:
        """The worker's answer for one workbook (see _uno_worker.py), LibreOffice saving the
        recomputed workbook to output in suffix's format when output is given."""
        if self.via == "convert":
            return recalc_by_conversion(self._soffice, self._profile, path, output, suffix,
                                        timeout=self.timeout)
        request = {"path": path.resolve().as_uri(),
                   "output": output and output.resolve().as_uri(),
                   "filter": output and FILTERS[suffix]}
        try:
            self._worker.stdin.write(json.dumps(request) + "\n")
            self._worker.stdin.flush()
        except OSError:
            self._fail(f"LibreOffice stopped unexpectedly before {path}")
        try:
            reply = self._receive(self.timeout, f"on {path}")
        except KeyboardInterrupt:  # its answer would arrive for the next workbook
            self._abort()
            raise
        if "error" in reply:
            if reply.get("lost"):
                self.close()
            raise CfxlError(f"{path}: {reply['error']}")
        return reply


def recalc(path, *, output=None, force: bool = False, engine: Engine | None = None,
           via: str | None = None) -> Recalculated:
    """Recompute every formula of a workbook in LibreOffice; a one-off engine unless given one
    (via: see Engine)."""
    if engine is not None:
        return engine.recalc(path, output=output, force=force)
    _workbook(path), _output(output, force)  # before paying for a LibreOffice start
    with Engine(via=via) as one_off:
        return one_off.recalc(path, output=output, force=force)
