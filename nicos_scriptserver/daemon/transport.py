"""Classic NICOS transport: plain data only from clients, new event types
kept from stock clients, and events sent safely while clients come and go."""

import queue

from nicos.protocols.daemon import ProtocolError
from nicos.protocols.daemon.classic import ENQ, LENGTH, ClassicSerializer, \
    code2command
from nicos.services.daemon.proto import classic
from nicos.services.daemon.utils import SizedQueue
from nicos.utils import closeSocket

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
    masked, a smaller backlog per client, and an `emit` that survives
    clients connecting meanwhile.

    Connections are handled by `BoundedTransport`. A stock NICOS client
    drops its whole event connection on an event code it does not know. So every connection starts with the new event types
    masked; clients that understand them unmask them with the stock
    ``eventunmask`` command.
    """

    def __init__(self, daemon, address, serializer):
        classic.Server.__init__(self, daemon, address, serializer)
        self.RequestHandlerClass = BoundedTransport

    def register_handler(self, handler, ident, client_id):
        handler.event_mask.update(EVENTS)
        handler.event_queue = SizedQueue(EVENT_BACKLOG)
        return classic.Server.register_handler(self, handler, ident, client_id)

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
        targets = [target for target in targets if event not in target.event_mask]
        if not targets:
            return
        payload = self.serializer.serialize_event(event, data)
        for target in targets:
            try:
                target.event_queue.put((event, payload, blobs), True, 0.1)
            except queue.Full:
                # as stock NICOS: a client that does not read is dropped
                self.daemon.log.warning('handler %s: queue full, closing '
                                        'socket', target.ident)
                closeSocket(target.event_sock)
                closeSocket(target.sock)
