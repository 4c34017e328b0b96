"""Dry runs of scripts, in NICOS's own simulation process.

`SessionDryRunner` makes them for the application (`app.dryruns`), with
the session's setups, device values and command files.

NICOS's `SimulationSupervisor` cannot be cancelled, always waits up to
ten minutes, and reports through the running request. `DryRunProcess`
runs the same stock ``nicos-simulate`` program (through `dryrunchild`, in
a process forked by the dry-run fork server, see `forkserver`) and speaks
its protocol (pickled messages on a ZeroMQ DEALER socket), but in its own
process group at low CPU priority, with a wall-time limit, and it can be
cancelled. Instead of an empty message (which makes the child read device
values from the cache, which no poller keeps current here) it sends the
daemon's current device values, so a dry run starts where the instrument
is.

The channel is private: a Unix socket in a directory only the daemon's
account may enter (NICOS binds a TCP port on loopback, which any local
process can reach). What arrives on it is read as plain data: the child
runs the user's script, so it is not trusted either.
"""

import os
import pickle
import shutil
import subprocess
import threading
import time
import uuid
from os import path
from typing import Any, Dict, List, Optional

import zmq
from nicos import session
from nicos.core import Readable
from nicos.core.device import DeviceAlias
from nicos.core.sessions.simulation import (SIM_BLOCK_RES, SIM_END_RES,
                                            SIM_MESSAGE, SIM_RESULT)
from nicos.utils.messaging import nicos_zmq_ctx

from nicos_scriptserver.wire import plainpickle
from nicos_scriptserver.runner.childenv import child_env
from nicos_scriptserver.daemon.bridgedryrun import OPTION, OVER_LIMIT
from nicos_scriptserver.daemon.catalogdev import find_command_catalog
from nicos_scriptserver.daemon.forkserver import ForkedChild, ForkServer
from nicos_scriptserver.estimates import DryRunFacts
from nicos_scriptserver.instance.config import ENV_COMMANDS
from nicos_scriptserver.runner.scratch import scratch_dir
from nicos_scriptserver.queue import Caller

#: Where SCHED_IDLE is missing: added to the daemon's nice value.
NICENESS = 10
#: How long a killed dry run's end may take to be reported (see `_reap`).
REAP_SECONDS = 10.0
# How often the loop looks at the clock and the cancel flag.
_POLL_MS = 50


class DryRunProcess:
    """Dry-runs *script* as *user* (``'name,level'``) with *setups*,
    starting from device *values*; *env* adds to the child's environment.
    *bridged* (``'black-box,30'``, ``'isolated,30'``: kind and wall-time
    limit) runs a bridged job's script through the bridge (`bridgedryrun`).

    `run` blocks until the result, the *time_limit* (wall seconds) or
    `cancel`; it never raises for what happens in the child.
    """

    def __init__(self, script: str, setups: List[str], user: str,
                 values: Dict[str, Any], time_limit: float,
                 env: Optional[Dict[str, str]] = None,
                 bridged: Optional[str] = None):
        self.script = script
        self.bridged = bridged
        self.env = env
        self.setups = setups
        self.user = user
        self.values = values
        self.time_limit = time_limit
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the dry run; `run` returns soon after."""
        self._cancelled.set()

    def run(self) -> DryRunFacts:
        facts = DryRunFacts()
        started = time.monotonic()
        socket = nicos_zmq_ctx.socket(zmq.DEALER)
        # Private (0700): nobody else can connect to the socket or open
        # the error output.
        channel_dir = scratch_dir('dry-run-')
        stderr = open(f'{channel_dir}/stderr', 'w+b')
        proc = None
        try:
            address = f'ipc://{channel_dir}/channel'
            socket.bind(address)
            proc = self._spawn(address, stderr.name)
            if self._connected(socket, proc, facts, started):
                socket.send(pickle.dumps(self.values, 2))
                self._receive(socket, proc, facts, started)
        finally:
            socket.close(linger=0)
            if proc is not None:
                facts.exit_code = _reap(proc)
            shutil.rmtree(channel_dir, ignore_errors=True)
            if facts.end is None and not facts.timed_out:
                facts.records.extend(_stderr_records(stderr))
            stderr.close()
            facts.wall_seconds = time.monotonic() - started
        return facts

    def _spawn(self, address: str, stderr: str) -> ForkedChild:
        """The dry run's process, its error output appended to the file
        *stderr*."""
        return FORK_SERVER.fork(
            [*([OPTION + self.bridged] if self.bridged else []),
             address, uuid.uuid4().hex, ','.join(self.setups), self.user],
            self.script, child_env(self.env), stderr)

    def _connected(self, socket, proc, facts: DryRunFacts,
                   started: float) -> bool:
        """Wait until the child has connected (a send before would block
        for good if it died first: the worker, and with it every later dry
        run, would hang); False if it ended, or the run was cancelled or
        over its limit, before."""
        while not socket.poll(_POLL_MS, zmq.POLLOUT):
            if self.cancelled or proc.poll() is not None:
                return False
            if time.monotonic() - started > self.time_limit:
                facts.timed_out = True
                return False
        return True

    def _receive(self, socket, proc, facts: DryRunFacts, started: float):
        block = 0
        while True:
            if self.cancelled:
                return
            if time.monotonic() - started > self.time_limit:
                facts.timed_out = True
                return
            if not socket.poll(_POLL_MS):
                if proc.poll() is not None and not socket.poll(0):
                    return
                continue
            try:
                kind, message = plainpickle.loads(socket.recv())
            except (plainpickle.UnpicklingError, ValueError, TypeError,
                    EOFError) as err:
                facts.records.append((40, 'the dry-run process sent a '
                                      'message that is not plain data', str(err)))
                return
            if kind == SIM_MESSAGE:
                # [logger, created, levelno, text, exc_text, reqid]
                facts.records.append((message[2], message[3], message[4]))
            elif kind == SIM_BLOCK_RES:
                facts.block_seconds[message[0]] = message[1]
                block = message[0] + 1
            elif kind == SIM_RESULT and isinstance(message, dict) \
                    and OVER_LIMIT in message:
                facts.over_limit = float(message[OVER_LIMIT])
            elif kind == SIM_RESULT and isinstance(message, dict) \
                    and 'estimate_function' in message:
                facts.function_estimates.setdefault(block, []).append(
                    {'command': message['estimate_function'],
                     'seconds': float(message['seconds'])})
            elif kind == SIM_END_RES:
                facts.end = (message[0], message[1])
                return


class SessionDryRunner:
    """Dry runs of scripts with the session's setups, device values and
    command files, cut off after *time_limit* wall seconds, those of
    bridged jobs after *bridged_limit* (the application's `DryRunner`)."""

    def __init__(self, time_limit: float, bridged_limit: float):
        self.time_limit = time_limit
        self.bridged_limit = bridged_limit

    def __call__(self, script: str, user: Caller,
                 bridged: Optional[str] = None) -> DryRunProcess:
        env = {}
        catalog = find_command_catalog()
        if catalog is not None:
            env[ENV_COMMANDS] = os.pathsep.join(catalog.dry_run_folders())
        return DryRunProcess(script, list(session.explicit_setups),
                             f'{user.name},{user.level}', device_values(),
                             self.time_limit, env,
                             f'{bridged},{self.bridged_limit:g}'
                             if bridged else None)


def device_values() -> Dict[str, Any]:
    """Current values of all devices, as cache keys the dry run applies.

    Read from the devices, not the cache: no poller keeps the cache
    current here, and a dry run must start where the instrument is.
    """
    values = {}
    for name, device in list(session.devices.items()):
        if isinstance(device, Readable) and not isinstance(device, DeviceAlias):
            try:
                values[f'{name.lower()}/value'] = device.read(0)
            except Exception:
                pass   # the dry run then uses the device's own default
    return values


#: See the file: NICOS's sandbox hook, used for its private channel only.
PRIVATE_CHANNEL_HELPER = path.join(path.dirname(__file__),
                                   'private-dryrun-channel')


def use_private_channel_for_stock_dry_runs() -> None:
    """Give NICOS's own dry runs (the stock ``simulate`` command, ``sim()``
    in a script) a private Unix socket instead of a loopback TCP port.

    NICOS does that when a sandbox helper is set; ours only runs the
    command. As in a sandboxed run, the child then gets the daemon's
    device values from the daemon instead of reading the cache.
    """
    session._sandbox_helper = PRIVATE_CHANNEL_HELPER


def _deprioritize(pid: int) -> None:
    """Let the dry runs (the fork server and its children) have only CPU
    time that nothing else wants.

    Under SCHED_IDLE the real run (and every other process) preempts a dry
    run at once; a nice value alone still lets it delay the daemon's
    wake-ups between jobs.
    """
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid,
                       os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
    except OSError:
        pass   # it already exited: the next dry run starts it again


#: The daemon's one fork server, started with the first dry run.
FORK_SERVER = ForkServer(_deprioritize)


def _reap(proc: ForkedChild) -> Optional[int]:
    """End the child's whole process group (it may have started more).

    After its result the child only shuts its session down, which nobody
    needs to wait for. A fork server that does not report the end in
    `REAP_SECONDS` is ended with all its dry runs: a dry-run worker that
    waited for good would stop every later dry run (and under the policy
    'hold' every job).
    """
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.wait(REAP_SECONDS)
    except subprocess.TimeoutExpired:
        FORK_SERVER.stop()
        return proc.wait()


def _stderr_records(stderr) -> list:
    stderr.seek(0)
    text = stderr.read()[-4000:].decode('utf-8', 'replace').strip()
    return [(40, 'dry-run process error output', text)] if text else []
