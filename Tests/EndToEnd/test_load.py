"""Large messages and concurrency through the guard."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

DIM = 1024
BIG_ROWS = 17_000  # 17,000 x 1024 float32 = 69.6 MB of vectors: the InsertRequest is over 64 MiB


def _vector_collection(client: MilvusClient, name: str, dim: int) -> None:
    if client.has_collection(name, timeout=30):
        client.drop_collection(name, timeout=30)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(name, schema=schema, timeout=30)


def _index_and_load(client: MilvusClient, name: str) -> None:
    index = MilvusClient.prepare_index_params()
    index.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    client.create_index(name, index, timeout=60)
    client.load_collection(name, timeout=60)


@pytest.mark.timeout(180)  # ~15-45 s on 2 busy cores straight to milvus-lite; the guard may add a little
def test_insert_over_64_mib_arrives_intact(client, direct_client):
    name = "big_insert"
    assert BIG_ROWS * DIM * 4 > 64 * 1024 * 1024
    _vector_collection(client, name, DIM)
    vectors = np.random.default_rng(7).random((BIG_ROWS, DIM), dtype=np.float32)

    result = client.insert(name, [{"id": i, "vec": vectors[i]} for i in range(BIG_ROWS)], timeout=150)
    assert result["insert_count"] == BIG_ROWS

    client.flush(name, timeout=60)
    _index_and_load(client, name)
    # Counted and read back straight from milvus-lite, so nothing the guard does can hide a loss.
    assert direct_client.query(name, filter="", output_fields=["count(*)"], timeout=30)[0]["count(*)"] == BIG_ROWS
    sample = [0, 1, 4_095, 8_500, 12_345, BIG_ROWS - 1]
    got = direct_client.get(name, ids=sample, output_fields=["id", "vec"], timeout=30)
    assert sorted(row["id"] for row in got) == sample
    for row in got:
        assert np.array_equal(np.asarray(row["vec"], dtype=np.float32), vectors[row["id"]]), row["id"]
    # And read back through the guard too.
    hits = client.search(name, data=[vectors[12_345].tolist()], limit=1, timeout=30)
    assert hits[0][0]["id"] == 12_345
    client.drop_collection(name, timeout=30)


def test_200_concurrent_searches(client):
    name = "concurrent_search"
    dim, rows = 32, 2_000
    _vector_collection(client, name, dim)
    vectors = np.random.default_rng(11).random((rows, dim), dtype=np.float32)
    client.insert(name, [{"id": i, "vec": vectors[i]} for i in range(rows)], timeout=60)
    client.flush(name, timeout=60)
    _index_and_load(client, name)

    def search(i: int) -> int:
        target = (i * 37) % rows
        hits = client.search(name, data=[vectors[target].tolist()], limit=3, timeout=60)
        return hits[0][0]["id"] == target

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(search, range(200), timeout=110))
    assert len(results) == 200 and all(results)
    client.drop_collection(name, timeout=30)
