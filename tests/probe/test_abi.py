"""probe/kernel_structs.py agrees with bpf/http_event.h, as the C compiler lays it out."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import pytest

from probe import abi, kernel_structs
from probe.abi import RecordFlag, RecordKind, Role, StreamDirection
from probe.errors import ProbeAbiMismatch
from tests.ci import require_binary

ROOT = Path(__file__).resolve().parents[2]
STRUCTS: dict[str, type[ctypes.Structure]] = {
    "bw_event": kernel_structs.CEvent,
    "bw_config": kernel_structs.CConfig,
    "bw_conn_key": kernel_structs.CConnKey,
    "bw_comm_key": kernel_structs.CCommKey,
    "bw_conn": kernel_structs.CConn,
    "bw_stash": kernel_structs.CStash,
}


def c_layout(tmp_path: Path) -> dict[str, dict[str, int]]:
    """sizeof and offsetof of every field, printed by a program compiled against the header."""
    lines = [
        "#include <stddef.h>",
        "#include <stdio.h>",
        "#include <linux/types.h>",
        '#include "http_event.h"',
        "int main(void) {",
        'printf("{");',
    ]
    for i, (name, mirror) in enumerate(STRUCTS.items()):
        sep = "," if i else ""
        lines.append(f'printf("{sep}\\"{name}\\": {{\\"sizeof\\": %zu", sizeof(struct {name}));')
        for field, *_ in mirror._fields_:
            lines.append(f'printf(", \\"{field}\\": %zu", offsetof(struct {name}, {field}));')
        lines.append('printf("}");')
    lines += ['printf("}\\n");', "return 0; }"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines))
    binary = tmp_path / "layout"
    subprocess.run(["gcc", "-I", str(ROOT / "bpf"), "-o", str(binary), str(source)], check=True)
    result = subprocess.run([str(binary)], check=True, capture_output=True, text=True)
    layout: dict[str, dict[str, int]] = json.loads(result.stdout)
    return layout


def test_every_ctypes_mirror_has_the_c_size_and_offsets(tmp_path: Path) -> None:
    require_binary("gcc", "to compile bpf/http_event.h; Debian's gcc")
    layout = c_layout(tmp_path)
    for name, mirror in STRUCTS.items():
        expected = layout[name]
        assert ctypes.sizeof(mirror) == expected["sizeof"], name
        for field, *_ in mirror._fields_:
            assert getattr(mirror, field).offset == expected[field], f"{name}.{field}"


def test_the_header_constants_match_the_python_ones() -> None:
    header = (ROOT / "bpf" / "http_event.h").read_text()
    assert f"#define BW_DATA_MAX {abi.DATA_MAX} " in header
    assert f"#define BW_COMM_LEN {abi.COMM_LEN}" in header
    assert f"#define BW_STASH_MAX {abi.STASH_MAX} " in header
    assert f"#define BW_TLS_FD {abi.TLS_FD:#010x}" in header
    assert f"#define BW_TLS_SSL {abi.TLS_SSL:#010x}" in header
    assert f"#define BW_TLS_FD_MASK {abi.TLS_FD_MASK:#010x}" in header
    assert f"BW_COUNTER_MAX = {abi.COUNTER_COUNT}," in header


def a_record(**changes: object) -> abi.Record:
    base = abi.Record(
        kind=RecordKind.DATA,
        direction=StreamDirection.EGRESS,
        role=Role.SERVER,
        flags=RecordFlag.MSG_START,
        tgid=42,
        tid=43,
        fd=7,
        conn_id=99,
        ts_ns=123,
        in_bytes=10,
        in_last_ns=100,
        out_bytes=20,
        out_last_ns=123,
        length=20,
        local_port=8080,
        remote_port=50000,
        seq=3,
        thread_comm="node",
        data=b"HTTP/1.1 200 OK\r\n\r\n",
    )
    return base._replace(**changes)  # type: ignore[arg-type]


def test_a_record_survives_encoding_and_decoding() -> None:
    record = a_record()
    assert abi.decode(abi.encode(record)) == record
    assert record.stream_offset == 0


def test_a_pair_record_decodes_into_the_request_and_then_its_response() -> None:
    request = a_record(
        direction=StreamDirection.INGRESS,
        data=b"GET / HTTP/1.1\r\n\r\n",
        length=18,
        in_bytes=18,
        in_last_ns=100,
        out_bytes=0,
        out_last_ns=0,
        ts_ns=100,
        seq=4,
    )
    response = a_record(
        in_bytes=18,
        in_last_ns=100,
        out_bytes=19,
        out_last_ns=150,
        length=19,
        ts_ns=150,
        seq=5,
        data=b"HTTP/1.1 200 OK\r\n\r\n"[:19],
    )
    blob = abi.encode(response, request=request)
    assert abi.decode_records(blob) == (request, response)
    with pytest.raises(ProbeAbiMismatch, match="decode_records"):
        abi.decode(blob)


def test_a_client_pair_record_decodes_into_the_written_request_and_the_read_response() -> None:
    request = a_record(
        role=Role.CLIENT,
        data=b"GET / HTTP/1.1\r\n\r\n",
        length=18,
        in_bytes=7,
        in_last_ns=60,
        out_bytes=18,
        out_last_ns=100,
        ts_ns=100,
        seq=4,
    )
    response = a_record(
        role=Role.CLIENT,
        direction=StreamDirection.INGRESS,
        in_bytes=26,
        in_last_ns=150,
        out_bytes=18,
        out_last_ns=100,
        length=19,
        ts_ns=150,
        seq=5,
        data=b"HTTP/1.1 200 OK\r\n\r\n"[:19],
    )
    assert abi.decode_records(abi.encode(response, request=request)) == (request, response)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"\x01\x00", "shorter than", id="a record shorter than its header"),
        pytest.param(abi.encode(a_record())[:-3], "payload bytes", id="a payload cut short"),
        pytest.param(b"\x09" + abi.encode(a_record())[1:], "unknown kind", id="an unknown kind"),
    ],
)
def test_records_that_break_the_layout_are_rejected_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(ProbeAbiMismatch, match=message):
        abi.decode(raw)
