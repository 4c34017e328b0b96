"""Everything loaded into the NICOS daemon: devices, daemon and user commands."""
