#!/usr/bin/env python3
"""Generates Sources/MilvusCatalog/MilvusRPCs+Table.swift from pymilvus's own protobuf descriptors.

Every RPC of `milvus.proto.milvus.MilvusService` as pymilvus 3.0.2 ships it (144), its streaming kind,
its request message, where its response carries common.Status, and, for each request field the guard
reads, the field number and its role. The
action class comes from the "Every RPC" table of ../shared/MILVUS.md (checked to list the same RPCs).

Regenerate (from the repository root):
    python3 -m venv /tmp/wire-venv && /tmp/wire-venv/bin/pip install pymilvus==3.0.2
    /tmp/wire-venv/bin/python Tests/MilvusCatalogTests/Fixtures/generate_table.py \
        ../shared/MILVUS.md > Sources/MilvusCatalog/MilvusRPCs+Table.swift
    swift format format -i Sources/MilvusCatalog/MilvusRPCs+Table.swift
"""
import re
import sys

from google.protobuf.descriptor import FieldDescriptor as FD
from pymilvus.grpc_gen import milvus_pb2  # noqa: F401  (registers feder, rg, msg, ...)

STRING = FD.TYPE_STRING
MESSAGE = FD.TYPE_MESSAGE

# (field name, repeated, type) -> role; a field not listed here is skipped like any unknown field.
SINGULAR_STRINGS = {
    "db_name": "database", "dbName": "database",
    "collection_name": "collection", "collectionName": "collection", "oldName": "collection",
    "partition_name": "partition",
    "index_name": "indexName",
    "field_name": "fieldName",
    "alias": "alias",
    "expr": "filter",
    "username": "user", "user_name": "user",
    "role_name": "role",
    "newName": "newCollection", "target_collection_name": "newCollection",
    "newDBName": "newDatabase", "target_db_name": "newDatabase",
    "resource_group": "resourceGroup",
    "source_resource_group": "sourceResourceGroup",
    "target_resource_group": "targetResourceGroup",
    "group_name": "privilegeGroup",
    "namespace_name": "namespace", "namespace": "namespace",
    "function_name": "function",
    "policy_name": "rowPolicy",
    "channel_name": "channel", "pchannel": "channel",
}
REPEATED_STRINGS = {
    "collection_name": "collections", "collection_names": "collections",
    "partition_names": "partitions",
    "resource_groups": "resourceGroups",
    "roles": "roles",
    "field_names": "fieldNames",
}
MESSAGES = {
    "milvus.proto.milvus.RoleEntity": "roleEntity",
    "milvus.proto.milvus.UserEntity": "userEntity",
    "milvus.proto.milvus.GrantEntity": "grantEntity",
    "milvus.proto.milvus.GrantorEntity": "grantor",
}
SNAPSHOT_RPCS = {"CreateSnapshot", "DropSnapshot", "DescribeSnapshot", "RestoreSnapshot", "ExportSnapshot",
                 "PinSnapshotData"}
FILE_RESOURCE_RPCS = {"AddFileResource", "RemoveFileResource"}


def roles_for(rpc, message):
    out = []
    for f in message.fields:
        role = None
        if f.type == STRING and not f.is_repeated:
            role = SINGULAR_STRINGS.get(f.name)
            if f.name == "dsl" and rpc == "Search":
                role = "filter"  # a Search's boolean expression (with dsl_type BoolExprV1, what pymilvus sends)
            if f.name == "name" and rpc in SNAPSHOT_RPCS:
                role = "snapshot"
            if f.name == "name" and rpc in FILE_RESOURCE_RPCS:
                role = "fileResource"
        elif f.type == STRING and f.is_repeated:
            role = REPEATED_STRINGS.get(f.name)
        elif f.type == FD.TYPE_UINT32 and f.name == "num_rows":
            role = "rowCount"
        elif f.type == FD.TYPE_INT64 and f.name in ("collectionID", "collection_id"):
            # A collection named by its ID: judged as any collection of the database (PolicyTarget).
            role = "collectionIDs" if f.is_repeated else "collectionID"
        elif f.type == MESSAGE and f.message_type.full_name in MESSAGES and not f.is_repeated:
            role = MESSAGES[f.message_type.full_name]
        elif f.type == MESSAGE and f.is_repeated and f.message_type.full_name == "milvus.proto.milvus.PrivilegeEntity":
            role = "privileges"
        elif (f.type == MESSAGE and f.is_repeated and rpc == "UpdateResourceGroups"
              and f.name == "resource_groups"):
            role = "resourceGroupMap"
        elif (f.type == MESSAGE and f.is_repeated and rpc in ("Delete", "Query", "Search")
              and f.name == "expr_template_values"):
            role = "filterParameters"
        if role:
            out.append((f.number, role, f.name))
    return out


def response_status(message):
    """Where a response carries common.Status: the whole message, one of its fields, or nowhere."""
    if message.full_name == "milvus.proto.common.Status":
        return ".message"
    for f in message.fields:
        if f.type == MESSAGE and f.message_type.full_name == "milvus.proto.common.Status" and not f.is_repeated:
            return f".field({f.number})"
    return ".none"


def classes(milvus_md):
    table = {}
    for line in open(milvus_md):
        m = re.match(r"^\| (\w+)(?: \([a-z ]+\))? \| [\w.]+ \| [\w.]+ \| (read|write|ddl|destructive|admin) \|$", line)
        if m:
            table[m.group(1)] = m.group(2)
    return table


def main():
    action = classes(sys.argv[1])
    service = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
    names = [m.name for m in service.methods]
    assert set(names) == set(action), (set(names) ^ set(action))
    assert len(names) == 144, len(names)
    print("// This file is generated by Tests/MilvusCatalogTests/Fixtures/generate_table.py from pymilvus 3.0.2's")
    print("// descriptors and ../shared/MILVUS.md. Do not edit by hand; regenerate (see the script's docstring).")
    print()
    print("extension MilvusRPCs {")
    print("    /// Every RPC of `milvus.proto.milvus.MilvusService` that pymilvus 3.0.2 knows (144), in proto order.")
    print("    public static let all: [RPCDescriptor] = [")
    for m in service.methods:
        if m.client_streaming and m.server_streaming:
            kind = "bidiStreaming"
        elif m.server_streaming:
            kind = "serverStreaming"
        else:
            assert not m.client_streaming
            kind = "unary"
        fields = roles_for(m.name, m.input_type)
        layout = ", ".join(f"RequestField({n}, .{r})" for n, r, _ in fields)
        comment = ", ".join(f"{n} {name}" for n, _, name in fields)
        print(f"        // {m.input_type.full_name}: {comment or 'no field read'}")
        print(f"        RPCDescriptor(")
        print(f"            name: \"{m.name}\", actionClass: .{action[m.name]}, streaming: .{kind},")
        print(f"            requestMessage: \"{m.input_type.full_name}\",")
        print(f"            responseStatus: {response_status(m.output_type)}, layout: [{layout}]")
        print(f"        ),")
    print("    ]")
    print("}")


if __name__ == "__main__":
    main()
