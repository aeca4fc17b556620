"""The whole pymilvus flow, recorded step by step so that two runs can be compared.

`run_flow(uri, tag)` drives one MilvusClient through collections, data, indexes, search, partitions,
aliases, databases and teardown, naming everything after `tag`, and returns a list of
`(step, normalised result)`. Names containing the tag are rewritten to `<T>`, and values that
legitimately differ between two runs (ids the server assigns, timestamps, costs) are dropped, so a
run straight against milvus-lite and a run through the guard must produce equal lists.
"""

from __future__ import annotations

import enum
import inspect
import random
from collections.abc import Mapping
from typing import Any, Callable

import grpc
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

DIM = 16
ROWS = 600
CALL_TIMEOUT = 30.0
VOLATILE_KEYS = {"collection_id", "created_timestamp", "update_timestamp", "timestamp", "cost", "session_ts", "db_id"}


def vectors(count: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[round(rng.uniform(-1, 1), 4) for _ in range(DIM)] for _ in range(count)]


def rows(start: int, count: int, seed: int) -> list[dict]:
    vecs = vectors(count, seed)
    return [
        {
            "id": start + i,
            "vec": vecs[i],
            "title": f"title-{start + i}",
            "n": (start + i) % 5,
            "meta": {"even": (start + i) % 2 == 0},
            "dyn": (start + i) * 3,
        }
        for i in range(count)
    ]


def normalise(value: Any, tag: str) -> Any:
    """Plain, comparable data: dicts, lists, str, int, rounded floats; the tag becomes <T>."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, str):
        return value.replace(tag, "<T>")
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return normalise(value.tolist(), tag)
    if isinstance(value, Mapping):
        return {normalise(k, tag): normalise(v, tag) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, (list, tuple, set)) or hasattr(value, "__iter__") or hasattr(value, "__getitem__"):
        items = [normalise(v, tag) for v in value]  # protobuf repeated containers iterate by index
        return sorted(items, key=repr) if isinstance(value, set) else items
    return normalise(repr(value), tag)


class Recorder:
    """Calls client methods with a bounded timeout and records each result or error."""

    def __init__(self, client: MilvusClient, tag: str):
        self.client = client
        self.tag = tag
        self.steps: list[tuple[str, Any]] = []

    def __call__(self, step: str, method: str, *args, keep: Callable[[Any], Any] = lambda r: r, **kwargs) -> Any:
        fn = getattr(self.client, method)
        if "timeout" in inspect.signature(fn).parameters or _takes_kwargs(fn):
            kwargs.setdefault("timeout", CALL_TIMEOUT)
        try:
            result = fn(*args, **kwargs)
        except MilvusException as e:
            self.steps.append((step, {"error": type(e).__name__, "code": e.code, "message": normalise(e.message, self.tag)}))
            return None
        except grpc.RpcError as e:
            self.steps.append((step, {"grpc": e.code().name, "details": normalise(e.details() or "", self.tag)}))
            return None
        self.steps.append((step, normalise(keep(result), self.tag)))
        return result


def _takes_kwargs(fn) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def mine(tag: str) -> Callable[[list], list]:
    """Only the names this run created (the server is shared with other tests)."""
    return lambda names: sorted(n for n in names if tag in n or n == "default")


def run_flow(uri: str, tag: str) -> list[tuple[str, Any]]:
    client = MilvusClient(uri=uri, timeout=CALL_TIMEOUT)
    try:
        return _flow(Recorder(client, tag), tag)
    finally:
        client.close()


def _flow(call: Recorder, tag: str) -> list[tuple[str, Any]]:
    name = f"flow_{tag}"
    other = f"flow2_{tag}"
    renamed = f"flow3_{tag}"
    alias = f"alias_{tag}"
    part = f"part_{tag}"
    db = f"db_{tag}"
    for leftover in (name, other, renamed):  # from an earlier, interrupted run on the same server
        if call.client.has_collection(leftover, timeout=CALL_TIMEOUT):
            call.client.drop_collection(leftover, timeout=CALL_TIMEOUT)

    call("version", "get_server_version")
    call("has before create", "has_collection", name)

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True, description="e2e flow")
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("n", DataType.INT64)
    schema.add_field("meta", DataType.JSON)
    call("create collection", "create_collection", name, schema=schema)
    call("create again", "create_collection", name, schema=schema)
    call("has after create", "has_collection", name)
    call("describe", "describe_collection", name)
    call("list", "list_collections", keep=mine(tag))

    data = rows(0, ROWS, seed=1)
    call("insert", "insert", name, data)
    call("flush", "flush", name)
    call("stats", "get_collection_stats", name)

    index = MilvusClient.prepare_index_params()
    index.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    call("create index", "create_index", name, index)
    call("list indexes", "list_indexes", name)
    call("describe index", "describe_index", name, "vec")
    call("load", "load_collection", name)
    call("load state", "get_load_state", name)

    queries = [data[7]["vec"], data[123]["vec"], vectors(1, seed=99)[0]]
    call("search", "search", name, data=queries, limit=5, output_fields=["title", "n", "meta"])
    call("search filtered", "search", name, data=queries[:1], limit=4, filter="n > 2", output_fields=["id", "dyn"])
    call("query", "query", name, filter="n == 1 and id < 60", output_fields=["id", "title", "meta", "dyn"])
    call("query count", "query", name, filter="", output_fields=["count(*)"])
    call("get", "get", name, ids=[1, 2, 3], output_fields=["id", "vec", "title"])
    call("get missing", "get", name, ids=[100_000])

    call("upsert", "upsert", name, rows(5, 1, seed=2) + rows(ROWS, 1, seed=3))
    call("get upserted", "get", name, ids=[5, ROWS], output_fields=["id", "title", "vec"])
    call("delete by filter", "delete", name, filter="n == 2")
    call("delete by ids", "delete", name, ids=[6, 8, 10_000])
    call("count after delete", "query", name, filter="", output_fields=["count(*)"])
    call("query after delete", "query", name, filter="id < 20", output_fields=["id"])

    call("create partition", "create_partition", name, part)
    call("has partition", "has_partition", name, part)
    call("list partitions", "list_partitions", name)
    call("insert partition", "insert", name, rows(10_000, 20, seed=4), partition_name=part)
    call("load partitions", "load_partitions", name, [part])
    call("query partition", "query", name, filter="id >= 10000", output_fields=["id"], partition_names=[part])
    call("release partitions", "release_partitions", name, [part])
    call("drop partition", "drop_partition", name, part)
    call("list partitions after drop", "list_partitions", name)

    call("create other", "create_collection", other, dimension=DIM)
    call("create alias", "create_alias", name, alias)
    call("describe alias", "describe_alias", alias)
    call("list aliases", "list_aliases", name)
    call("query via alias", "query", alias, filter="id in [1, 2]", output_fields=["id", "title"])
    call("alter alias", "alter_alias", other, alias)
    call("describe altered alias", "describe_alias", alias)
    call("list aliases of other", "list_aliases", other)
    call("drop alias", "drop_alias", alias)
    call("describe dropped alias", "describe_alias", alias)

    call("alter properties", "alter_collection_properties", name, properties={"collection.ttl.seconds": 3600})
    call("describe after alter", "describe_collection", name)
    call("release", "release_collection", name)
    call("load state after release", "get_load_state", name)
    call("drop index", "drop_index", name, "vec")
    call("list indexes after drop", "list_indexes", name)

    call("rename", "rename_collection", other, renamed)
    call("list after rename", "list_collections", keep=mine(tag))
    call("describe renamed", "describe_collection", renamed)
    call("drop renamed", "drop_collection", renamed)

    call("create database", "create_database", db)
    call("list databases", "list_databases", keep=mine(tag))
    call("describe database", "describe_database", db)
    call("use database", "use_database", db)
    call("create in database", "create_collection", name, dimension=DIM)
    call("insert in database", "insert", name, [{"id": i, "vector": v} for i, v in enumerate(vectors(5, seed=5))])
    call("list in database", "list_collections", keep=mine(tag))
    call("count in database", "query", name, filter="", output_fields=["count(*)"])
    call("drop in database", "drop_collection", name)
    call("use default", "use_database", "default")
    call("list in default", "list_collections", keep=mine(tag))
    call("drop database", "drop_database", db)
    call("list databases after drop", "list_databases", keep=mine(tag))

    call("drop collection", "drop_collection", name)
    call("has after drop", "has_collection", name)
    call("describe dropped", "describe_collection", name)
    call("list at end", "list_collections", keep=mine(tag))
    return call.steps
