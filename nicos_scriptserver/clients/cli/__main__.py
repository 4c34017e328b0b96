"""``python -m nicos_scriptserver.clients.cli``."""

import sys

from nicos_scriptserver.clients.cli import main

sys.exit(main())
