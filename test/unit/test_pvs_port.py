"""The PV server's port check: a listener makes the port busy, the
TIME_WAIT leftovers of a killed server do not (it restarts on its port)."""

import socket

import pytest

from nicos_scriptserver.pvs.server import _check_port_free


def test_a_listener_makes_the_port_busy():
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(('127.0.0.1', 0))
        listener.listen()
        with pytest.raises(OSError, match='in use'):
            _check_port_free(listener.getsockname()[1])


def test_time_wait_of_a_closed_server_leaves_the_port_free():
    # The server side closes first, as the kernel does for a killed
    # server: its end of the connection stays in TIME_WAIT on the port.
    listener = socket.socket()
    # As libcas's listener; the connections it accepts inherit it, and
    # Linux lets a bind pass a TIME_WAIT only if both sides set it.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    listener.listen()
    client = socket.create_connection(('127.0.0.1', port))
    accepted, _ = listener.accept()
    accepted.close()
    listener.close()
    client.recv(1)   # the FIN arrived
    client.close()
    _check_port_free(port)
