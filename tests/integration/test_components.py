"""Each real component of the local stack answers the way the services use it."""

import uuid

import numpy as np
import pytest
from pymilvus import DataType
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc import aio as triton

from dedup.blob import BlobMissingError, BlobSettings, BlobStore, BlobTooLargeError, open_service
from dedup.runtime.kafka import Publisher, describe_topic_config, ensure_topics, read_topic
from dedup.settings import KafkaSettings, MilvusSettings
from dedup.topics import DECISIONS
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.vectors import open_milvus, timed


async def test_azurite_round_trip_and_clear_errors() -> None:
    container = f"test-{uuid.uuid4().hex[:8]}"
    async with open_service(BlobSettings()) as service:
        store = BlobStore(service, "test")
        await store.ensure_container(container)
        url = await store.upload(container, "dir/a b.jpg", b"\xff\xd8 bytes", "image/jpeg")
        assert url.endswith(f"{container}/dir/a%20b.jpg")
        assert await store.download(container, "dir/a b.jpg", max_bytes=100) == b"\xff\xd8 bytes"
        with pytest.raises(BlobTooLargeError):
            await store.download(container, "dir/a b.jpg", max_bytes=3)
        with pytest.raises(BlobMissingError):
            await store.download(container, "nope.jpg", max_bytes=100)
        listed = [b async for page, _ in store.list_pages(container) for b in page]
        assert [(b.name, b.size, b.content_type) for b in listed] == [
            ("dir/a b.jpg", 8, "image/jpeg")
        ]
        await service.delete_container(container)


async def test_milvus_server_searches_binary_hashes_by_hamming_distance() -> None:
    client = open_milvus(MilvusSettings())
    name = f"test_{uuid.uuid4().hex[:8]}"
    schema = client.create_schema(auto_id=False)
    schema.add_field("image_id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("hash", DataType.BINARY_VECTOR, dim=64)
    index = client.prepare_index_params()
    index.add_index("hash", index_type="BIN_FLAT", metric_type="HAMMING")
    await client.create_collection(name, schema=schema, index_params=index)
    try:
        base = 0x0123456789ABCDEF
        rows = [
            {"image_id": "a", "hash": base.to_bytes(8, "big")},
            {"image_id": "a-edit", "hash": (base ^ 0b111).to_bytes(8, "big")},  # 3 bits off
            {"image_id": "other", "hash": (~base & (2**64 - 1)).to_bytes(8, "big")},
        ]
        await timed("test", "insert", client.insert(name, rows))
        hits = await timed(
            "test",
            "search",
            client.search(
                name,
                data=[base.to_bytes(8, "big")],
                anns_field="hash",
                limit=3,
                search_params={"metric_type": "HAMMING"},
                consistency_level="Strong",
            ),
        )
        found = {hit["id"]: hit["distance"] for hit in hits[0]}
        assert found == {"a": 0, "a-edit": 3, "other": 64}
    finally:
        await client.drop_collection(name)
        await client.close()


async def test_triton_server_infers_over_grpc() -> None:
    client = triton.InferenceServerClient("127.0.0.1:8001")
    try:
        assert await client.is_server_ready()
        assert await client.is_model_ready("l2norm")
        batch = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]], dtype=np.float32)
        request = InferInput("INPUT", list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        result = await client.infer("l2norm", [request], outputs=[InferRequestedOutput("OUTPUT")])
        out = result.as_numpy("OUTPUT")
        np.testing.assert_allclose(out, [[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], rtol=1e-6)
    finally:
        await client.close()


async def test_kafka_decisions_topic_is_compacted(kafka: KafkaSettings) -> None:
    await ensure_topics(kafka, [DECISIONS])
    assert (await describe_topic_config(kafka, DECISIONS))["cleanup.policy"] == "compact"


async def test_kafka_round_trip_keeps_per_key_order(kafka: KafkaSettings) -> None:
    topic = f"test.{uuid.uuid4().hex[:8]}.decisions"
    kinds = [DecisionKind.DECISION_KIND_UNIQUE, DecisionKind.DECISION_KIND_DUPLICATE]
    async with Publisher(kafka) as publisher:
        await publisher.ensure_topics([topic])
        for kind in kinds:
            await publisher.publish(topic, "img-1", Decision(image_id="img-1", kind=kind))
    records = [r async for r in read_topic(kafka, topic, idle_seconds=0.3)]
    assert [Decision.FromString(r.value).kind for r in records] == kinds
