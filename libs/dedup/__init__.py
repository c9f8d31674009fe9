"""dedup's shared library: the stage runtime, settings, logging, metrics and clients.

The services import from here, and the composition (`apps`: the CLI, `dedup scan`, the
demo, the Python API) from both; nothing here imports either, and nothing here knows
about a particular stage (`make lint` checks the layers).
"""
