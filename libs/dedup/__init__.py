"""dedup's shared library: the stage runtime, settings, logging, metrics and clients.

Services import from here; nothing here knows about a particular stage. The Python API
(`dedup.find_duplicates`, `dedup.Scanner`, `dedup.Result`, `dedup.ServerStartError`:
dedup.api) is imported on first use, so that `import dedup` stays cheap.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dedup.api import Result, Scanner, ServerStartError, find_duplicates

__all__ = ["Result", "Scanner", "ServerStartError", "find_duplicates"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from dedup import api

        return getattr(api, name)
    raise AttributeError(f"module 'dedup' has no attribute {name!r}")
