"""Classic NICOS transport that keeps new event types from stock clients."""

from nicos.services.daemon.proto import classic

from nicos_scriptserver.protocol import EVENTS


class ClassicServer(classic.Server):
    """The stock classic (TCP) server, with the script server's events masked.

    A stock NICOS client drops its whole event connection on an event code
    it does not know. So every connection starts with the new event types
    masked; clients that understand them unmask them with the stock
    ``eventunmask`` command.
    """

    def register_handler(self, handler, ident, client_id):
        handler.event_mask.update(EVENTS)
        return classic.Server.register_handler(self, handler, ident, client_id)

    def emit(self, event, data, blobs, handler=None):
        # NICOS serializes an event before looking at any client's mask;
        # skip that when nobody wants it (e.g. a 10,000-id 'rearranged').
        targets = (handler,) if handler else list(self.handlers.values())
        if all(event in target.event_mask for target in targets):
            return
        classic.Server.emit(self, event, data, blobs, handler)
