"""``python -m nicos_scriptserver.cli``."""

import sys

from nicos_scriptserver.cli import main

sys.exit(main())
