"""The composition: the programs built from the services, above them.

The `dedup` command (apps.cli), `dedup scan`'s in-process engine (apps.scan), the demo on
the local stack (apps.demo), the stages' wiring (apps.pipeline) and the Python API
(`apps.find_duplicates`, `apps.Scanner`, `apps.Result`, `apps.ServerStartError`: apps.api).
The layers run one way, apps -> services -> dedup (`make lint` checks them).

The API is imported on first use, so that `import apps` stays cheap.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.api import Check, Result, Scanner, ServerStartError, find_duplicates

__all__ = ["Check", "Result", "Scanner", "ServerStartError", "find_duplicates"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from apps import api

        return getattr(api, name)
    raise AttributeError(f"module 'apps' has no attribute {name!r}")
