"""nicos-scriptserver: a queueing script server built on the NICOS daemon."""

__version__ = '0.1.0'
