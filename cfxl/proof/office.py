"""LibreOffice itself: finding soffice, a private profile that recomputes every formula on load,
and stopping a soffice with everything it started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cfxl.errors import CfxlError

INSTALL = "apt-get install -y --no-install-recommends libreoffice-calc-nogui python3-uno"
# Recalculation on load: 0 = always (1 never, 2 ask). The default trusts the file's cached values.
PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" \
oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" \
oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""
# soffice's options for a run without a window, a splash, crash recovery or lock checks
HEADLESS = ("--headless", "--invisible", "--nologo", "--norestore", "--nolockcheck")


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


def make_profile() -> Path:
    """A new private profile folder (one per concurrent LibreOffice: two sharing one hand work to
    each other) that recomputes every formula on load; the caller removes it."""
    profile = Path(tempfile.mkdtemp(prefix="cfxl-libreoffice-"))
    (profile / "user").mkdir()
    (profile / "user" / "registrymodifications.xcu").write_text(PROFILE)
    return profile


def profile_option(profile: Path) -> str:
    return f"-env:UserInstallation={profile.as_uri()}"


def kill(proc: subprocess.Popen, *, wait: float = 5.0) -> None:
    """Kill proc's whole process group (soffice starts soffice.bin under it), and wait up to
    `wait` seconds for the last of them to be gone (a killed process lives on until it runs)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()
    deadline = time.monotonic() + wait
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _alive_in_group(group: int) -> bool:
    """Whether a process of the group still runs (not a zombie: LibreOffice's gpg helpers wait
    as zombies until init collects them). Only Linux tells, through /proc; elsewhere, no."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == group and state not in "ZX":
            return True
    return False
