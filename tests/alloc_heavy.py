# alloc_heavy.py - an allocation-heavy, deterministic Python workload used by
# tests/realprog.sh: dicts, lists, sets, strings, bytes, a JSON round trip and
# a sort.  Prints a digest (and a few counts) that must not depend on which
# malloc the interpreter runs on.
import hashlib
import json
import sys

def rng(seed):
    x = seed & 0xFFFFFFFFFFFFFFFF or 1
    while True:
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        yield x

def main():
    h = hashlib.sha256()
    r = rng(12345)
    # dicts of strings and lists, growing and shrinking
    table = {}
    for i in range(60000):
        k = "key-%d-%x" % (i % 9000, next(r) % 1000)
        v = [next(r) % 1000 for _ in range(next(r) % 12)]
        table[k] = v
        if i % 3 == 0:
            table.pop("key-%d-%x" % ((i * 7) % 9000, next(r) % 1000), None)
    h.update(repr(sorted(table.items())[:2000]).encode())
    # strings of every size, joined and split
    parts = []
    for i in range(20000):
        n = next(r) % 3000 if i % 50 else next(r) % 200000
        parts.append(("%08x" % (next(r) & 0xFFFFFFFF)) * (n // 8 + 1))
    blob = "|".join(parts)
    h.update(blob[::97].encode())
    pieces = blob.split("|")
    assert len(pieces) == len(parts)
    del blob, parts
    # bytes and bytearrays, resized (realloc)
    ba = bytearray()
    for i in range(20000):
        ba += bytes([i & 255]) * (next(r) % 500)
        if len(ba) > 4000000:
            del ba[: len(ba) // 2]
    h.update(bytes(ba[::13]))
    # nested structures through JSON and back
    doc = {
        "users": [
            {"id": i, "name": "user%05d" % i, "tags": ["t%d" % (j % 17) for j in range(i % 9)],
             "score": (next(r) % 100000) / 100.0, "meta": {"a": [i] * (i % 5), "b": None}}
            for i in range(20000)
        ]
    }
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    assert back == doc
    h.update(text.encode())
    # sets and sorting
    s = set()
    for i in range(100000):
        s.add(next(r) % 50000)
    srt = sorted(s)
    h.update(repr(srt[:1000]).encode())
    # many small objects alive at once, then freed in a different order
    objs = [[i, str(i), (i, i + 1)] for i in range(200000)]
    objs = objs[1::2] + objs[::2]
    h.update(repr(objs[-10:]).encode())
    del objs
    print("entries", len(table), "pieces", len(pieces), "bytearray", len(ba),
          "json", len(text), "set", len(s))
    print("digest", h.hexdigest())
    return 0

if __name__ == "__main__":
    sys.exit(main())
