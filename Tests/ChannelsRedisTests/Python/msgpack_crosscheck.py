"""Cross-checks the Swift msgpack and JSON serializers against the real Python ones.

Usage: msgpack_crosscheck.py CORPUS OUTPUT

CORPUS (written by PythonCrossCheckTests.swift) is b"CRCORPUS1", a big-endian u32 case count, then per case:
    value                      tagged, see read_value()
    u32 length, bytes          what Swift's MessagePackSerializer produced for the value
    u8 has_json [u32 length, bytes]   what Swift's JSONSerializer produced (absent when the value holds bytes)

For every case this script
    * packs the value with msgpack.packb and, when it has no bytes, json.dumps(...).encode("utf-8"),
      exactly as channels_redis 4.3.0's serializers do, and writes them to OUTPUT for Swift to compare;
    * unpacks Swift's msgpack bytes with msgpack.unpackb and Swift's JSON with json.loads (as channels_redis
      deserializes) and checks that the result is the original value, type for type (int is not float,
      -0.0 is not 0.0, NaN equals NaN, dict key order matters).

OUTPUT is a u32 case count, then per case: u32 length + msgpack bytes, u8 has_json [u32 length + JSON bytes].
Mismatches are printed on stderr; the exit status is 1 if there was any.
"""

import json
import math
import struct
import sys

import msgpack


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("corpus truncated")
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def read_value(self):
        tag = self.take(1)
        if tag == b"N":
            return None
        if tag == b"T":
            return True
        if tag == b"F":
            return False
        if tag == b"I":
            return struct.unpack(">q", self.take(8))[0]
        if tag == b"U":
            return struct.unpack(">Q", self.take(8))[0]
        if tag == b"D":
            return struct.unpack(">d", self.take(8))[0]
        if tag == b"S":
            return self.take(self.u32()).decode("utf-8")
        if tag == b"B":
            return bytes(self.take(self.u32()))
        if tag == b"A":
            return [self.read_value() for _ in range(self.u32())]
        if tag == b"M":
            result = {}
            for _ in range(self.u32()):
                key = self.take(self.u32()).decode("utf-8")
                result[key] = self.read_value()
            return result
        raise ValueError(f"unknown tag {tag!r} at {self.pos - 1}")


def has_bytes(value):
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(has_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(has_bytes(v) for v in value.values())
    return False


def same(a, b):
    """Strict structural equality: types must match exactly and dict order matters."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    return a == b


def short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def main():
    corpus_path, output_path = sys.argv[1], sys.argv[2]
    with open(corpus_path, "rb") as f:
        reader = Reader(f.read())
    if reader.take(9) != b"CRCORPUS1":
        raise ValueError("not a corpus file")
    count = reader.u32()
    out = [struct.pack(">I", count)]
    failures = 0
    for index in range(count):
        value = reader.read_value()
        swift_msgpack = reader.take(reader.u32())
        swift_json = reader.take(reader.u32()) if reader.u8() else None

        packed = msgpack.packb(value)
        out.append(struct.pack(">I", len(packed)))
        out.append(packed)
        if has_bytes(value):
            out.append(b"\x00")
        else:
            dumped = json.dumps(value).encode("utf-8")
            out.append(b"\x01" + struct.pack(">I", len(dumped)))
            out.append(dumped)

        problems = []
        try:
            unpacked = msgpack.unpackb(swift_msgpack)
            if not same(unpacked, value):
                problems.append(f"msgpack.unpackb(swift bytes) = {short(unpacked)}")
        except Exception as error:  # noqa: BLE001 - report anything unpackb raises
            problems.append(f"msgpack.unpackb(swift bytes) raised {error!r}")
        if has_bytes(value):
            if swift_json is not None:
                problems.append("Swift produced JSON for a value holding bytes")
        elif swift_json is None:
            problems.append("Swift produced no JSON")
        else:
            try:
                loaded = json.loads(swift_json)
                if not same(loaded, value):
                    problems.append(f"json.loads(swift JSON) = {short(loaded)}")
            except Exception as error:  # noqa: BLE001
                problems.append(f"json.loads(swift JSON) raised {error!r}")
        if problems:
            failures += 1
            if failures <= 20:
                print(f"case {index}: value {short(value)}", file=sys.stderr)
                for problem in problems:
                    print(f"    {problem}", file=sys.stderr)

    if reader.pos != len(reader.data):
        raise ValueError("trailing data in corpus")
    with open(output_path, "wb") as f:
        f.write(b"".join(out))
    print(f"{count} cases, {failures} mismatching in Python")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
