"""What reading the ring buffer costs the agent per record: bytes then decode, or one pass in C.

Run:  .venv/bin/python -m bench.ring_drain [--rounds 30] [--batches 2000]

A memfd laid out as a BPF ring buffer (tests/probe/fake_ring.py) is filled with PAIR records of
an nginx-like request and JSON response, ten per batch, and read back two ways in alternating
order each round: ``MappedRingBuffer.drain`` (a bytes object per record, read with struct in
mypyc) followed by ``decode_records`` on each, which the agent did until this bench was
written, and ``drain_records``, which reads and decodes in one pass in probe/_records.c. Prints
the median time per ring-buffer record of each and their paired difference, and writes
bench/results/ring_drain.json. No eBPF: it runs anywhere the extensions are built.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_results
from probe import abi
from probe.abi import Record, RecordKind, Role, StreamDirection
from probe.ringbuf import MappedRingBuffer
from tests.probe.fake_ring import fake_ring

PER_BATCH = 10
REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\nConnection: keep-alive\r\n\r\n{"hello":"world"}'
)


def pair_record() -> bytes:
    def record(direction: StreamDirection, seq: int, data: bytes) -> Record:
        return Record(RecordKind.DATA, direction, Role.SERVER, 1, 4242, 4242, 7, 123456789,
                      10**15 + seq, 10**6, 10**15, 10**6, 10**15, len(data), 8080, 50000, seq,
                      "", data)  # fmt: skip

    response = record(StreamDirection.EGRESS, 1, RESPONSE)
    return abi.encode(response, request=record(StreamDirection.INGRESS, 0, REQUEST))


def bytes_then_decode(reader: MappedRingBuffer) -> int:
    return len(abi.decode_batch(reader.drain()).records)


def in_one_pass(reader: MappedRingBuffer) -> int:
    return len(reader.drain_records().records)


WAYS: dict[str, Callable[[MappedRingBuffer], int]] = {
    "drain, then decode_records": bytes_then_decode,
    "drain_records (C)": in_one_pass,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    if abi.drain_decoded is None:
        print("bench.ring_drain: probe/_records.c is not built here", file=sys.stderr)
        return 1
    blob = pair_record()
    ns: dict[str, list[float]] = {name: [] for name in WAYS}
    with fake_ring() as ring:
        reader = ring.reader()
        names = list(WAYS)
        for i in range(args.rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                spent = 0.0
                for _ in range(args.batches):
                    for _ in range(PER_BATCH):
                        ring.put(blob, publish=False)
                    ring.publish()
                    start = time.perf_counter()
                    got = WAYS[name](reader)
                    spent += time.perf_counter() - start
                    assert got == 2 * PER_BATCH, f"{name} read {got} records"
                ns[name].append(spent / (args.batches * PER_BATCH) * 1e9)
    before, after = (ns[name] for name in names)
    rows = {name: statistics.median(values) for name, values in ns.items()}
    difference = statistics.median(b - a for a, b in zip(before, after, strict=True))
    print(f"{'way':<28} {'ns per PAIR record':>18}")
    for name, value in rows.items():
        print(f"{name:<28} {value:>18.0f}")
    print(f"{'paired difference':<28} {difference:>+18.0f}  ({args.rounds} rounds)")
    write_results(
        "ring_drain",
        {
            "rounds": args.rounds,
            "records_per_round": args.batches * PER_BATCH,
            "ns_per_pair_record": rows,
            "median_paired_difference_ns": difference,
            "rounds_faster": sum(b < a for a, b in zip(before, after, strict=True)),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
