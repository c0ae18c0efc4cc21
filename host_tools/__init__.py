"""otatool: host tools for the OTA agent (CPython only)."""
