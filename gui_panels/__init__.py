"""NICOS GUI panels for the script server (commands, queue, current job).

The script server's event types are registered here, on import, because
NICOS's GUI client creates one Qt signal per known event type when its
module is first imported; a guiconfig that names these panels imports this
package before that happens.
"""

from nicos_scriptserver.wire import protocol

protocol.register()
