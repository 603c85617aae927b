"""ctypes mirrors of the structures in ``bpf/http_event.h``, field for field.

The loader reads and writes the probe's maps through them, and a test compares their sizes and
offsets with the C compiler's. They live apart from ``probe.abi``'s decoder, which is compiled
with mypyc (see setup.py) and mypyc cannot build ctypes structures.
"""

from __future__ import annotations

import ctypes

from probe.abi import COMM_LEN, DATA_MAX, HEADER_SIZE, STASH_MAX


class CEvent(ctypes.Structure):
    """``struct bw_event``."""

    _fields_ = (
        ("kind", ctypes.c_uint8),
        ("direction", ctypes.c_uint8),
        ("role", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("tgid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("conn_id", ctypes.c_uint64),
        ("ts_ns", ctypes.c_uint64),
        ("in_bytes", ctypes.c_uint64),
        ("in_last_ns", ctypes.c_uint64),
        ("out_bytes", ctypes.c_uint64),
        ("out_last_ns", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("captured", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("seq", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
        ("req_ts_ns", ctypes.c_uint64),
        ("req_other_bytes", ctypes.c_uint64),
        ("req_other_last_ns", ctypes.c_uint64),
        ("req_len", ctypes.c_uint32),
        ("req_seq", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * DATA_MAX),
    )


class CConfig(ctypes.Structure):
    """``struct bw_config``."""

    _fields_ = (
        ("self_tgid", ctypes.c_uint32),
        ("capture_bytes", ctypes.c_uint32),
        ("filter_pids", ctypes.c_uint8),
        ("filter_ports", ctypes.c_uint8),
        ("filter_comms", ctypes.c_uint8),
        ("_pad0", ctypes.c_uint8 * 5),
    )


class CConnKey(ctypes.Structure):
    """``struct bw_conn_key``."""

    _fields_ = (("tgid", ctypes.c_uint32), ("fd", ctypes.c_int32))


class CCommKey(ctypes.Structure):
    """``struct bw_comm_key``."""

    _fields_ = (("comm", ctypes.c_char * COMM_LEN),)


class CConn(ctypes.Structure):
    """``struct bw_conn``."""

    _fields_ = (
        ("conn_id", ctypes.c_uint64),
        ("in_bytes", ctypes.c_uint64),
        ("in_last_ns", ctypes.c_uint64),
        ("out_bytes", ctypes.c_uint64),
        ("out_last_ns", ctypes.c_uint64),
        ("out_tail", ctypes.c_uint64),
        ("in_budget", ctypes.c_uint32),
        ("out_budget", ctypes.c_uint32),
        ("seq", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("role", ctypes.c_uint8),
        ("tracked", ctypes.c_uint8),
        ("ignored", ctypes.c_uint8),
        ("stashed", ctypes.c_uint8),
        ("named", ctypes.c_uint8),
        ("prefix_len", ctypes.c_uint8),
        ("prefix_dir", ctypes.c_uint8),
        ("moved", ctypes.c_uint8),
        ("prefix", ctypes.c_uint64),
        ("prefix_ns", ctypes.c_uint64),
    )


class CStash(ctypes.Structure):
    """``struct bw_stash``."""

    _fields_ = (
        ("ts_ns", ctypes.c_uint64),
        ("other_bytes", ctypes.c_uint64),
        ("other_last_ns", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("seq", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * STASH_MAX),
    )


assert CEvent.data.offset == HEADER_SIZE, "probe.abi.HEADER_FORMAT and CEvent disagree"
