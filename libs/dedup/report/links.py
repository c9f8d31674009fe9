"""Links from the report to the blobs, that open in a browser.

A private container answers a bare blob URL with 403 (a browser sends no credentials), so
`dedup report` gives its links one of:

- a read-only SAS per container (`sas`, the default): signed with a **user delegation key**
  (`get_user_delegation_key`) when the report authenticates by Microsoft Entra ID
  (workload identity, DefaultAzureCredential: DEDUP_REPORT_BLOB_ACCOUNT_URL), or with the
  account key when it has one (a connection string with AccountKey; Azurite's). Read
  permission only (sp=r), on that container only, for `hours` (at most 7 days, a user
  delegation key's limit); one token per container is embedded once and appended to its
  blobs' links. Whoever holds the page can read those containers until it expires: share
  it as you would the blobs.
- a base URL (`DEDUP_REPORT_LINK_BASE_URL`, e.g. a proxy that signs people in and serves
  the account's blobs as `<base>/<container>/<blob name>`): no token in the page at all.
- the bare URL (`plain`): for public containers, or a browser that has access some other way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient

Links = Literal["sas", "plain"]
# A user delegation key is valid for at most seven days.
MAX_HOURS = 7 * 24
# A few minutes before now: the signing clock and the service's may disagree.
CLOCK_SKEW = dt.timedelta(minutes=5)


def base_url_link(base: str, container: str, name: str) -> str:
    """`<base>/<container>/<name>`, the name %-encoded as blob URLs are."""
    return f"{base.rstrip('/')}/{quote(container, safe='')}/{quote(name, safe='/')}"


async def container_sas(
    service: BlobServiceClient,
    containers: Iterable[str],
    hours: float,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """container -> "?<read-only SAS>", signed by the account key if the client has one,
    else by a user delegation key (Entra ID)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    if not 0 < hours <= MAX_HOURS:
        raise ValueError(f"a link lasts more than 0 and at most {MAX_HOURS} hours, not {hours}")
    wanted = sorted({c for c in containers if c})
    if not wanted:
        return {}
    start = (now or dt.datetime.now(dt.UTC)) - CLOCK_SKEW
    expiry = start + CLOCK_SKEW + dt.timedelta(hours=hours)
    account = service.account_name
    key = getattr(service.credential, "account_key", None)
    signer: dict[str, object]
    if key:
        signer = {"account_key": key}
    else:
        signer = {"user_delegation_key": await service.get_user_delegation_key(start, expiry)}
    assert account is not None
    return {
        c: "?"
        + generate_container_sas(
            account,
            c,
            permission=ContainerSasPermissions(read=True),
            start=start,
            expiry=expiry,
            protocol=None if service.url.startswith("http://") else "https",
            **signer,  # type: ignore[arg-type]
        )
        for c in wanted
    }
