"""The systemd unit of tools/systemd/ (docs/DEPLOY.md), without systemd:
it passes ``systemd-analyze verify``, its command line is the supervisor's
with the service account, and the privileges it leaves root (capability
bounding set, no new privileges, umask) are enough for the account split.
"""

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from nicos_scriptserver.instance.config import REPO
from nicos_scriptserver.supervisor.serve import parse_args
from test_security_probes import hidden_from_others

pytestmark = pytest.mark.integration

UNIT = REPO / 'tools' / 'systemd' / 'nicos-scriptserver.service'
# Where DEPLOY.md installs the checkout; the unit names it.
PREFIX = '/opt/nicos-scriptserver'

# Started under the unit's limits: the split instance of the security
# probes, a login that must work, and a clean stop.
SPLIT_UNDER_LIMITS = '''
import os, sys
sys.path[:0] = sys.argv[2:]
import pytest
from test_security_probes import split_instance
from nicos_scriptserver.clients.daemonclient import ScriptServerClient
os.umask(int(sys.argv[1], 8))
try:
    with split_instance() as processes:
        client = ScriptServerClient().login(
            processes.instance.host, processes.instance.daemon_port, 'user',
            processes.passwords['user'])
        print('served', client.eval_value('1 + 1'))
        client.disconnect()
except pytest.skip.Exception as skipped:
    print('skip:', skipped)
'''


def service_settings() -> Dict[str, str]:
    """The [Service] section of the unit (a later line overrides)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return dict(parser['Service'])


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which('systemd-analyze'):
        pytest.skip('no systemd-analyze on this machine')
    # As installed, but from this checkout: verify checks the program exists.
    installed = tmp_path / UNIT.name
    installed.write_text(UNIT.read_text().replace(PREFIX, str(REPO)))
    out = subprocess.run(['systemd-analyze', 'verify', str(installed)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_it_runs_the_supervisor_as_root_with_the_service_account_and_restarts():
    settings = service_settings()
    argv = shlex.split(settings['ExecStart'])
    assert argv[:3] == [f'{PREFIX}/.venv/bin/python', '-m',
                        'nicos_scriptserver.supervisor.serve']
    args = parse_args(argv[3:])
    assert args.service_user == 'scriptserver' and not args.allow_root
    assert args.data == Path('/var/lib') / settings['StateDirectory']
    # Root (no User=): only root can switch cache and daemon to the account.
    assert 'User' not in settings
    assert settings['Restart'] == 'on-failure'
    assert settings['KillMode'] == 'mixed'
    assert settings['UMask'] == '0077'
    assert settings['NoNewPrivileges'] == 'yes'
    assert settings['ProtectSystem'] == 'strict'
    assert settings['PrivateTmp'] == 'yes'


def test_the_split_serves_with_only_the_privileges_the_unit_leaves_root():
    if os.geteuid() != 0 or not shutil.which('setpriv'):
        pytest.skip('needs root and setpriv to apply the unit\'s limits')
    settings = service_settings()
    caps = [cap.lower().removeprefix('cap_')
            for cap in settings['CapabilityBoundingSet'].split()]
    if hidden_from_others():
        # The test's own mount namespace for this machine's Python or
        # checkout under /root (see test_security_probes); a deployment
        # needs none.
        caps.append('sys_admin')
    limits = ['setpriv', '--bounding-set', ','.join(['-all', *(f'+{c}' for c in caps)])]
    if settings['NoNewPrivileges'] == 'yes':
        limits.append('--no-new-privs')
    here = Path(__file__).parent
    out = subprocess.run(
        [*limits, sys.executable, '-c', SPLIT_UNDER_LIMITS, settings['UMask'],
         str(here), str(here.parent)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    if out.stdout.startswith('skip:'):
        pytest.skip(out.stdout)
    assert out.returncode == 0 and 'served 2' in out.stdout, out.stdout + out.stderr
