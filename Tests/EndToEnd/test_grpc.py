"""Raw gRPC through the guard: compressed messages, request metadata, and Milvus's own status codes."""

from __future__ import annotations

import grpc
import numpy as np
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

import harness

UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def _insert_request(collection: str, ids: np.ndarray, vectors: np.ndarray) -> bytes:
    request = milvus_pb2.InsertRequest(collection_name=collection, num_rows=len(ids))
    id_field = request.fields_data.add()
    id_field.type = schema_pb2.DataType.Int64
    id_field.field_name = "id"
    id_field.scalars.long_data.data.extend(ids.tolist())
    vector_field = request.fields_data.add()
    vector_field.type = schema_pb2.DataType.FloatVector
    vector_field.field_name = "vector"
    vector_field.vectors.dim = vectors.shape[1]
    vector_field.vectors.float_vector.data.extend(vectors.ravel().tolist())
    return request.SerializeToString()


def test_gzip_compressed_insert_arrives_intact(guard, direct_client):
    name, rows, dim = "gzip_insert", 20_000, 64
    if direct_client.has_collection(name, timeout=30):
        direct_client.drop_collection(name, timeout=30)
    direct_client.create_collection(name, dimension=dim, timeout=30)
    # Values from a small set, so gzip really shrinks the 5 MB message.
    vectors = (np.random.default_rng(5).integers(0, 8, size=(rows, dim)) / 8).astype(np.float32)
    payload = _insert_request(name, np.arange(rows, dtype=np.int64), vectors)
    assert len(payload) > 5_000_000

    with grpc.insecure_channel(guard.address, options=UNLIMITED) as channel:
        insert = channel.unary_unary(harness.MILVUS_SERVICE + "Insert", request_serializer=None, response_deserializer=None)
        answer = milvus_pb2.MutationResult.FromString(insert(payload, timeout=60, compression=grpc.Compression.Gzip))
    assert answer.status.code == 0, answer.status
    assert answer.insert_cnt == rows

    assert direct_client.query(name, filter="", output_fields=["count(*)"], timeout=30)[0]["count(*)"] == rows
    sample = [0, 7, 12_345, rows - 1]
    for row in direct_client.get(name, ids=sample, output_fields=["id", "vector"], timeout=30):
        assert np.array_equal(np.asarray(row["vector"], dtype=np.float32), vectors[row["id"]]), row["id"]
    direct_client.drop_collection(name, timeout=30)


def test_dbname_header_selects_the_database(guard, milvus):
    db, name = "header_db", "in_header_db"
    admin = MilvusClient(uri=milvus.uri, timeout=30)
    try:
        if db not in admin.list_databases(timeout=30):
            admin.create_database(db, timeout=30)
        admin.use_database(db)
        if not admin.has_collection(name, timeout=30):
            admin.create_collection(name, dimension=4, timeout=30)

        request = milvus_pb2.HasCollectionRequest(collection_name=name).SerializeToString()

        def has(metadata) -> bool:
            raw = harness.raw_call(guard.address, "HasCollection", request, timeout=10, metadata=metadata)
            answer = milvus_pb2.BoolResponse.FromString(raw)
            assert answer.status.code == 0, answer.status
            return answer.value

        assert has((("dbname", db),)) is True
        assert has((("dbname", ""),)) is False  # empty header: the default database
        assert has(None) is False
    finally:
        admin.drop_collection(name, timeout=30)
        admin.use_database("default")
        admin.drop_database(db, timeout=30)
        admin.close()


def test_milvus_status_codes_pass_through(guard, milvus):
    """An error status from Milvus reaches the client unchanged (code and message), not as the guard's."""
    request = milvus_pb2.LoadPartitionsRequest(collection_name="anything", partition_names=["p"]).SerializeToString()
    outcomes = []
    for address in (milvus.address, guard.address):
        try:
            harness.raw_call(address, "LoadPartitions", request, timeout=10)
            outcomes.append(("OK", ""))
        except grpc.RpcError as e:
            outcomes.append((e.code().name, e.details()))
    assert outcomes[0][0] == "UNIMPLEMENTED", outcomes
    assert outcomes[1] == outcomes[0]
