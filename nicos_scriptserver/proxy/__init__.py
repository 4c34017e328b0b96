"""The localhost proxy for IBEX-like clients (docs/PROXY.md).

- `protocol`: frames, plain-JSON checks, the per-role command allowlist,
  the banner translation and reply encoding (sans-I/O)
- `login`: tier-1 login with a token made at each start and kept hashed,
  failure limits per local account and per connection, the RSA handshake
- `sessions`: one session per client connection, with expiry (sans-I/O)
- `zmtp`: the ZeroMQ wire protocol (ZMTP 3.1), server side, as ROUTER and
  as PUB (sans-I/O)
- `budget`: the bytes held for clients and their bounds (sans-I/O)
- `mirror`: the daemon's state from its events, for ``getstatus`` and
  ``getmessages`` (sans-I/O)
- `pubsub`: the event socket's messages and subscriptions (sans-I/O)
- `classic`: NICOS's classic protocol towards the daemon, its codes
  without NICOS, replies and events split from the stream (sans-I/O)
- `connection`: the client connections as a state machine: handshake,
  login, role checks, answers from the mirror, forwarding, the daemon's
  replies translated; fed what happened, it returns actions (sans-I/O)
- `loop`, `listener`, `transport`: the event loop, loopback-only
  listening sockets and the client connections on it
- `publisher`: the event socket (port + 1) and who may have events
- `daemonlink`, `links`: tier-2 classic-protocol links to the daemon, a
  few per role; `mirrorfeed`: the mirror's own link
- `config`, `server`: what the proxy is told; the serving loop, which
  feeds the connections' machine and carries out its actions
- `client`: a client that speaks what the IBEX GUI speaks
- ``python -m nicos_scriptserver.proxy``: the process
"""
