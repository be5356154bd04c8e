"""MeshGraphNets TFRecord datasets, read and written in pure Python (no TensorFlow).

A `<split>.tfrecord` file is a sequence of records, each framed as::

    uint64 length                       (little endian)
    uint32 masked_crc32c(length bytes)
    byte   data[length]                 (a serialized tf.train.Example)
    uint32 masked_crc32c(data)

with `masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)`. MeshGraphNets stores
one trajectory per record: every field is a single bytes_list entry holding the raw
little-endian array bytes, reshaped with `meta.json`'s shape (see `meshsim.data.meta`).

CRC32C (Castagnoli) is computed with numpy: the data is cut into up to 32768 lanes whose
CRCs advance together four bytes per step (two 64K-entry tables), then the lane CRCs are
folded pairwise with "shift by 2**k zero bytes" operators: about 1 GB/s on one idle core.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np

from meshsim.atomic import AtomicWriter
from meshsim.data import example_proto
from meshsim.data.meta import (
    DatasetFormatError,
    ensure_meta,
    feature_dtype,
    length_field,
    load_meta,
    resolve_shape,
    validate_meta,
    validate_trajectory,
)
from meshsim.validation import check_int

__all__ = [
    "TFRecordWriter",
    "crc32c",
    "decode_trajectory",
    "encode_trajectory",
    "index_tfrecord",
    "iter_tfrecord_records",
    "iter_tfrecord_trajectories",
    "masked_crc32c",
    "read_tfrecord_trajectory",
    "tfrecord_path",
    "write_tfrecord_split",
]

logger = logging.getLogger(__name__)

_POLY = 0x82F63B78  # CRC32C polynomial, bit-reversed
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")  # length, masked crc of length
_FOOTER = struct.Struct("<I")
_MAX_LANES = 32768  # numpy lanes: enough to amortize the per-op overhead (~2 us)
_MIN_VECTOR_BYTES = 2048  # below this the plain table loop is faster


# --------------------------------------------------------------------------- CRC32C


@functools.cache
def _byte_table() -> tuple[int, ...]:
    """The classic 256-entry table: register update for one input byte."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        table.append(c)
    return tuple(table)


def _crc_scalar(data: bytes, state: int) -> int:
    table = _byte_table()
    for byte in data:
        state = table[(state ^ byte) & 0xFF] ^ (state >> 8)
    return state


def _apply(columns: tuple[int, ...], x: int) -> int:
    """Applies a GF(2) 32x32 matrix, given as its 32 column images, to `x`."""
    out = 0
    i = 0
    while x:
        if x & 1:
            out ^= columns[i]
        x >>= 1
        i += 1
    return out


@functools.cache
def _zeros_operator(log2_bytes: int) -> tuple[int, ...]:
    """The linear map advancing a raw CRC register over `2**log2_bytes` zero bytes."""
    if log2_bytes == 0:
        table = _byte_table()
        return tuple(table[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(32))
    half = _zeros_operator(log2_bytes - 1)
    return tuple(_apply(half, c) for c in half)


def _operator_tables(log2_bytes: int, bits: int) -> np.ndarray:
    """`[32 / bits, 2**bits] uint32` tables applying `_zeros_operator(log2_bytes)` to a
    register one `bits`-wide slice at a time (the images XOR together)."""
    columns = np.array(_zeros_operator(log2_bytes), dtype=np.uint32)
    values = np.arange(1 << bits)
    out = np.zeros((32 // bits, 1 << bits), np.uint32)
    for part in range(32 // bits):
        for bit in range(bits):
            out[part] ^= np.where((values >> bit) & 1, columns[bits * part + bit], np.uint32(0))
    return out


@functools.cache
def _word_tables() -> np.ndarray:
    """`[2, 65536] uint32`: advance over 4 zero bytes, by 16-bit halves (512 KiB)."""
    return _operator_tables(2, 16)


@functools.cache
def _fold_tables(log2_bytes: int) -> np.ndarray:
    """`[4, 256] uint32`: advance over `2**log2_bytes` zero bytes, by bytes."""
    return _operator_tables(log2_bytes, 8)


def _shift(state: int, num_bytes: int) -> int:
    """Advances a raw CRC register over `num_bytes` zero bytes (O(log n))."""
    k = 0
    while num_bytes:
        if num_bytes & 1:
            state = _apply(_zeros_operator(k), state)
        num_bytes >>= 1
        k += 1
    return state


def _lane_crcs(words: np.ndarray) -> np.ndarray:
    """Raw CRCs (zero initial register) of each row of `words [K, L/4] uint32`.

    Per 4-byte word: `state = Z4(state ^ word)`, with `Z4` the linear "advance over four
    bytes" map applied as two 64K-entry lookups (6 numpy ops per step on K lanes).
    """
    low, high = _word_tables()
    rows = np.ascontiguousarray(words.T)  # [L/4, K]: one contiguous row per step
    state = np.zeros(words.shape[0], np.uint32)
    acc, idx = np.empty_like(state), np.empty_like(state)
    mask = np.uint32(0xFFFF)
    for row in rows:
        state ^= row
        np.bitwise_and(state, mask, out=idx)
        np.take(low, idx, out=acc)
        np.right_shift(state, 16, out=idx)
        np.take(high, idx, out=state)
        state ^= acc
    return state


def _crc_raw(data: np.ndarray, state: int) -> int:
    """Advances the raw (unmasked, no final xor) register `state` over `data [n] uint8`."""
    while len(data) >= _MIN_VECTOR_BYTES:
        n = len(data)
        log_lane = max(6, (n // _MAX_LANES).bit_length() - 1)  # lane length 2**log_lane bytes
        log_lanes = min(_MAX_LANES.bit_length() - 1, (n >> log_lane).bit_length() - 1)
        main = 1 << (log_lane + log_lanes)
        words = data[:main].view("<u4").reshape(1 << log_lanes, -1)
        lanes = _lane_crcs(words)
        # Fold neighbours, doubling the lane length each level:
        # crc(A + B) = shift(crc(A), len(B)) ^ crc(B) for raw (zero-init) registers.
        for level in range(log_lane, log_lane + log_lanes):
            tables = _fold_tables(level)
            left, right = lanes[0::2], lanes[1::2]
            shifted = tables[0][left & 0xFF] ^ tables[1][(left >> 8) & 0xFF]
            shifted ^= tables[2][(left >> 16) & 0xFF] ^ tables[3][left >> 24]
            lanes = shifted ^ right
        state = _shift(state, main) ^ int(lanes[0])
        data = data[main:]
    return _crc_scalar(data.tobytes(), state)


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as used by TFRecord, iSCSI and ext4.

    Args:
      data: the bytes (any C-contiguous buffer).
      crc: the CRC of preceding data, to continue a running checksum.

    Returns:
      The CRC as an int in `[0, 2**32)`; `crc32c(b"123456789") == 0xE3069283`.
    """
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    return _crc_raw(buf, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """The TFRecord masked CRC: `((crc >> 15) | (crc << 17)) + 0xa282ead8 mod 2**32`."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- records


def tfrecord_path(directory: str | os.PathLike, split: str) -> str:
    """`<directory>/<split>.tfrecord`."""
    return os.path.join(os.fspath(directory), f"{split}.tfrecord")


def _read_record(
    f: BinaryIO, path: str, index: int, offset: int, file_size: int, verify_data_crc: bool
) -> bytes | None:
    """Reads the record at `offset` (the file position); None at a clean end of file."""
    where = f"{path}: record {index} at byte offset {offset}"
    header = f.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise DatasetFormatError(
            f"{where}: truncated file: {len(header)} of {_HEADER.size} header bytes"
        )
    length, length_crc = _HEADER.unpack(header)
    if masked_crc32c(header[:8]) != length_crc:
        raise DatasetFormatError(f"{where}: corrupt record: CRC mismatch on the length field")
    remaining = file_size - offset - _HEADER.size - _FOOTER.size
    if length > remaining:
        raise DatasetFormatError(
            f"{where}: truncated file: record declares {length} data bytes, "
            f"{max(remaining, 0)} available"
        )
    data = f.read(length)
    footer = f.read(_FOOTER.size)
    if len(data) < length or len(footer) < _FOOTER.size:
        raise DatasetFormatError(f"{where}: truncated file while reading {length} data bytes")
    if verify_data_crc and masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
        raise DatasetFormatError(f"{where}: corrupt record: CRC mismatch on the data")
    return data


def iter_tfrecord_records(
    path: str | os.PathLike, *, verify_data_crc: bool = True, start: int = 0
) -> Iterator[bytes]:
    """Streams the payloads of a TFRecord file, one record in memory at a time.

    Args:
      path: the `.tfrecord` file (uncompressed).
      verify_data_crc: check each payload's CRC (costs ~10-20 ms per 10 MB). The
        length CRC is always checked.
      start: byte offset of the first record to read (from `index_tfrecord`).

    Raises:
      DatasetFormatError: CRC mismatch or truncation, naming file, record index and offset.
    """
    path = os.fspath(path)
    check_int("start", start, minimum=0, expected="a byte offset (an int ≥ 0)")
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        f.seek(start)
        offset, index = start, 0
        while True:
            data = _read_record(f, path, index, offset, file_size, verify_data_crc)
            if data is None:
                return
            yield data
            offset += _HEADER.size + len(data) + _FOOTER.size
            index += 1


def index_tfrecord(path: str | os.PathLike) -> np.ndarray:
    """Byte offsets `[num_records] int64` of every record, reading only the headers.

    Checks each length CRC and that the last record is complete, so `len()` of the
    result is the record count. Cost: one seek per record.
    """
    path = os.fspath(path)
    offsets = []
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < file_size:
            where = f"{path}: record {len(offsets)} at byte offset {offset}"
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise DatasetFormatError(f"{where}: truncated file: incomplete header")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise DatasetFormatError(f"{where}: corrupt record: CRC mismatch on the length")
            end = offset + _HEADER.size + length + _FOOTER.size
            if end > file_size:
                raise DatasetFormatError(
                    f"{where}: truncated file: record needs {end - offset} bytes, "
                    f"{file_size - offset} available"
                )
            offsets.append(offset)
            offset = end
            f.seek(offset)
    return np.asarray(offsets, dtype=np.int64)


class TFRecordWriter(AtomicWriter):
    """Writes framed records to `path`, crash-safe: data goes to a temporary sibling
    (`meshsim.atomic.AtomicWriter`) that is renamed onto `path` only by a successful
    `close()` (or a clean `with` exit)."""

    def __init__(self, path: str | os.PathLike):
        self.num_records = 0
        super().__init__(path)

    def _open(self, tmp: str) -> BinaryIO:
        return open(tmp, "wb")

    def _finish(self, file: BinaryIO) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()

    def write(self, record: bytes | bytearray | memoryview) -> None:
        """Appends one record (its payload bytes)."""
        file = self._handle()
        if not isinstance(record, bytes | bytearray | memoryview):
            raise TypeError(f"record: expected bytes, got {type(record).__name__}")
        length = struct.pack("<Q", len(record))
        file.write(length + struct.pack("<I", masked_crc32c(length)))
        file.write(record)
        file.write(struct.pack("<I", masked_crc32c(record)))
        self.num_records += 1

    def close(self) -> None:
        """Flushes and atomically publishes the file under its real name (`commit`); a
        no-op once closed."""
        if not self.closed:
            self.commit()

    def abort(self) -> None:
        """Discards everything written; the real path is left untouched (`discard`)."""
        self.discard()


# --------------------------------------------------------------------------- trajectories


def _field_bytes(features: Mapping[str, Any], name: str, dtype: np.dtype, where: str):
    if name not in features:
        raise DatasetFormatError(f"{where}: field {name!r} (declared in meta.json) is missing")
    value = features[name]
    if isinstance(value, np.ndarray):  # float_list / int64_list: cast to the meta dtype
        return value.astype(dtype)
    if not value:
        return np.zeros(0, dtype)
    raw = value[0] if len(value) == 1 else b"".join(value)
    if len(raw) % dtype.itemsize:
        raise DatasetFormatError(
            f"{where}: field {name!r} holds {len(raw)} bytes, not a multiple of "
            f"{dtype.itemsize} ({dtype.name})"
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def decode_trajectory(
    record: bytes | bytearray | memoryview, meta: Mapping[str, Any], *, where: str = "record"
) -> dict[str, np.ndarray]:
    """Decodes one serialized `tf.train.Example` into a trajectory dict.

    Each feature of `meta` becomes a native-endian, owned array with meta's shape (-1
    resolved); static fields keep their leading axis of 1 (not tiled). A `dynamic_varlen`
    field `x` stays concatenated along axis 0 and comes with `length_x [T] int32`.
    Features stored as float_list/int64_list instead of raw bytes are cast to meta's dtype.

    Raises:
      DatasetFormatError: a field is missing, its size does not fit meta's shape, or the
        decoded trajectory fails `validate_trajectory` (another trajectory length, a NaN).
    """
    try:
        features = example_proto.decode_example(record)
    except ValueError as e:
        raise DatasetFormatError(f"{where}: not a valid tf.train.Example: {e}") from None
    out: dict[str, np.ndarray] = {}
    for name, spec in meta["features"].items():
        flat = _field_bytes(features, name, feature_dtype(spec), where)
        try:
            out[name] = flat.reshape(resolve_shape(spec["shape"], flat.size, name))
        except DatasetFormatError as e:
            raise DatasetFormatError(f"{where}: {e}") from None
        if spec["type"] == "dynamic_varlen":
            key = length_field(name)
            lengths = _field_bytes(features, key, np.dtype("<i4"), where).reshape(-1)
            if int(lengths.sum()) != out[name].shape[0]:
                raise DatasetFormatError(
                    f"{where}: {key!r} sums to {int(lengths.sum())}, but {name!r} has "
                    f"{out[name].shape[0]} rows"
                )
            out[key] = lengths.astype(np.int32)
    try:  # widths, trajectory length, node counts, NaN/Inf (see validate_trajectory)
        validate_trajectory(out, meta)
    except ValueError as e:
        raise DatasetFormatError(f"{where}: {e}") from None
    return out


def encode_trajectory(trajectory: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """Serializes a trajectory as a MeshGraphNets `tf.train.Example` (raw bytes fields).

    Raises:
      ValueError: the trajectory does not match `meta` (see `validate_trajectory`).
    """
    validate_trajectory(trajectory, meta)
    features: dict[str, bytes] = {}
    for name, spec in meta["features"].items():
        features[name] = np.ascontiguousarray(trajectory[name], feature_dtype(spec)).tobytes()
        if spec["type"] == "dynamic_varlen":
            key = length_field(name)
            features[key] = np.ascontiguousarray(trajectory[key], "<i4").tobytes()
    return example_proto.encode_example(features)


def iter_tfrecord_trajectories(
    directory: str | os.PathLike,
    split: str,
    *,
    meta: Mapping[str, Any] | None = None,
    verify_data_crc: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Streams the trajectories of `<directory>/<split>.tfrecord`, one record at a time.

    Args:
      directory: dataset directory holding `meta.json` and the split files.
      split: e.g. `"train"`, `"valid"`, `"test"`.
      meta: overrides `<directory>/meta.json`.
      verify_data_crc: check each record's data CRC (see `iter_tfrecord_records`).

    Yields:
      Trajectory dicts (see `decode_trajectory`).
    """
    meta = load_meta(directory) if meta is None else validate_meta(meta)
    path = tfrecord_path(directory, split)
    offset = 0
    records = iter_tfrecord_records(path, verify_data_crc=verify_data_crc)
    for index, record in enumerate(records):
        yield decode_trajectory(record, meta, where=f"{path}: record {index} at offset {offset}")
        offset += _HEADER.size + len(record) + _FOOTER.size


def read_tfrecord_trajectory(
    path: str | os.PathLike,
    offset: int,
    meta: Mapping[str, Any],
    *,
    index: int = -1,
    verify_data_crc: bool = True,
) -> dict[str, np.ndarray]:
    """Reads the single trajectory whose record starts at byte `offset` (random access
    with the offsets from `index_tfrecord`); `index` only labels error messages."""
    path = os.fspath(path)
    check_int("offset", offset, minimum=0, expected="a byte offset (an int ≥ 0)")
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        f.seek(offset)
        data = _read_record(f, path, index, offset, file_size, verify_data_crc)
    if data is None:
        raise DatasetFormatError(f"{path}: no record at byte offset {offset} (end of file)")
    return decode_trajectory(data, meta, where=f"{path}: record {index} at offset {offset}")


def write_tfrecord_split(
    directory: str | os.PathLike,
    split: str,
    trajectories: Iterable[Mapping[str, np.ndarray]],
    meta: Mapping[str, Any],
) -> int:
    """Writes `<directory>/<split>.tfrecord` readable by MeshGraphNets' `dataset.py`.

    Streams: one trajectory is encoded at a time. The file appears under its real name
    only once complete (crash-safe). `meta.json` is written unless an identical schema
    is already there.

    Returns:
      The number of trajectories written.

    Raises:
      ValueError: a trajectory does not match `meta`, or an existing `meta.json` differs.
    """
    os.makedirs(directory, exist_ok=True)
    meta = ensure_meta(directory, meta)
    with TFRecordWriter(tfrecord_path(directory, split)) as writer:
        for index, trajectory in enumerate(trajectories):
            try:
                record = encode_trajectory(trajectory, meta)
            except ValueError as e:
                raise ValueError(f"{split} trajectory {index}: {e}") from None
            writer.write(record)
    logger.info("wrote %d trajectories to %s", writer.num_records, writer.path)
    return writer.num_records
