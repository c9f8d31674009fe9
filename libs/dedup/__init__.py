"""dedup's shared library: the stage runtime, settings, logging, metrics and clients.

Services import from here; nothing here knows about a particular stage.
"""
