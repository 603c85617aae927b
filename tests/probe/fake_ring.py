"""A memfd laid out as the kernel lays out a BPF ring buffer, standing in for one.

The layout (kernel/bpf/ringbuf.c): a consumer page the reader writes, a producer page, then the
data area, which the kernel maps twice in a row so that a record wrapping around its end reads
as one piece. The fake writes such a record in one piece past the end instead, which is what a
reader sees. Both positions sit at the start of their pages, as probe/_priority.c and
probe.ringbuf read them.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from probe.ringbuf import HEADER, MappedRingBuffer

PAGE = mmap.PAGESIZE


@dataclass
class FakeRing:
    """The kernel's side of a ring of ``data_size`` bytes."""

    fd: int
    pages: mmap.mmap
    data_size: int
    producer: int = 0  # where the next record goes; readers see it once published

    @property
    def consumer(self) -> int:
        position: int = struct.unpack_from("Q", self.pages, 0)[0]
        return position

    def put(self, payload: bytes, *, flags: int = 0, publish: bool = True) -> None:
        """One record as the kernel reserves it: header, payload, padding to 8 bytes."""
        at = 2 * PAGE + (self.producer & (self.data_size - 1))
        struct.pack_into("II", self.pages, at, len(payload) | flags, 0)
        self.pages[at + HEADER : at + HEADER + len(payload)] = payload
        self.producer += (len(payload) + HEADER + 7) & ~7
        if publish:
            self.publish()

    def publish(self) -> None:
        struct.pack_into("Q", self.pages, PAGE, self.producer)

    def backlog(self, unread: int) -> None:
        """Positions only: the producer ``unread`` bytes ahead of the consumer."""
        struct.pack_into("Q", self.pages, PAGE, self.consumer + unread)

    def drained(self) -> None:
        """Positions only: the consumer caught up with the producer."""
        struct.pack_into("Q", self.pages, 0, struct.unpack_from("Q", self.pages, PAGE)[0])

    def reader(self) -> MappedRingBuffer:
        return MappedRingBuffer(self.fd, self.data_size)


@contextmanager
def fake_ring(data_size: int = 4 * PAGE) -> Iterator[FakeRing]:
    fd = os.memfd_create("fake-ring")
    size = 2 * PAGE + 2 * data_size
    os.ftruncate(fd, size)
    pages = mmap.mmap(fd, size)
    try:
        yield FakeRing(fd, pages, data_size)
    finally:
        pages.close()
        os.close(fd)
