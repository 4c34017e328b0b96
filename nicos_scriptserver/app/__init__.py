"""The script server's application layer: pure Python, between the NICOS
adapters (`nicos_scriptserver.daemon`, the console commands) and the pure
cores (`queue`, `catalog`, `estimates`).

- `spec`: what clients send (job specs, edits, job ids), checked once
  into the typed values the queue takes
- `revalidation`: waiting jobs checked again when command files change
- `callsteps`: what a generated job reports as it reaches each call
- `listing`: the queue listing as ``ss_queue`` and ``ss_changes`` send it
"""
