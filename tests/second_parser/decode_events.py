#!/usr/bin/env python3
"""A second, independent protobuf parser over every event the integration
and crash tests stored (and every event type with every field set, from the
codec unit test): the harness writes each log's records out (decrypted
envelope bytes, one file per record) when it is destroyed, and this decodes
each with Google's protobuf for Python (Debian's python3-protobuf), from
modules protoc generates out of proto/ here. A record fails when it does
not decode (a strict parser refuses invalid UTF-8 in a proto3 string), holds
an unknown field, holds a string with a control character (a NUL included;
document_json may hold \\n, \\r and \\t), or names a type its body is not.
Reasons name the file and the field, never the content."""
import argparse
import collections
import glob
import os
import struct
import subprocess
import sys
import tempfile

CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}
NEWLINES = {"\n", "\r", "\t"}


def bad_strings(msg, path=""):
    """Yields the path of every string field holding a control character."""
    for field, value in msg.ListFields():
        name = path + field.name
        values = value if field.label == field.LABEL_REPEATED else [value]
        if field.type == field.TYPE_MESSAGE:
            for v in values:
                yield from bad_strings(v, name + ".")
        elif field.type == field.TYPE_STRING:
            allowed = NEWLINES if field.name == "document_json" else set()
            for v in values:
                if any(c in CONTROL and c not in allowed for c in v):
                    yield name


def check(envelope_cls, event_type, data):
    """Returns what is wrong with one stored event, or None."""
    from google.protobuf.message import DecodeError

    m = envelope_cls()
    try:
        m.ParseFromString(data)
    except DecodeError as e:
        return "does not decode: %s" % type(e).__name__
    size = m.ByteSize()
    m.DiscardUnknownFields()
    if m.ByteSize() != size:
        return "holds unknown fields"
    bad = list(bad_strings(m))
    if bad:
        return "control character in %s" % ", ".join(bad)
    body = m.WhichOneof("body")
    if body is None or event_type.Name(m.type) != "EVENT_TYPE_" + body.upper():
        return "type %d does not match its body %s" % (m.type, body)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protoc", required=True)
    ap.add_argument("--proto", required=True, help="the proto/ directory")
    ap.add_argument("--events", required=True, help="the harness's dump directory")
    ap.add_argument("--min-records", type=int, default=1000)
    ap.add_argument("--min-types", type=int, default=20)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as out:
        protos = sorted(glob.glob(os.path.join(args.proto, "schakel", "v1", "*.proto")))
        subprocess.run([args.protoc, "-I" + args.proto, "--python_out=" + out] + protos,
                       check=True)
        sys.path.insert(0, out)
        from google.protobuf.internal import api_implementation
        from schakel.v1 import envelope_pb2

        files = []  # (name, bytes): one .pb file per event, or a .pbs log dump
        for f in sorted(glob.glob(os.path.join(args.events, "*", "*.pb"))):
            with open(f, "rb") as fh:
                files.append((os.path.relpath(f, args.events), fh.read()))
        runs = {os.path.dirname(name) for name, _ in files}
        for f in sorted(glob.glob(os.path.join(args.events, "*.pbs"))):
            runs.add(f)
            with open(f, "rb") as fh:
                dump = fh.read()
            at = 0
            while at < len(dump):  # u64be(seq) u32be(length) bytes
                if at + 12 > len(dump):
                    sys.exit("%s: a record header is cut short at byte %d" % (f, at))
                seq, n = struct.unpack(">QI", dump[at:at + 12])
                if at + 12 + n > len(dump):
                    sys.exit("%s: record %d is cut short" % (f, seq))
                files.append(("%s/%d" % (os.path.basename(f), seq), dump[at + 12:at + 12 + n]))
                at += 12 + n
        types = collections.Counter()
        failures = []
        for name, data in files:
            problem = check(envelope_pb2.Envelope, envelope_pb2.EventType, data)
            if problem:
                failures.append("%s: %s" % (name, problem))
            else:
                types[envelope_pb2.Envelope.FromString(data).WhichOneof("body")] += 1

    print("second parser: google.protobuf %s (%s implementation)"
          % (sys.modules["google.protobuf"].__version__, api_implementation.Type()))
    print("decoded %d of %d stored events from %d logs and test runs; %d event types: %s"
          % (len(files) - len(failures), len(files), len(runs), len(types),
             " ".join("%s=%d" % kv for kv in sorted(types.items()))))
    for line in failures:
        print("FAIL " + line)
    if failures:
        print("%d stored events are not what docs/events.md promises" % len(failures))
        return 1
    if len(files) < args.min_records or len(types) < args.min_types:
        print("too few events to prove anything (want %d records of %d types): did the "
              "integration tests run with SCHAKEL_TEST_EVENT_DUMP=%s?"
              % (args.min_records, args.min_types, args.events))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
