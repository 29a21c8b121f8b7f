"""Parquet files with one schema -> one Parquet file, by copying their bytes.

A Parquet file is `PAR1`, its column chunks, a footer (the Thrift compact-encoded FileMetaData:
schema, row groups, offsets of every column chunk) and the footer's length, `PAR1`. Files
written with the same schema and options join into one by copying each file's column chunks
one after the other and writing one footer that lists all their row groups, with the offsets
moved to where the chunks now are. Nothing is decoded or compressed again, so the workers
encode in parallel and the join costs a file copy: the result is the file one writer would
have written with the same row groups.

Only the footer is parsed; the codec below reads and writes the compact protocol generically
(a struct is a list of [field id, type, value]) and writes back exactly what it read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"PAR1"
# Thrift compact protocol types.
_TRUE, _FALSE, _I8, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
# FileMetaData fields, RowGroup fields, ColumnChunk fields, ColumnMetaData fields (parquet.thrift)
_SCHEMA, _NUM_ROWS, _ROW_GROUPS, _KEY_VALUES = 2, 3, 4, 5
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_CM_OFFSETS = (9, 10, 11, 14)  # data, index, dictionary page; bloom filter
_FOOTER_TAIL = 8  # footer length (4 bytes, little-endian) + MAGIC


def concat_parquet(
    sources: Sequence[Path], out: Path, keep_key: Callable[[bytes], bool] = lambda k: True
) -> int:
    """Write the row groups of `sources` (in order) to `out`; return the number of rows.
    Key/value metadata is the first source's, less the keys `keep_key` refuses."""
    if not sources:
        raise ValueError("nothing to concatenate")
    first: list[list[Any]] | None = None
    row_groups: list[Any] = []
    rows = 0
    with open(out, "wb") as dst:
        dst.write(MAGIC)
        for path in sources:
            with open(path, "rb") as src:
                meta, body_end = _read_footer(src, path)
                if first is None:
                    first = meta
                elif _field(meta, _SCHEMA) != _field(first, _SCHEMA):
                    raise ValueError(f"{path}: schema differs from {sources[0]}")
                delta = dst.tell() - len(MAGIC)
                _copy(src, dst, len(MAGIC), body_end - len(MAGIC))
            for group in _field(meta, _ROW_GROUPS, (_STRUCT, []))[1]:
                _move_row_group(group, delta, len(row_groups))
                row_groups.append(group)
            rows += _field(meta, _NUM_ROWS, 0)
        assert first is not None
        _set(first, _NUM_ROWS, _I64, rows)
        _set(first, _ROW_GROUPS, _LIST, (_STRUCT, row_groups))
        pairs = _field(first, _KEY_VALUES)
        if pairs is not None:
            kept = [kv for kv in pairs[1] if keep_key(_field(kv, 1))]
            _set(first, _KEY_VALUES, _LIST, (_STRUCT, kept))
        footer = bytearray()
        _write_struct(footer, first)
        dst.write(footer)
        dst.write(struct.pack("<I", len(footer)) + MAGIC)
    return rows


def _read_footer(src: BinaryIO, path: Path) -> tuple[list[list[Any]], int]:
    """(FileMetaData, where the column chunks end) of an open Parquet file."""
    size = src.seek(0, os.SEEK_END)
    src.seek(size - _FOOTER_TAIL)
    tail = src.read(_FOOTER_TAIL)
    if size < 12 or tail[4:] != MAGIC:
        raise ValueError(f"{path}: not a Parquet file")
    length = struct.unpack("<I", tail[:4])[0]
    body_end = size - _FOOTER_TAIL - length
    src.seek(body_end)
    reader = _Reader(src.read(length))
    return reader.struct(), body_end


def _copy(src: BinaryIO, dst: BinaryIO, start: int, length: int) -> None:
    dst.flush()
    done = 0
    try:
        while done < length:  # in the kernel where it can (no trip through user space)
            n = os.copy_file_range(src.fileno(), dst.fileno(), length - done, start + done)
            if n == 0:
                break
            done += n
    except (AttributeError, OSError):
        pass
    src.seek(start + done)
    while done < length:
        chunk = src.read(min(length - done, 16 << 20))
        if not chunk:
            raise ValueError("Parquet file shorter than its footer says")
        dst.write(chunk)
        done += len(chunk)
    dst.seek(0, os.SEEK_END)


def _move_row_group(group: list[list[Any]], delta: int, ordinal: int) -> None:
    """Shift every file offset of a row group by `delta`; renumber it."""
    _shift(group, _RG_FILE_OFFSET, delta)
    if _field(group, _RG_ORDINAL) is not None:
        _set(group, _RG_ORDINAL, _I16, ordinal)
    for chunk in _field(group, _RG_COLUMNS, (_STRUCT, []))[1]:
        for fid in (_CC_FILE_OFFSET, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX):
            _shift(chunk, fid, delta)
        meta = _field(chunk, _CC_META)
        for fid in _CM_OFFSETS if meta is not None else ():
            _shift(meta, fid, delta)


def _shift(fields: list[list[Any]], fid: int, delta: int) -> None:
    for f in fields:
        if f[0] == fid and f[2]:  # 0: unset by the writer (an offset is never 0: MAGIC is)
            f[2] += delta


def _field(fields: list[list[Any]], fid: int, default: Any = None) -> Any:
    return next((f[2] for f in fields if f[0] == fid), default)


def _set(fields: list[list[Any]], fid: int, ttype: int, value: Any) -> None:
    for f in fields:
        if f[0] == fid:
            f[1], f[2] = ttype, value
            return
    fields.append([fid, ttype, value])
    fields.sort(key=lambda f: f[0])


# --- Thrift compact protocol ---------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def struct(self) -> list[list[Any]]:
        fields: list[list[Any]] = []
        fid = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            ttype, delta = head & 0x0F, head >> 4
            fid = fid + delta if delta else self.zigzag()
            # a boolean field's value is its type
            value = ttype if ttype in (_TRUE, _FALSE) else self.value(ttype)
            fields.append([fid, ttype, value])

    def value(self, ttype: int) -> Any:
        if ttype in (_I16, _I32, _I64):
            return self.zigzag()
        if ttype == _BINARY:
            n = self.varint()
            self.pos += n
            return self.data[self.pos - n : self.pos]
        if ttype == _STRUCT:
            return self.struct()
        if ttype in (_LIST, _SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            etype = head & 0x0F
            return (etype, [self.value(etype) for _ in range(size)])
        if ttype in (_TRUE, _FALSE, _I8):  # booleans inside a container take a byte
            return self.byte()
        if ttype == _DOUBLE:
            self.pos += 8
            return self.data[self.pos - 8 : self.pos]
        if ttype == _MAP:
            size = self.varint()
            kinds = self.byte() if size else 0
            ktype, vtype = kinds >> 4, kinds & 0x0F
            return (kinds, [(self.value(ktype), self.value(vtype)) for _ in range(size)])
        raise ValueError(f"unknown Thrift type {ttype} in a Parquet footer")


def _write_varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_zigzag(out: bytearray, n: int) -> None:
    _write_varint(out, (n << 1) ^ (n >> 63))


def _write_struct(out: bytearray, fields: list[list[Any]]) -> None:
    last = 0
    for fid, ttype, value in fields:
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | ttype)
        else:
            out.append(ttype)
            _write_zigzag(out, fid)
        last = fid
        if ttype not in (_TRUE, _FALSE):
            _write_value(out, ttype, value)
    out.append(0)


def _write_value(out: bytearray, ttype: int, value: Any) -> None:
    if ttype in (_I16, _I32, _I64):
        _write_zigzag(out, value)
    elif ttype == _BINARY:
        _write_varint(out, len(value))
        out += value
    elif ttype == _STRUCT:
        _write_struct(out, value)
    elif ttype in (_LIST, _SET):
        etype, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | etype)
        else:
            out.append(0xF0 | etype)
            _write_varint(out, len(items))
        for item in items:
            _write_value(out, etype, item)
    elif ttype in (_TRUE, _FALSE, _I8):
        out.append(value & 0xFF)
    elif ttype == _DOUBLE:
        out += value
    elif ttype == _MAP:
        kinds, pairs = value
        _write_varint(out, len(pairs))
        if pairs:
            out.append(kinds)
        for k, v in pairs:
            _write_value(out, kinds >> 4, k)
            _write_value(out, kinds & 0x0F, v)
    else:
        raise ValueError(f"unknown Thrift type {ttype}")
