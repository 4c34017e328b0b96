"""Probes that run as another local account, as an attacker on the
instrument PC would.

A probe is a Python script run in a fresh interpreter started as root: it
imports what it needs, then calls `become` to drop to the attacker's
account for good (this machine's Python sits under a directory other
accounts cannot read, so the interpreter could not start as them).
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nicos_scriptserver.instance.config import REPO

NOBODY = 65534
_TESTS = Path(__file__).resolve().parent


def become() -> None:
    """Drop to the account named by the probe runner (in the probe)."""
    uid = int(os.environ['PROBE_UID'])
    # imported lazily by socket.create_connection: not readable afterwards
    import encodings.idna  # noqa: F401
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    assert os.getuid() == os.geteuid() == uid


def run_probe(script: str, *args: str, uid: int = NOBODY,
              timeout: float = 60) -> Any:
    """Run *script* as *uid*; what it printed last, as JSON."""
    env = dict(os.environ, PROBE_UID=str(uid),
               PYTHONPATH=os.pathsep.join([str(REPO), str(_TESTS)]))
    out = subprocess.run([sys.executable, '-c', script, *args], env=env,
                         capture_output=True, text=True, timeout=timeout,
                         cwd='/')
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
