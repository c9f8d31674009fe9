"""The private Triton starts in the background: its URL at once, a wait for its model,
the whole process group killed at the end (a stand-in process, no Triton)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apps.scan import servers
from apps.scan.servers import Server, ServerError, private_triton


def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> list[Server]:
    started: list[Server] = []

    def launch(run_dir: Path, model: str) -> tuple[Server, dict[str, int]]:
        started.append(Server("triton", command, run_dir / "triton"))
        return started[-1], {"TRITON_HTTP": 1, "TRITON_GRPC": 2, "TRITON_METRICS": 3}

    monkeypatch.setattr(servers, "launch_triton", launch)
    return started


async def test_the_url_comes_at_once_and_ready_waits_for_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = stand_in(tmp_path, monkeypatch, ["sleep", "30"])
    model_loaded = asyncio.Event()
    monkeypatch.setattr(servers, "_http_ok", lambda url: model_loaded.is_set())

    async with private_triton(tmp_path, "m") as (url, ready):
        assert url == "127.0.0.1:2"
        waiting = asyncio.ensure_future(ready())
        await asyncio.sleep(0.5)
        assert not waiting.done()  # the scan hashes meanwhile
        model_loaded.set()
        await asyncio.wait_for(waiting, 5)
        await ready()  # again: at once
    assert started[0].proc.poll() is not None  # killed with its group


async def test_a_server_that_dies_while_starting_fails_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in(tmp_path, monkeypatch, ["sh", "-c", "echo no model; exit 3"])
    monkeypatch.setattr(servers, "_http_ok", lambda url: False)
    async with private_triton(tmp_path, "m") as (_, ready):
        with pytest.raises(ServerError, match="no model"):
            await asyncio.wait_for(ready(), 10)


async def test_a_scan_that_never_waits_still_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = stand_in(tmp_path, monkeypatch, ["sleep", "30"])
    monkeypatch.setattr(servers, "_http_ok", lambda url: False)
    async with private_triton(tmp_path, "m"):
        pass
    assert started[0].proc.poll() is not None
