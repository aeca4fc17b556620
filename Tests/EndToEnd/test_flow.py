"""The whole pymilvus flow gives the same results through the guard as straight against milvus-lite."""

from __future__ import annotations

import pprint

from flow import ROWS, run_flow


def _index(steps):
    return {step: result for step, result in steps}


def test_flow_through_guard_matches_direct(milvus, guard):
    direct = run_flow(milvus.uri, "direct")
    proxied = run_flow(guard.uri, "guard")

    # The direct run is the reference: check that it really exercised the server.
    reference = _index(direct)
    assert reference["version"].startswith("milvus_lite")
    assert reference["insert"]["insert_count"] == ROWS
    assert reference["query count"] == [{"count(*)": ROWS}]
    assert len(reference["search"]) == 3 and all(len(hits) == 5 for hits in reference["search"])
    assert reference["search"][0][0]["id"] == 7 and reference["search"][0][0]["distance"] == 0.0
    assert reference["describe alias"] == {"alias": "alias_<T>", "collection_name": "flow_<T>"}
    assert reference["list databases"] == ["db_<T>", "default"]
    assert reference["describe dropped"]["code"] == 100
    assert reference["has after drop"] is False

    assert [step for step, _ in proxied] == [step for step, _ in direct]
    for (step, want), (_, got) in zip(direct, proxied):
        assert got == want, f"step {step!r} differs through the guard:\n direct: {pprint.pformat(want)}\n guard:  {pprint.pformat(got)}"
