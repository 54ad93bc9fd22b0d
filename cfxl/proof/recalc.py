"""Recompute workbooks in LibreOffice (headless), every formula forced, and read the values back.

No cached value is trusted: LibreOffice runs with a private profile that recalculates every
formula on load (its default keeps the values a file caches). `Engine` keeps one LibreOffice
running for many workbooks: once started (about 1 s), a small workbook takes 0.04 s and 60,000
cells 0.25 s, where `soffice --convert-to` pays the start for every file. `recalc` is the
one-off. Checking the values against torch's is cfxl.proof.verify's job (the `_torch` sheet).
"""

from __future__ import annotations

import functools
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cfxl.errors import CfxlError

INSTALL = "apt-get install -y --no-install-recommends libreoffice-calc-nogui python3-uno"
FILTERS = {".xlsx": "Calc MS Excel 2007 XML", ".xlsm": "Calc MS Excel 2007 VBA XML",
           ".ods": "calc8"}
WORKER = Path(__file__).with_name("_uno_worker.py")
# Recalculation on load: 0 = always (1 never, 2 ask). The default trusts the file's cached values.
PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" \
oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" \
oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


@dataclass
class Recalculated:
    """A workbook's values as LibreOffice computed them, every formula recomputed."""

    path: Path
    values: dict[str, dict[str, float | str]]  # sheet -> "B3" -> number, text or error text
    formulas: dict[str, set[str]]  # sheet -> its formula cells
    errors: list[tuple[str, str, str]]  # (sheet, cell, "#DIV/0!") for each formula error
    seconds: float  # time LibreOffice took, loading to reading back


def find_soffice() -> str:
    """The soffice program, or a CfxlError that says how to install LibreOffice."""
    for name in ("soffice", "libreoffice"):
        if found := shutil.which(name):
            return found
    mac = "/Applications/LibreOffice.app/Contents/MacOS/soffice"
    if os.path.exists(mac):
        return mac
    raise CfxlError(f"LibreOffice is not installed (no soffice on PATH); install it with: "
                    f"{INSTALL}")


@functools.cache
def find_uno_python(soffice: str) -> str:
    """A Python that can `import uno`: ours, the system's (Debian's python3-uno) or LO's own."""
    bundled = Path(soffice).resolve().parent / "python"  # macOS and Windows ship their own
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", str(bundled)]):
        if os.path.exists(python) and subprocess.run(
                [python, "-c", "import uno"], capture_output=True, timeout=60).returncode == 0:
            return python
    raise CfxlError("no Python here can import LibreOffice's uno bridge; install it with: "
                    f"{INSTALL}")


def _workbook(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CfxlError(f"{path}: no such file")
    if path.suffix.lower() not in FILTERS or not zipfile.is_zipfile(path):
        raise CfxlError(f"{path} is not a workbook (expected an .xlsx, .xlsm or .ods file)")
    return path


def _output(output) -> Path | None:
    if output is None:
        return None
    output = Path(output)
    if output.suffix.lower() not in FILTERS:
        raise CfxlError(f"{output}: can only write .xlsx, .xlsm or .ods")
    if not output.parent.is_dir():
        raise CfxlError(f"{output}: no such folder {output.parent}")
    return output


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _kill(proc: subprocess.Popen) -> None:
    """Kill proc's whole process group (soffice starts soffice.bin under it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()


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
        _kill(proc)  # also after a clean exit: no stray soffice.bin may outlive the engine
    log.close()
    shutil.rmtree(profile, ignore_errors=True)


class Engine:
    """One LibreOffice kept running for many workbooks: a UNO listener with a private profile.

    soffice listens on a private pipe; a small worker (cfxl/proof/_uno_worker.py, run by a Python that
    can import uno) loads each workbook, reads every sheet back and closes it. A workbook that runs
    past `timeout` seconds stops LibreOffice; the next one starts a fresh engine. Not thread-safe:
    one engine per thread or process.
    """

    def __init__(self, *, timeout: float = 300.0, start_timeout: float = 60.0):
        self.timeout, self.start_timeout = timeout, start_timeout
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
        soffice = find_soffice()
        python = find_uno_python(soffice)
        self._profile = Path(tempfile.mkdtemp(prefix="cfxl-libreoffice-"))
        (self._profile / "user").mkdir()
        (self._profile / "user" / "registrymodifications.xcu").write_text(PROFILE)
        log = open(self._profile / "log.txt", "w")
        pipe = f"cfxl{os.getpid()}x{secrets.token_hex(6)}"
        office = subprocess.Popen(
            [soffice, "--headless", "--invisible", "--nologo", "--norestore", "--nodefault",
             "--nolockcheck", f"-env:UserInstallation={self._profile.as_uri()}",
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
            _kill(proc)
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

    def recalc(self, path, *, output=None) -> Recalculated:
        """Recompute every formula of the workbook at path; optionally save the result to output."""
        path, output = _workbook(path), _output(output)
        self.start()
        start = time.perf_counter()
        request = {"path": path.resolve().as_uri(),
                   "output": output and output.resolve().as_uri(),
                   "filter": output and FILTERS[output.suffix.lower()]}
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
        return Recalculated(
            path, values={name: values for name, values, _ in reply["sheets"]},
            formulas={name: set(formulas) for name, _, formulas in reply["sheets"]},
            errors=[tuple(e) for e in reply["errors"]], seconds=time.perf_counter() - start)


def recalc(path, *, output=None, engine: Engine | None = None) -> Recalculated:
    """Recompute every formula of a workbook in LibreOffice; a one-off engine unless given one."""
    if engine is not None:
        return engine.recalc(path, output=output)
    _workbook(path), _output(output)  # before paying for a LibreOffice start
    with Engine() as one_off:
        return one_off.recalc(path, output=output)

