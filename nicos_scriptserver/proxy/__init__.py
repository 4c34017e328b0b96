"""The localhost proxy for IBEX-like clients (issue #6, in progress).

- `protocol`: frames, plain-JSON checks, the per-role command allowlist,
  the banner translation and reply encoding (sans-I/O)
- `login`: tier-1 login with a token made at each start and kept hashed,
  per-peer failure limits, the per-connection RSA handshake

The ZeroMQ process around them and the tier-2 daemon connection are not
built yet.
"""
