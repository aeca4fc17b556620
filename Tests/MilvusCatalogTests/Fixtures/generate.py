#!/usr/bin/env python3
"""Writes golden.json: real requests for every RPC of the catalog, serialized by pymilvus's own protobuf classes.

For each of the 144 RPCs of `milvus.proto.milvus.MilvusService` (pymilvus 3.0.2) it builds a request with
every field the guard reads set to a distinctive value (and every other scalar field, `base`, and nested
messages filled too, so the decoder must skip them), and writes:
  - "<Rpc>/full": that request;
  - "<Rpc>/repeated": two different requests concatenated. Concatenated protobuf messages merge, so every
    singular field occurs twice and the LAST occurrence must win, while repeated fields accumulate;
plus hand-written edge cases (database fallback, empty last occurrence, merging of embedded messages).

The expected values are computed by parsing the bytes back with pymilvus's protobuf classes (the reference
semantics) and applying the guard's rules from MilvusCall's documentation, independently of the Swift code.

Regenerate (from the repository root):
    python3 -m venv /tmp/wire-venv && /tmp/wire-venv/bin/pip install pymilvus==3.0.2
    /tmp/wire-venv/bin/python Tests/MilvusCatalogTests/Fixtures/generate.py
"""
import json
import os
import sys

from google.protobuf.descriptor import FieldDescriptor as FD
from pymilvus.grpc_gen import common_pb2, milvus_pb2, rg_pb2, schema_pb2  # noqa: F401

sys.dont_write_bytecode = True  # no __pycache__ inside Fixtures/, which is copied into the test bundle
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_table import roles_for  # noqa: E402

OWN_DATABASE = {"CreateDatabase", "DropDatabase", "AlterDatabase", "DescribeDatabase"}
SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]


def is_map(field):
    return field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def scalar(field, tag):
    t = field.type
    if t == FD.TYPE_STRING:
        return f"{field.name}_{tag}"
    if t == FD.TYPE_BYTES:
        return bytes([0, 0xFF, 0x80, ord(tag[0])])
    if t == FD.TYPE_BOOL:
        return True
    if t == FD.TYPE_ENUM:
        values = field.enum_type.values
        return values[1].number if len(values) > 1 else values[0].number
    if t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return 1.5
    if t in (FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_SINT32, FD.TYPE_SINT64, FD.TYPE_SFIXED32, FD.TYPE_SFIXED64):
        return -3 if tag == "a" else 300
    return 3 if tag == "a" else 70000


def fill(message, tag, depth, skip=()):
    """Sets every field of `message` (recursing `depth` levels into embedded messages), except `skip`."""
    for field in message.DESCRIPTOR.fields:
        if field.name in skip:
            continue
        if is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            key = f"{field.name}_key_{tag}"
            target = getattr(message, field.name)
            if value_field.type == FD.TYPE_MESSAGE:
                if depth > 0:
                    fill(target[key], tag, depth - 1)
                else:
                    target[key].SetInParent()
            else:
                target[key] = scalar(value_field, tag)
        elif field.type == FD.TYPE_MESSAGE:
            if depth <= 0:
                continue
            if field.is_repeated:
                for _ in range(2):
                    fill(getattr(message, field.name).add(), tag, depth - 1)
            else:
                fill(getattr(message, field.name), tag, depth - 1)
        elif field.is_repeated:
            getattr(message, field.name).extend([scalar(field, tag), scalar(field, tag + "2")]
                                                if field.type == FD.TYPE_STRING else [scalar(field, tag)] * 2)
        else:
            setattr(message, field.name, scalar(field, tag))


def build(method, tag):
    """A request with every field set; the fields the guard reads get recognisable values."""
    message = method.input_type._concrete_class()
    roles = roles_for(method.name, method.input_type)
    role_names = {name for _, _, name in roles}
    fill(message, tag, 2, skip=role_names)
    for number, role, name in roles:
        field = method.input_type.fields_by_number[number]
        if role in ("roleEntity", "userEntity"):
            getattr(message, name).name = f"{role}_{tag}"
        elif role == "grantEntity":
            entity = getattr(message, name)
            entity.role.name = f"grant_role_{tag}"
            entity.object.name = "Collection" if tag == "a" else "Global"
            entity.object_name = f"object_{tag}"
            entity.grantor.user.name = f"grantor_{tag}"
            entity.grantor.privilege.name = f"Insert_{tag}"
            entity.db_name = f"grant_db_{tag}"
        elif role == "grantor":
            getattr(message, name).user.name = f"grantor_{tag}"
            getattr(message, name).privilege.name = f"Search_{tag}"
        elif role == "privileges":
            for suffix in ("1", "2"):
                getattr(message, name).add().name = f"privilege_{tag}{suffix}"
        elif role == "resourceGroupMap":
            getattr(message, name)[f"rg_map_{tag}"].SetInParent()
        elif role == "rowCount":
            setattr(message, name, 3 if tag == "a" else 4_000_000_000)
        elif role == "filterParameters":
            params = getattr(message, name)
            params["ids"].array_val.long_data.data.extend([1, -2, 3] if tag == "a" else [7])
            params[f"name_{tag}"].string_val = f'q"ü\n{tag}'
            params["ratio"].float_val = 0.5 if tag == "a" else -2.25
            params["flag"].bool_val = tag == "a"
            params["blob"].bytes_val = b"\x00\x01\x02"
            nested = params["grid"].array_val.array_data.data
            nested.add().double_data.data.extend([1.5, 2.0])
            nested.add().string_data.data.extend(["x", "y"])
            params["docs"].array_val.json_data.data.extend([b'{"a":1}'])
            params["switches"].array_val.bool_data.data.extend([True, False])
        elif field.is_repeated:
            getattr(message, name).extend([f"{name}_{tag}1", f"{name}_{tag}2"])
        elif role == "filter":
            setattr(message, name, f'tag == "ü{tag}" and id in [1, 2]')
        else:
            setattr(message, name, f"{name}_{tag}")
    return message


def expected(method, data, metadata, map_keys=()):
    """What MilvusCall must hold, from the bytes parsed by protobuf itself."""
    parsed = method.input_type._concrete_class().FromString(data)
    single = {}
    lists = {"collections": [], "partitions": [], "roles": [], "resourceGroups": [], "fieldNames": []}
    others = []
    privileges = []
    for number, role, name in roles_for(method.name, method.input_type):
        value = getattr(parsed, name)
        if role == "roleEntity":
            single["role"] = value.name
        elif role == "userEntity":
            single["user"] = value.name
        elif role == "grantEntity":
            single["role"] = value.role.name
            single["database"] = value.db_name
            single["grantObjectType"] = value.object.name
            single["grantObjectName"] = value.object_name
            single["grantPrivilege"] = value.grantor.privilege.name
        elif role == "grantor":
            single["grantPrivilege"] = value.privilege.name
        elif role == "privileges":
            privileges = [p.name for p in value]
        elif role == "resourceGroupMap":
            pass  # keys in wire order, given by the caller (protobuf's map iteration order is unspecified)
        elif role == "rowCount":
            single["rowCount"] = value
        elif role == "filterParameters":
            single["filterParameters"] = render_parameters(value) if len(value) else None
        elif role in lists:
            lists[role] = list(value)
        else:
            single[role] = value
    roles = [r for _, r, _ in roles_for(method.name, method.input_type)]

    def one(key):
        value = single.get(key, "")
        return value if value else None

    body = single.get("database", "")
    if method.name in OWN_DATABASE or body:
        database = body
    elif metadata:
        database = metadata
    else:
        database = "default"
    resource_groups = [g for g in (one("resourceGroup"), one("sourceResourceGroup"), one("targetResourceGroup")) if g]
    resource_groups += lists["resourceGroups"]
    for key in map_keys:
        if key not in resource_groups:
            resource_groups.append(key)
    for kind, key in (("namespace", "namespace"), ("function", "function"), ("rowPolicy", "rowPolicy"),
                      ("fileResource", "fileResource"), ("channel", "channel"),
                      ("grantObjectType", "grantObjectType"), ("grantObjectName", "grantObjectName"),
                      ("privilege", "grantPrivilege")):
        if one(key):
            others.append([kind, one(key)])
    others += [["privilege", p] for p in privileges]
    others += [["field", f] for f in lists["fieldNames"]]
    has_new = "newCollection" in roles or "newDatabase" in roles
    return {
        "database": database,
        "collection": one("collection"),
        "collections": lists["collections"],
        "partitions": ([one("partition")] if one("partition") else []) + lists["partitions"],
        "indexName": one("indexName"),
        "fieldName": one("fieldName"),
        "alias": one("alias"),
        "filter": one("filter"),
        "users": [one("user")] if one("user") else [],
        "roles": ([one("role")] if one("role") else []) + lists["roles"],
        "rowCount": single.get("rowCount", 0) if "rowCount" in roles else None,
        "newCollectionName": one("newCollection"),
        "newDatabase": (one("newDatabase") or database) if has_new else None,
        "resourceGroups": resource_groups,
        "privilegeGroup": one("privilegeGroup"),
        "snapshotName": one("snapshot"),
        "otherTargets": others,
        "filterParameters": single.get("filterParameters"),
    }


def quoted(text):
    """A JSON string as FilterParameters writes it: non-ASCII as itself, control characters as \\u00XX."""
    return json.dumps(text, ensure_ascii=False)


def render_double(value):
    return repr(value) if value == value and value not in (float("inf"), float("-inf")) else quoted(repr(value))


def render_array(array):
    kind = array.WhichOneof("data")
    if kind == "bool_data":
        items = ["true" if v else "false" for v in array.bool_data.data]
    elif kind == "long_data":
        items = [str(v) for v in array.long_data.data]
    elif kind == "double_data":
        items = [render_double(v) for v in array.double_data.data]
    elif kind == "string_data":
        items = [quoted(v) for v in array.string_data.data]
    elif kind == "array_data":
        items = [render_array(v) for v in array.array_data.data]
    elif kind == "json_data":
        items = [quoted(v.decode("utf-8")) for v in array.json_data.data]
    else:
        items = []
    return "[" + ",".join(items) + "]"


def render_value(value):
    kind = value.WhichOneof("val")
    if kind == "bool_val":
        return "true" if value.bool_val else "false"
    if kind == "int64_val":
        return str(value.int64_val)
    if kind == "float_val":
        return render_double(value.float_val)
    if kind == "string_val":
        return quoted(value.string_val)
    if kind == "array_val":
        return render_array(value.array_val)
    if kind == "bytes_val":
        return quoted(f"<{len(value.bytes_val)} bytes>")
    return "null"


def render_parameters(params):
    """Delete's expr_template_values as MilvusCall.filterParameters holds them: a JSON object, keys sorted."""
    return "{" + ",".join(quoted(key) + ":" + render_value(params[key]) for key in sorted(params)) + "}"


def case(name, method, data, metadata, map_keys=()):
    return {"name": name, "rpc": method.name, "metadataDatabase": metadata, "hex": data.hex(),
            "expect": expected(method, data, metadata, map_keys)}


def main():
    cases = []
    for method in SERVICE.methods:
        a = build(method, "a").SerializeToString()
        b = build(method, "b").SerializeToString()
        keys = ["rg_map_a", "rg_map_b"] if method.name == "UpdateResourceGroups" else []
        cases.append(case(f"{method.name}/full", method, a, "meta_db", keys[:1]))
        cases.append(case(f"{method.name}/repeated", method, a + b, None, keys))
    m = {x.name: x for x in SERVICE.methods}
    drop = m["DropCollection"]
    D = milvus_pb2.DropCollectionRequest
    cases += [
        case("edge/last collection_name wins", drop,
             D(collection_name="a").SerializeToString() + D(collection_name="b").SerializeToString(), None),
        case("edge/empty last collection_name is absent", drop,
             D(collection_name="a").SerializeToString() + bytes([0x1A, 0x00]), None),
        case("edge/dbname metadata when body has none", drop, D(collection_name="c").SerializeToString(), "meta"),
        case("edge/default when metadata is empty", drop, D(collection_name="c").SerializeToString(), ""),
        case("edge/default without metadata", drop, D(collection_name="c").SerializeToString(), None),
        case("edge/body db_name beats metadata", drop, D(db_name="body", collection_name="c").SerializeToString(),
             "meta"),
        case("edge/empty last db_name falls back to metadata", drop,
             D(db_name="body").SerializeToString() + bytes([0x12, 0x00]), "meta"),
        case("edge/DropDatabase targets its own db_name", m["DropDatabase"],
             milvus_pb2.DropDatabaseRequest(db_name="victim").SerializeToString(), "meta"),
        case("edge/DropDatabase with no db_name names none", m["DropDatabase"], b"", "meta"),
        case("edge/RenameCollection newDBName defaults to the effective database", m["RenameCollection"],
             milvus_pb2.RenameCollectionRequest(oldName="x", newName="y").SerializeToString(), "meta"),
        case("edge/CreateRole entity occurrences merge", m["CreateRole"],
             milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name="admin")).SerializeToString()
             + milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(description="d")).SerializeToString(), None),
        case("edge/OperatePrivilege with no entity db_name uses metadata", m["OperatePrivilege"],
             milvus_pb2.OperatePrivilegeRequest(entity=milvus_pb2.GrantEntity(
                 role=milvus_pb2.RoleEntity(name="r"), object_name="docs")).SerializeToString(), "meta"),
        case("edge/Insert without num_rows counts 0", m["Insert"],
             milvus_pb2.InsertRequest(collection_name="c").SerializeToString(), None),
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(out, "w") as f:
        json.dump({"generator": "generate.py, pymilvus 3.0.2", "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main()
