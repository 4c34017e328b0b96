"""NICOS-side adapters of the script server (devices, daemon commands)."""
