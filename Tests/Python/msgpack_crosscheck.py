"""Cross-checks the Swift msgpack and JSON serializers against the real Python ones.

Usage: msgpack_crosscheck.py CORPUS OUTPUT
       msgpack_crosscheck.py codable SWIFT_MESSAGE OUTPUT

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

The `codable` form checks ChannelMessageEncoder's dates and Data (see check_codable()) and writes, as msgpack, the
dates and bytes a Python peer sends, for ChannelMessageDecoder to read (see python_dates_and_bytes()).
"""

import base64
import json
import math
import struct
import sys
import time
from datetime import datetime, timedelta, timezone

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


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def django_json(value):
    # Imported here so that the corpus check does not need Django; channels (a dependency of
    # channels_redis) installs it.
    from django.core.serializers.json import DjangoJSONEncoder

    return DjangoJSONEncoder().default(value)


def from_iso(text):
    # Python 3.11's fromisoformat reads "Z"; earlier versions need "+00:00".
    if sys.version_info < (3, 11):
        text = text.replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def check_codable(message):
    """Checks what ChannelMessageEncoder made of dates and Data; returns a list of problems.

    message["expected"][i] is [unix seconds, microseconds] of the i-th date, which Swift encoded as
    message["iso"][i] (the default strategy), message["seconds"][i] (.secondsSince1970) and
    message["milliseconds"][i] (.millisecondsSince1970). message["payloads"] are Data (default strategy),
    message["payloads_base64"] the same Data with .base64, message["payloads_expected"] their bytes as
    ChannelMessage.binary.
    """
    problems = []
    expected = [EPOCH + timedelta(seconds=s, microseconds=us) for s, us in message["expected"]]
    if not len(expected) == len(message["iso"]) == len(message["seconds"]) == len(message["milliseconds"]):
        return ["date lists differ in length"]
    for index, (instant, text, seconds, millis) in enumerate(
        zip(expected, message["iso"], message["seconds"], message["milliseconds"])
    ):
        # The default: what DjangoJSONEncoder writes, and fromisoformat reads back to the millisecond.
        if type(text) is not str:
            problems.append(f"iso[{index}] is {type(text).__name__}, not str")
            continue
        django = django_json(instant)
        if text != django:
            problems.append(f"iso[{index}]: Swift wrote {text!r}, DjangoJSONEncoder writes {django!r} for {instant!r}")
        parsed = from_iso(text)
        if parsed.utcoffset() != timedelta(0):
            problems.append(f"iso[{index}]: {text!r} is not UTC")
        if parsed != instant.replace(microsecond=instant.microsecond // 1000 * 1000):
            problems.append(f"iso[{index}]: fromisoformat({text!r}) = {parsed!r}, expected {instant!r} to the millisecond")
        # .secondsSince1970: a float time.time() would give; pure arithmetic, no platform gmtime limits.
        if type(seconds) is not float:
            problems.append(f"seconds[{index}] is {type(seconds).__name__}, not float")
        elif abs(EPOCH + timedelta(seconds=seconds) - instant) > timedelta(microseconds=1, seconds=2 * math.ulp(seconds)):
            problems.append(f"seconds[{index}]: {seconds!r} is {EPOCH + timedelta(seconds=seconds)!r}, expected {instant!r}")
        # .millisecondsSince1970: an int, rounded to the nearest millisecond.
        if type(millis) is not int:
            problems.append(f"milliseconds[{index}] is {type(millis).__name__}, not int")
        elif abs(EPOCH + timedelta(milliseconds=millis) - instant) > timedelta(microseconds=501):
            problems.append(f"milliseconds[{index}]: {millis!r} is {EPOCH + timedelta(milliseconds=millis)!r}, expected {instant!r}")
    for index, (payload, encoded, bytes_) in enumerate(
        zip(message["payloads"], message["payloads_base64"], message["payloads_expected"], strict=True)
    ):
        if type(payload) is not bytes or payload != bytes_:
            problems.append(f"payloads[{index}] is {short(payload)}, expected bytes {short(bytes_)}")
        if type(encoded) is not str or base64.b64decode(encoded, validate=True) != bytes_:
            problems.append(f"payloads_base64[{index}] is {short(encoded)}, expected base64 of {short(bytes_)}")
    return problems


def python_dates_and_bytes():
    """What a Python peer sends: time.time() floats, int timestamps, isoformat() and Django strings, bytes.

    "floats" and "ints" are Unix seconds (Swift compares its Dates with the numbers themselves); "strings[i]" is
    the instant [unix seconds, microseconds] in "strings_expected[i]"; "bytes[i]" has the hex "bytes_hex[i]".
    """
    now = time.time()
    floats = [now, 1796153637.123456, 0.0, -1.5, 1e9 + 0.5, -62135596800.0, 253402300799.999]
    ints = [int(now), 0, -1, 1796153637, -62135596800, 253402300799]
    aware = [
        datetime(2026, 12, 1, 19, 33, 57, 123456, tzinfo=timezone.utc),
        datetime(2026, 12, 1, 19, 33, 57, tzinfo=timezone.utc),
        datetime(2026, 12, 1, 19, 33, 57, 123000, tzinfo=timezone.utc),
        datetime(2026, 12, 2, 1, 3, 57, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 12, 1, 11, 33, 57, 1, tzinfo=timezone(timedelta(hours=-8))),
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=14))),
        datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc),
        datetime(1900, 2, 28, 23, 59, 59, tzinfo=timezone.utc),
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(1, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc),
        datetime.now(timezone.utc),
        datetime.now(timezone.utc).astimezone(timezone(timedelta(hours=-3, minutes=-30))),
    ]
    strings = (
        [value.isoformat() for value in aware]
        + [str(value) for value in aware[:4]]  # "2026-12-01 19:33:57.123456+00:00"
        + [django_json(value) for value in aware]
        + [value.isoformat(timespec="milliseconds") for value in aware[:6]]
        + [value.strftime("%Y-%m-%dT%H:%M:%S%z") for value in aware[3:6]]  # "+0530"
    )
    expected = [list(divmod((from_iso(text) - EPOCH) // timedelta(microseconds=1), 1_000_000)) for text in strings]
    blobs = [b"", b"\x00\xff", bytes(range(256)), bytes(i % 251 for i in range(70_000)), bytearray(b"ab")]
    return {
        "type": "codable.check",
        "floats": floats,
        "ints": ints,
        "strings": strings,
        "strings_expected": expected,
        "bytes": blobs,
        "bytes_hex": [bytes(blob).hex() for blob in blobs],
    }


def codable(message_path, output_path):
    with open(message_path, "rb") as f:
        message = msgpack.unpackb(f.read())
    problems = check_codable(message)
    with open(output_path, "wb") as f:
        f.write(msgpack.packb(python_dates_and_bytes()))
    for problem in problems[:40]:
        print(problem, file=sys.stderr)
    print(f"{len(message['iso'])} dates and {len(message['payloads'])} payloads from Swift, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "codable":
        codable(sys.argv[2], sys.argv[3])
    else:
        main()
