#!/usr/bin/env python3
"""Writes src/generated/otlp/descriptor.ts: the OTLP request and response schema the bridge decodes
with protobufjs (and serves over gRPC).

The schema is not written by hand. It is the serialized FileDescriptorProtos that the PyPI package
`opentelemetry-proto` embeds in its generated `*_pb2.py` modules (the official .proto files of
opentelemetry-proto, compiled by protoc), plus `google.rpc.Status` from `googleapis-common-protos`
(the body of OTLP error responses). protobufjs (`Root.fromDescriptor` from protobufjs/ext/descriptor)
turns the FileDescriptorSet into its JSON reflection form, which the generated module exports.

No npm package ships the current OTLP schema (LogRecord.event_name, field 12), so the pinned PyPI
package is the source. The artifact is a TypeScript module, not a .json file: the build (`tsc`)
compiles it into dist/ like any other module, and the package needs no JSON-module support.

The pins are examples/python/requirements.txt's (opentelemetry-proto, googleapis-common-protos), so
the venv scripts/provision-example.sh makes has them. Run from the repository root (needs Node and
the repository's node_modules for protobufjs):

    ~/.cache/runtel/venv-example/bin/python scripts/gen-otlp-descriptor.py [--out PATH]

To move to a newer schema, change the pins there, rerun, and run test/bridge. test/bridge/schema.test.ts
fails while the committed file differs from what this script writes.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import version

from google.protobuf import descriptor_pb2

# The three OTLP export services (their dependencies follow: common, resource, trace, logs, metrics),
# google.rpc.Status for error bodies and google.rpc.RetryInfo for gRPC back-pressure.
MODULES = [
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    "opentelemetry.proto.collector.logs.v1.logs_service_pb2",
    "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
    "google.rpc.status_pb2",
    # RetryInfo: the retry delay of an UNAVAILABLE answer over OTLP/gRPC (in grpc-status-details-bin).
    "google.rpc.error_details_pb2",
]
OUT = os.path.join("src", "generated", "otlp", "descriptor.ts")

# protobufjs: FileDescriptorSet (binary) -> reflection JSON, on stdout.
NODE_CONVERT = """
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor.js';
const root = protobuf.Root.fromDescriptor(readFileSync(process.argv[1]));
process.stdout.write(JSON.stringify(root.toJSON()));
"""


def json_name(name):
    """protoc's lowerCamelCase JSON name of a field (what proto3 JSON and OTLP/JSON use)."""
    out, upper = [], False
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


def fill_json_names(messages):
    for message in messages:
        for field in message.field:
            if not field.json_name:
                field.json_name = json_name(field.name)
        fill_json_names(message.nested_type)


def collect(file_descriptor, out, seen):
    """Depth-first: every dependency before the file that imports it."""
    if file_descriptor.name in seen:
        return
    seen.add(file_descriptor.name)
    for dependency in file_descriptor.dependencies:
        collect(dependency, out, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(proto)
    fill_json_names(proto.message_type)
    out.append(proto)


def main():
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else OUT
    if not os.path.isdir(os.path.join("node_modules", "protobufjs")):
        sys.exit("gen-otlp-descriptor: run from the repository root after npm install")
    files, seen = [], set()
    for name in MODULES:
        collect(importlib.import_module(name).DESCRIPTOR, files, seen)
    descriptor_set = descriptor_pb2.FileDescriptorSet(file=files)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "otlp.pb")
        with open(path, "wb") as f:
            f.write(descriptor_set.SerializeToString())
        converted = subprocess.run(
            ["node", "--input-type=module", "-e", NODE_CONVERT, path],
            check=True,
            capture_output=True,
            text=True,
        )
    root = json.loads(converted.stdout)
    logs = root["nested"]["opentelemetry"]["nested"]["proto"]["nested"]["logs"]["nested"]["v1"]["nested"]["LogRecord"]
    if logs["fields"].get("eventName", {}).get("id") != 12:
        sys.exit("gen-otlp-descriptor: this opentelemetry-proto has no LogRecord.event_name (field 12)")
    metadata = {
        "generator": "scripts/gen-otlp-descriptor.py",
        "opentelemetryProto": version("opentelemetry-proto"),
        "googleapisCommonProtos": version("googleapis-common-protos"),
        "protobuf": version("protobuf"),
        "files": [f.name for f in files],
    }
    with open(out, "w", encoding="utf-8") as f:
        f.write("// GENERATED by scripts/gen-otlp-descriptor.py: do not edit. The OTLP schema (opentelemetry-proto\n")
        f.write("// %s from PyPI, plus google.rpc.Status) in protobufjs's JSON reflection form.\n" % metadata["opentelemetryProto"])
        f.write("\n")
        f.write("export const OTLP_DESCRIPTOR_METADATA = %s as const;\n\n" % json.dumps(metadata, indent=2))
        f.write("export const OTLP_DESCRIPTOR_ROOT: Record<string, unknown> = %s;\n" % json.dumps(root, indent=1, sort_keys=False))
    print("wrote %s (%d files, opentelemetry-proto %s)" % (out, len(files), metadata["opentelemetryProto"]))


if __name__ == "__main__":
    main()
