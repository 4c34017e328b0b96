"""Channel Access PVs that publish the proxy's login token and user name.

`acf` renders the access-security file (who may read the token), `server`
hosts the two PVs inside the proxy process, `external` writes them to a PV
server that already exists (e.g. IBEX's block server), and ``python -m
nicos_scriptserver.pvs`` runs a standalone server.
"""
