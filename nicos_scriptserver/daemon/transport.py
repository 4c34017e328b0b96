"""Classic NICOS transport: plain data only from clients, new event types
kept from stock clients, connections set up off the accepting thread, and
events sent from one thread (`fanout`) safely while clients come and go."""

import socket
import threading
import time

from nicos.protocols.daemon import ProtocolError
from nicos.protocols.daemon.classic import ENQ, LENGTH, STX, \
    ClassicSerializer, code2command, event2code
from nicos.services.daemon.proto import classic
from nicos.utils import closeSocket, createThread

from nicos_scriptserver.daemon.fanout import EventFanout
from nicos_scriptserver.wire import plainpickle
from nicos_scriptserver.wire.protocol import EVENTS

#: Bytes of events kept for one client that does not read them before it
#: is dropped (NICOS keeps 100 MiB per client: a few frozen GUIs took
#: hundreds of MiB of the daemon's memory).
EVENT_BACKLOG = 16 * 1024 * 1024
#: Largest command frame before login (an ``authenticate``) and after it
#: (a script is at most 512 KiB; ``transfer`` sends whole files).
MAX_FRAME_BEFORE_LOGIN = 64 * 1024
MAX_FRAME = 16 * 1024 * 1024
#: How long a new connection may take to send its client id, and an event
#: connection to find its control connection.
SET_UP_SECONDS = 10.0
_CLIENT_ID_SIZE = 16   # NICOS clients send a uuid's bytes
_GONE = object()
_HEADER = 3 + LENGTH.size   # ENQ, command code, length


class PlainDataSerializer(ClassicSerializer):
    """NICOS's classic (pickle) serializer that reads only plain data.

    NICOS unpickles every command frame before it looks at the login, so
    with the stock serializer a pickle sent to the daemon's port runs code
    in the daemon without any password. Stock clients send only plain data
    (strings, numbers, lists, dicts), so they do not notice; a frame that
    names anything else gets NICOS's "invalid command or garbled data"
    reply and the connection is closed. What the daemon sends is unchanged.
    """

    def deserialize_cmd(self, data, cmdname=None):
        return cmdname, plainpickle.loads(data)


class BoundedTransport(classic.ServerTransport):
    """NICOS's classic connection handler, refusing oversized frames.

    NICOS reads a command frame of any announced length (up to 4 GiB)
    into memory, before login too: one local process could exhaust the
    daemon's memory without a password. Here a frame over the limit gets
    an error reply and closes the connection before any of it is read.
    """

    def __init__(self, request, client_address, client_id, server):
        # set before the stock constructor, which handles the connection
        self.closed = False
        classic.ServerTransport.__init__(self, request, client_address,
                                         client_id, server)

    def close(self):
        # Under the pairing lock, so that an event connection arriving now
        # is either closed here or refused by `ClassicServer`.
        with self.server.pairing:
            self.closed = True
            self.server.pairing.notify_all()
        # Out of the fan-out before the event socket closes (see
        # `EventFanout.remove`).
        self.server.fanout.remove(self)
        classic.ServerTransport.close(self)

    def recv_command(self):
        header = self._receive(_HEADER)
        if header[:1] != ENQ:
            raise ProtocolError('recv_command: invalid command header')
        length, = LENGTH.unpack_from(header, 3)
        before_login = getattr(self, 'user', None) is None
        limit = MAX_FRAME_BEFORE_LOGIN if before_login else MAX_FRAME
        if length > limit:
            when = ' before login' if before_login else ''
            self.send_error_reply(f'request of {length} bytes is larger '
                                  f'than the limit of {limit} bytes{when}')
            raise ProtocolError(f'recv_command: frame of {length} bytes')
        payload = self._receive(length)
        try:
            return self.serializer.deserialize_cmd(payload,
                                                   code2command[header[1:3]])
        except Exception as err:
            self.send_error_reply('invalid command or garbled data')
            raise ProtocolError('recv_command: invalid command or garbled '
                                'data') from err

    def _receive(self, size: int) -> bytes:
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            try:
                count = self.sock.recv_into(view[got:])
            except OSError as err:
                raise ProtocolError(f'recv_command: connection broken '
                                    f'({err})') from err
            if not count:
                raise ProtocolError('recv_command: connection broken')
            got += count
        return bytes(data)


class ClassicServer(classic.Server):
    """The stock classic (TCP) server, with the script server's events
    masked, a smaller backlog per client, connections set up in their own
    threads, an `emit` that survives clients connecting meanwhile, and
    every event sent by `EventFanout` instead of a sender thread per
    client.

    Connections are handled by `BoundedTransport`. A stock NICOS client
    drops its whole event connection on an event code it does not know,
    so every connection starts with the new event types masked; clients
    that understand them unmask them with the stock ``eventunmask``
    command.
    """

    def __init__(self, daemon, address, serializer):
        classic.Server.__init__(self, daemon, address, serializer)
        self.RequestHandlerClass = BoundedTransport
        #: Guards `pending_clients` (control connections waiting for their
        #: event connection) and the handlers' ``event_sock``.
        self.pairing = threading.Condition()
        self.fanout = EventFanout(self._drop, EVENT_BACKLOG)

    def register_handler(self, handler, ident, client_id):
        handler.event_mask.update(EVENTS)
        self.fanout.add(handler)
        with self.pairing:
            classic.Server.register_handler(self, handler, ident, client_id)
            self.pairing.notify_all()

    def _handle_request_noblock(self):
        # Stock NICOS reads a new connection's client id here, in the only
        # accepting thread and without a time limit: one local process
        # that connected and sent nothing kept every client out. An event
        # connection whose control connection had just closed raised
        # there and ended that thread for good.
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        createThread('connection set-up', self._set_up,
                     args=(request, client_address))

    def _set_up(self, request: socket.socket, client_address) -> None:
        """Tell a new control connection from a client's event connection
        (the second one with the same client id) and serve it."""
        try:
            client_id = _read_client_id(request)
        except OSError as err:
            self.daemon.log.info('connection from %s closed before its '
                                 'client id: %s', client_address[0], err)
            closeSocket(request)
            return
        key = (client_address[0], client_id)
        paired = None   # the handler an event connection goes with
        with self.pairing:
            control = key not in self.pending_clients
            if control:
                self.pending_clients[key] = None
            else:
                # as NICOS: the event connection waits for its handler
                self.pairing.wait_for(
                    lambda: self.pending_clients.get(key, _GONE) is not None,
                    SET_UP_SECONDS)
                handler = self.pending_clients.pop(key, None)
                # NICOS pairs by the client id alone: events went to a
                # connection that had sent no password.
                if handler is not None and not handler.closed and \
                        getattr(handler, 'user', None) is not None:
                    handler.event_sock = request
                    paired = handler
        if control:
            self.process_request_thread(request, client_address, client_id)
        elif paired is None or not self.fanout.attach(paired, request):
            self.daemon.log.info('event connection from %s refused: no '
                                 'logged-in client with its id',
                                 client_address[0])
            closeSocket(request)
        else:
            self.daemon.log.debug('event connection for handler #%d',
                                  paired.ident)

    def emit(self, event, data, blobs, handler=None):
        # The stock emit iterates the handler table while other threads
        # add and remove connections: "dictionary changed size during
        # iteration" then reached the emitting thread, the script thread
        # for progress and log messages, and failed the running job. The
        # table is changed under this lock, so it is read under it too.
        with self.handler_ident_lock:
            targets = (handler,) if handler else list(self.handlers.values())
        # NICOS serializes an event before looking at any client's mask;
        # skip that when nobody wants it (e.g. a 10,000-id 'rearranged').
        targets = [target for target in targets
                   if event not in target.event_mask]
        if not targets:
            return
        payload = self.serializer.serialize_event(event, data)
        # The frame of NICOS's send_event, built once for every client.
        parts = [STX, event2code[event], b'%c' % len(blobs),
                 LENGTH.pack(len(payload)), payload]
        for blob in blobs:
            parts += [LENGTH.pack(len(blob)), blob]
        # A line's status replaces the last of the same state that a
        # client has not been sent yet (a change of state never does).
        key = (event, data[0]) if event == 'status' and data else None
        self.fanout.post(targets, b''.join(parts), key)

    def _drop(self, handler, reason: str) -> None:
        # as stock NICOS: a client that does not read is dropped
        self.daemon.log.warning('handler %s: %s, closing its connection',
                                handler.ident, reason)
        closeSocket(handler.event_sock)
        closeSocket(handler.sock)


def _read_client_id(request: socket.socket) -> bytes:
    deadline = time.monotonic() + SET_UP_SECONDS
    client_id = b''
    while len(client_id) < _CLIENT_ID_SIZE:
        request.settimeout(max(deadline - time.monotonic(), 0.001))
        data = request.recv(_CLIENT_ID_SIZE - len(client_id))
        if not data:
            raise OSError('connection closed')
        client_id += data
    request.settimeout(None)
    return client_id
