"""Health probes of the local stack that need a real client (run with .venv/bin/python).

    probe.py kafka HOST:PORT           the broker answers a metadata request (aiokafka admin)
    probe.py milvus URI                Milvus answers list_collections()
    probe.py milvus-selftest URI       binary vectors work: create, index, insert, search, drop

Exit status 0 when healthy; otherwise 1 with the reason on stderr. Each probe is one quick
attempt; stack/lib.sh does the waiting and retrying.
"""

import asyncio
import logging
import sys
import uuid


async def _kafka(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        await asyncio.wait_for(admin.list_topics(), timeout=5)
    finally:
        await admin.close()


def kafka(bootstrap: str) -> None:
    asyncio.run(_kafka(bootstrap))


def milvus(uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=3)
    try:
        client.list_collections()
    finally:
        client.close()


def milvus_selftest(uri: str) -> None:
    """The features the hasher needs from Milvus Lite: BINARY_VECTOR + BIN_FLAT/HAMMING."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri, timeout=10)
    name = f"selftest_{uuid.uuid4().hex[:8]}"
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("hash", DataType.BINARY_VECTOR, dim=64)
        index = client.prepare_index_params()
        index.add_index("hash", index_type="BIN_FLAT", metric_type="HAMMING")
        client.create_collection(name, schema=schema, index_params=index)
        rows = [{"id": i, "hash": bytes([i] * 8)} for i in range(16)]
        client.insert(name, rows)
        hits = client.search(name, data=[bytes([3] * 8)], anns_field="hash", limit=2)[0]
        if not hits or hits[0]["id"] != 3 or hits[0]["distance"] != 0:
            raise RuntimeError(f"unexpected search result: {hits}")
    finally:
        if client.has_collection(name):
            client.drop_collection(name)
        client.close()


PROBES = {"kafka": kafka, "milvus": milvus, "milvus-selftest": milvus_selftest}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in PROBES:
        print(__doc__, file=sys.stderr)
        return 2
    logging.disable(logging.CRITICAL)  # a failed attempt is expected while a part starts
    try:
        PROBES[sys.argv[1]](sys.argv[2])
    except Exception as exc:
        print(f"{sys.argv[1]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
