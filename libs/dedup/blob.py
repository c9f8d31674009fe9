"""Blob storage: Azure Blob Storage in production, Azurite locally.

Credentials come from a connection string (a Kubernetes Secret; locally Azurite's
`UseDevelopmentStorage=true`) or, when only an account URL is set, from workload
identity through DefaultAzureCredential. Errors are mapped onto what the runtime
understands: a missing blob is a fact about the image, an unreachable service is
transient.

The Azure SDK is imported where it is used, not with this module: it takes ~0.5 s to
import, and `dedup scan` (local files; only this module's errors and protocols) never
needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

from dedup import metrics
from dedup.errors import TransientError

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob.aio import BlobServiceClient


class BlobSettings(BaseSettings):
    # A Kubernetes Secret in production. With neither this nor an account URL: Azurite.
    blob_connection_string: SecretStr | None = None
    # https://<account>.blob.core.windows.net, authenticated by workload identity.
    blob_account_url: str | None = None
    blob_max_download_bytes: int = 100 * 1024 * 1024

    @field_validator("blob_connection_string", "blob_account_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A chart renders an unset value as "": that must not mean "an empty secret".
        return None if value == "" else value


# Not a secret: the SDK's short-hand for Azurite's well-known development account.
AZURITE = "UseDevelopmentStorage=true"


class BlobMissingError(Exception):
    """The blob does not exist (never uploaded, or deleted since the event)."""


class BlobTooLargeError(Exception):
    """The blob is over the download size limit; it is not read."""


class BlobChangedError(Exception):
    """The blob is not the version the caller names (its ETag changed): nothing was done."""


class BlobExistsError(Exception):
    """A write that must not replace a blob found one there: nothing was done."""


def quoted_etag(etag: str) -> str:
    """ETags as HTTP wants them: Event Grid sends `0x8D...`, the SDK returns `"0x8D..."`."""
    return etag if etag.startswith('"') else f'"{etag}"'


def split_blob_url(account_url: str, url: str) -> tuple[str, str] | None:
    """(container, blob name) of a blob URL in the account at `account_url`, else None."""
    base, target = urlsplit(account_url), urlsplit(url)
    if (base.scheme, base.netloc) != (target.scheme, target.netloc):
        return None
    prefix = base.path.rstrip("/") + "/"
    if not target.path.startswith(prefix):
        return None
    container, _, name = target.path[len(prefix) :].partition("/")
    return (container, unquote(name)) if container and name else None


def _if_match(prefix: str, etag: str | None) -> dict[str, Any]:
    """The SDK's conditional-request keywords; none at all when there is no ETag (it
    passes keywords it does not use, None or not, on to the HTTP transport)."""
    if not etag:
        return {}
    from azure.core import MatchConditions

    return {
        f"{prefix}etag": quoted_etag(etag),
        f"{prefix}match_condition": MatchConditions.IfNotModified,
    }


@contextlib.contextmanager
def _mapped_errors(container: str, name: str) -> Iterator[None]:
    """Azure's exceptions as dedup's: missing, changed, transient (or raised as they are)."""
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ResourceNotFoundError as error:
        raise BlobMissingError(f"{container}/{name} not found") from error
    except ResourceExistsError as error:
        raise BlobExistsError(f"{container}/{name} exists already") from error
    except ResourceModifiedError as error:
        raise BlobChangedError(f"{container}/{name} changed: {error.message}") from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientError(f"blob storage unreachable: {error}", dependency="blob") from error
    except HttpResponseError as error:
        if _is_transient(error):
            raise TransientError(f"blob storage: {error.message}", dependency="blob") from error
        raise


# Azure's longest blob name, in characters.
MAX_BLOB_NAME = 1024


def unaddressable(name: str) -> str | None:
    """Why no blob can have this name, or None. A `.` or `..` segment is resolved away in
    the blob's URL (the request names another blob, and fails its signature: a 403 that
    would look like bad credentials); a name over 1,024 characters is refused."""
    if {".", ".."} & set(name.split("/")):
        return f"{name!r} cannot name a blob: its URL resolves '.' and '..' segments away"
    if len(name) > MAX_BLOB_NAME:
        return f"a blob name of {len(name)} characters is over Azure's {MAX_BLOB_NAME}"
    return None


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    etag: str
    content_type: str
    last_modified: float
    # User-defined metadata; filled in by `BlobStore.properties` and by a listing that asks.
    metadata: dict[str, str] = field(default_factory=dict)


def open_service(settings: BlobSettings) -> BlobServiceClient:
    """A client for the account; the caller closes it (`async with`)."""
    from azure.identity.aio import DefaultAzureCredential
    from azure.storage.blob.aio import BlobServiceClient

    if settings.blob_connection_string is not None:
        return BlobServiceClient.from_connection_string(
            settings.blob_connection_string.get_secret_value()
        )
    if settings.blob_account_url:
        return BlobServiceClient(settings.blob_account_url, credential=DefaultAzureCredential())
    return BlobServiceClient.from_connection_string(AZURITE)


def _is_transient(error: HttpResponseError) -> bool:
    return error.status_code is None or error.status_code in (408, 429) or error.status_code >= 500


class BlobStore:
    """The few blob operations dedup needs, with errors mapped and bytes counted."""

    def __init__(self, service: BlobServiceClient, service_name: str) -> None:
        self._service = service
        self._service_name = service_name

    async def download(self, container: str, name: str, max_bytes: int) -> bytes:
        """Read a whole blob, refusing one over `max_bytes` before reading its body."""
        blob = self._service.get_blob_client(container, name)
        with _mapped_errors(container, name):
            stream = await blob.download_blob()
            if stream.size > max_bytes:
                raise BlobTooLargeError(f"{stream.size} bytes is over the {max_bytes} limit")
            data = await stream.readall()
        metrics.DOWNLOADED_BYTES.labels(self._service_name).inc(len(data))
        return data

    async def upload(
        self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Write (or overwrite) a blob; returns its URL."""
        from azure.storage.blob import ContentSettings

        blob = self._service.get_blob_client(container, name)
        with _mapped_errors(container, name):
            await blob.upload_blob(
                data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
            )
        return str(blob.url)

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None:
        """Delete a blob; one that is already gone is not an error (idempotent).

        With `if_match` (an ETag), only that version: BlobChangedError if it changed.
        """
        blob = self._service.get_blob_client(container, name)
        with contextlib.suppress(BlobMissingError), _mapped_errors(container, name):
            await blob.delete_blob(**_if_match("", if_match))

    def locate(self, url: str) -> tuple[str, str] | None:
        """(container, blob name) of a blob URL in this account, else None."""
        return split_blob_url(str(self._service.url), url)

    async def properties(self, container: str, name: str) -> BlobInfo | None:
        """The blob's size, ETag, content type and metadata (one HEAD), or None if it is gone."""
        blob = self._service.get_blob_client(container, name)
        with contextlib.suppress(BlobMissingError), _mapped_errors(container, name):
            return _info(name, await blob.get_blob_properties())
        return None

    async def container_exists(self, container: str) -> bool:
        client = self._service.get_container_client(container)
        with _mapped_errors(container, ""):
            return bool(await client.exists())

    async def get_tags(self, container: str, name: str) -> dict[str, str]:
        blob = self._service.get_blob_client(container, name)
        with _mapped_errors(container, name):
            return dict(await blob.get_blob_tags())

    async def set_tags(self, container: str, name: str, tags: Mapping[str, str]) -> None:
        """Add or update blob index tags, keeping the blob's other tags (at most 10 in all)."""
        blob = self._service.get_blob_client(container, name)
        with _mapped_errors(container, name):
            current = dict(await blob.get_blob_tags())
            if any(current.get(k) != v for k, v in tags.items()):
                await blob.set_blob_tags(current | dict(tags))

    async def copy(
        self,
        source: tuple[str, str],
        target: tuple[str, str],
        *,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        if_absent: bool = False,
        timeout_seconds: float = 300,
    ) -> str:
        """Server-side copy of (container, name) to (container, name); waits until done.

        The copy has the source's content and properties; its metadata is `metadata`
        (None: the source's) and its index tags are `tags` (none: a copy does not carry
        the source's). With `if_match` (an ETag), only that version of the source:
        BlobChangedError if it changed. With `if_absent`, only if no blob is at the
        target: BlobExistsError if one is. Returns the URL of the copy.
        """
        from azure.core import MatchConditions

        src = self._service.get_blob_client(*source)
        dst = self._service.get_blob_client(*target)
        target_condition: dict[str, Any] = (
            {"match_condition": MatchConditions.IfMissing} if if_absent else {}
        )
        # Only the target's condition can fail as "exists": the outer mapping names it.
        with _mapped_errors(*target), _mapped_errors(*source):
            await dst.start_copy_from_url(
                src.url,
                metadata=dict(metadata) if metadata else None,
                tags=dict(tags) if tags else None,
                **_if_match("source_", if_match),
                **target_condition,
            )
        deadline = time.monotonic() + timeout_seconds
        with _mapped_errors(*target):
            # Within one account a copy is usually done at once; across, it may take a while.
            while (status := (await dst.get_blob_properties()).copy.status) == "pending":
                if time.monotonic() > deadline:
                    raise TransientError(f"copy to {target[0]}/{target[1]} still pending")
                await asyncio.sleep(1)
        if status not in (None, "success"):
            raise RuntimeError(f"copy to {target[0]}/{target[1]} ended {status}")
        if metadata is not None and not metadata:
            # A copy asked for no metadata keeps the source's: take it off.
            with _mapped_errors(*target):
                await dst.set_blob_metadata({})
        return str(dst.url)

    async def ensure_container(self, container: str) -> None:
        from azure.core.exceptions import (
            ResourceExistsError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            with contextlib.suppress(ResourceExistsError):
                await self._service.create_container(container)
        except (ServiceRequestError, ServiceResponseError) as error:
            raise TransientError(f"blob storage unreachable: {error}", dependency="blob") from error

    async def list_pages(
        self,
        container: str,
        prefix: str | None = None,
        continuation: str | None = None,
        page_size: int | None = None,
        *,
        metadata: bool = False,
    ) -> AsyncIterator[tuple[list[BlobInfo], str | None]]:
        """List a container a page at a time: (blobs, marker to resume after this page).

        `page_size`: blobs per page (Azure's default and maximum: 5,000). `metadata`:
        with each blob's metadata."""
        client = self._service.get_container_client(container)
        listing = client.list_blobs(
            name_starts_with=prefix,
            results_per_page=page_size,
            include=["metadata"] if metadata else None,
        )
        pages = listing.by_page(continuation_token=continuation)
        async for page in pages:
            blobs = [_info(b.name, b) async for b in page]
            # by_page() is typed as a plain iterator, but it is a page iterator with a marker.
            yield blobs, getattr(pages, "continuation_token", None)


def _info(name: str, props: Any) -> BlobInfo:
    """A BlobInfo from the SDK's BlobProperties (of a listing or a HEAD)."""
    return BlobInfo(
        name=name,
        size=props.size,
        etag=props.etag,
        content_type=props.content_settings.content_type or "",
        last_modified=props.last_modified.timestamp() if props.last_modified else time.time(),
        metadata=dict(props.metadata or {}),
    )


class Blobs(Protocol):
    """The blob operations the services use. `BlobStore` is the real one; `dedup scan`
    passes a local folder instead (apps.scan.local_blobs), through each service's
    `open_stage(settings, blobs=...)`."""

    async def download(self, container: str, name: str, max_bytes: int) -> bytes: ...

    async def upload(
        self, container: str, name: str, data: bytes, content_type: str = ...
    ) -> str: ...

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None: ...

    def locate(self, url: str) -> tuple[str, str] | None: ...

    async def ensure_container(self, container: str) -> None: ...


@contextlib.asynccontextmanager
async def blob_store(
    settings: BlobSettings, service_name: str, given: Blobs | None = None
) -> AsyncIterator[Blobs]:
    """`given` as it is (its owner closes it), else a `BlobStore` on the account in
    `settings`, closed on exit."""
    if given is not None:
        yield given
        return
    async with open_service(settings) as service:
        yield BlobStore(service, service_name)
