"""Prints channels_redis's own shard choice for every name and ring size it is given.

Usage: consistent_hash.py NAMES_JSON MAX_RING_SIZE

NAMES_JSON is a file holding a JSON array of strings. For each name, one line is printed:
its binascii.crc32, then channels_redis.utils._consistent_hash(name, n) for n = 1 ... MAX_RING_SIZE,
separated by spaces. Used by ConsistentHashTests to check the Swift port bit for bit.
"""

import binascii
import json
import sys

from channels_redis.utils import _consistent_hash


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        names = json.load(f)
    max_ring = int(sys.argv[2])
    out = []
    for name in names:
        row = [binascii.crc32(name.encode("utf8"))]
        row.extend(_consistent_hash(name, n) for n in range(1, max_ring + 1))
        out.append(" ".join(map(str, row)))
    sys.stdout.write("\n".join(out))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
