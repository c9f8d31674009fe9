"""A small driver for Debian's headless Chromium over the DevTools protocol (CDP).

Chromium is started with `--remote-debugging-port=0` (it picks a free port and prints
"DevTools listening on ws://..." on stderr); we connect to that browser target with
aiohttp's websocket client, open one page target and send it commands. Just enough for
the report's browser test: navigate, evaluate, type, click, screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

BROWSERS = ("chromium", "chromium-browser")
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def browser_path() -> str | None:
    """Debian's chromium (stack/setup.sh installs it), or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


class CDPError(Exception):
    """A DevTools command failed, or the page threw."""


class Page:
    """One page target, reached through the browser connection's flat session."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self._browser = browser
        self._session = session_id

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.send(method, session_id=self._session, **params)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        reply = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise CDPError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 10.0) -> Any:
        """Poll until the expression is truthy; its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            with contextlib.suppress(CDPError):  # the page may still be loading
                value = await self.evaluate(expression)
                if value:
                    return value
            if loop.time() > deadline:
                raise TimeoutError(f"{expression!r} still false after {seconds} s")
            await asyncio.sleep(0.02)

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the element's centre."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    async def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type the text as keyboard input would insert it."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Browser:
    """The browser target's websocket: commands by id, replies matched to them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            reply = json.loads(message.data)
            future = self._waiting.pop(reply.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(CDPError("the browser closed its DevTools connection"))

    async def send(
        self, method: str, *, session_id: str | None = None, **params: Any
    ) -> dict[str, Any]:
        n = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[n] = future
        message: dict[str, Any] = {"id": n, "method": method, "params": params}
        if session_id:
            message["sessionId"] = session_id
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return page

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _devtools_url(stderr: asyncio.StreamReader, seconds: float) -> str:
    async def read() -> str:
        while line := await stderr.readline():
            if match := _LISTENING.search(line):
                return match[1].decode()
        raise CDPError("chromium exited before it printed its DevTools URL")

    return await asyncio.wait_for(read(), seconds)


@contextlib.asynccontextmanager
async def chromium(path: str, start_seconds: float = 30.0) -> AsyncIterator[Browser]:
    """A headless Chromium with a throw-away profile, killed on the way out."""
    with tempfile.TemporaryDirectory(prefix="dedup-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            path,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-sandbox",  # root cannot use the sandbox
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        drain: asyncio.Task[None] | None = None
        try:
            url = await _devtools_url(proc.stderr, start_seconds)

            async def discard(stream: asyncio.StreamReader) -> None:
                while await stream.read(65536):
                    pass

            drain = asyncio.create_task(discard(proc.stderr))  # never let the pipe fill
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(url, max_msg_size=256 * 1024 * 1024) as ws,
            ):
                browser = Browser(ws)
                try:
                    yield browser
                finally:
                    await browser.close()
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if drain is not None:
                drain.cancel()
