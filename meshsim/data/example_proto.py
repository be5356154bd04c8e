"""A tiny protobuf wire-format codec for `tf.train.Example`, without TensorFlow.

Only what `tf.train.Example` needs (field numbers from TensorFlow's `example.proto` and
`feature.proto`)::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }   # entry: key = 1, value = 2
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                             Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. Repeated scalars are read
both packed (one length-delimited run) and unpacked (one tag per value). Unknown fields are
skipped, as protobuf requires.

`tf.train.SequenceExample` (the DeepMind learning_to_simulate particle datasets) adds::

    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
    FeatureLists    { map<string, FeatureList> feature_list = 1; }  # entry: key = 1, value = 2
    FeatureList     { repeated Feature feature = 1; }                # one Feature per step

Decoded feature values are `list[memoryview]` for bytes lists (zero copy into the record),
`np.ndarray float32 [n]` for float lists and `np.ndarray int64 [n]` for int64 lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["FeatureValue", "decode_example", "decode_sequence_example", "encode_example"]

FeatureValue = list[memoryview] | np.ndarray

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class WireFormatError(ValueError):
    """The bytes are not a valid `tf.train.Example` message."""


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireFormatError(f"varint runs past the end of its message at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError(f"varint longer than 10 bytes at byte {pos}")


def _fields(buf: memoryview, start: int, end: int):
    """Yields `(field_number, wire_type, value)`; value is an int or a (start, end) span."""
    pos = start
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(f"field number 0 at byte {pos}")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, end)
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos, end)
            if pos + size > end:
                raise WireFormatError(
                    f"field {number}: length {size} at byte {pos} runs past the message end {end}"
                )
            value, pos = (pos, pos + size), pos + size
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if pos + width > end:
                raise WireFormatError(f"field {number}: fixed{width * 8} runs past the end")
            value, pos = (pos, pos + width), pos + width
        else:
            raise WireFormatError(f"field {number}: unsupported wire type {wire} at byte {pos}")
        yield number, wire, value


def _to_int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_feature(buf: memoryview, start: int, end: int) -> FeatureValue:
    value: FeatureValue = []
    for number, wire, span in _fields(buf, start, end):
        if wire != _LEN or number not in (1, 2, 3):
            continue
        kind, (s, e) = number, span
        if kind == 1:  # BytesList
            items = [buf[a:b] for n, w, (a, b) in _fields(buf, s, e) if n == 1 and w == _LEN]
            value = items
        elif kind == 2:  # FloatList: packed run(s) of little-endian float32, or fixed32 items
            parts = []
            for n, w, (a, b) in _fields(buf, s, e):
                if n == 1 and w in (_LEN, _FIXED32):
                    if (b - a) % 4:
                        raise WireFormatError(f"packed float list of {b - a} bytes")
                    parts.append(np.frombuffer(buf[a:b], dtype="<f4"))
            value = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        else:  # Int64List: packed run(s) of varints, or one varint per item
            ints: list[int] = []
            for n, w, v in _fields(buf, s, e):
                if n != 1:
                    continue
                if w == _VARINT:
                    ints.append(_to_int64(v))
                elif w == _LEN:
                    pos, stop = v
                    while pos < stop:
                        item, pos = _read_varint(buf, pos, stop)
                        ints.append(_to_int64(item))
            value = np.array(ints, dtype=np.int64)
    return value


def _map_entries(buf: memoryview, start: int, end: int, what: str):
    """Yields `(key, (start, end))` of each entry of a `map<string, Message>` field 1."""
    for entry_number, entry_wire, (s, e) in _fields(buf, start, end):
        if entry_number != 1 or entry_wire != _LEN:
            continue
        key, value = None, (0, 0)
        for n, w, (a, b) in _fields(buf, s, e):
            if w != _LEN:
                continue
            if n == 1:
                try:
                    key = bytes(buf[a:b]).decode("utf-8")
                except UnicodeDecodeError as err:
                    raise WireFormatError(f"{what} name is not UTF-8: {err}") from None
            elif n == 2:
                value = (a, b)
        if key is None:
            raise WireFormatError(f"{what} map entry without a key")
        yield key, value


def _decode_features(buf: memoryview, start: int, end: int) -> dict[str, FeatureValue]:
    """Decodes a `Features` message spanning `buf[start:end]`."""
    return {
        key: _decode_feature(buf, a, b) if b > a else []
        for key, (a, b) in _map_entries(buf, start, end, "feature")
    }


def decode_example(data: bytes | bytearray | memoryview) -> dict[str, FeatureValue]:
    """Parses a serialized `tf.train.Example` into `{name: value}`.

    Bytes-list values are memoryviews into `data` (no copy); keep `data` alive or copy.
    Cost: linear in the number of fields, not in the payload size (except int64 lists,
    which are decoded in a Python loop — fine for the short lists Examples usually hold).

    Raises:
      WireFormatError: malformed message.
    """
    buf = memoryview(data).cast("B")
    features: dict[str, FeatureValue] = {}
    for number, wire, span in _fields(buf, 0, len(buf)):
        if number == 1 and wire == _LEN:
            features.update(_decode_features(buf, *span))
    return features


def decode_sequence_example(
    data: bytes | bytearray | memoryview,
) -> tuple[dict[str, FeatureValue], dict[str, list[FeatureValue]]]:
    """Parses a serialized `tf.train.SequenceExample` into `(context, feature_lists)`.

    `context` is `{name: value}` as in `decode_example`; `feature_lists` is
    `{name: [value of step 0, value of step 1, ...]}`, one decoded `Feature` per step.
    Bytes values are memoryviews into `data` (no copy). Cost: linear in the number of
    fields (steps × feature lists), not in the payload size.

    Raises:
      WireFormatError: malformed message.
    """
    buf = memoryview(data).cast("B")
    context: dict[str, FeatureValue] = {}
    lists: dict[str, list[FeatureValue]] = {}
    for number, wire, span in _fields(buf, 0, len(buf)):
        if wire != _LEN:
            continue
        if number == 1:
            context.update(_decode_features(buf, *span))
        elif number == 2:
            for key, (a, b) in _map_entries(buf, *span, "feature list"):
                lists[key] = [
                    _decode_feature(buf, s, e)
                    for n, w, (s, e) in _fields(buf, a, b)
                    if n == 1 and w == _LEN
                ]
    return context, lists


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, payload: bytes | memoryview) -> list[bytes | memoryview]:
    return [_varint(number << 3 | _LEN), _varint(len(payload)), payload]


def _encode_feature(name: str, value) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        value = [value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            packed = value.astype("<f4").ravel().tobytes()
            inner = b"".join(_len_field(1, packed))
            kind = 2
        elif value.dtype.kind in "iub":
            packed = b"".join(_varint(int(v)) for v in value.ravel())
            inner = b"".join(_len_field(1, packed))
            kind = 3
        else:
            raise TypeError(f"feature {name!r}: cannot encode dtype {value.dtype}")
    elif isinstance(value, Sequence) and all(
        isinstance(v, bytes | bytearray | memoryview) for v in value
    ):
        inner = b"".join(part for v in value for part in _len_field(1, v))
        kind = 1
    else:
        raise TypeError(
            f"feature {name!r}: expected bytes, a list of bytes or an np.ndarray, "
            f"got {type(value).__name__}"
        )
    return b"".join(_len_field(kind, inner))


def encode_example(features: Mapping[str, object]) -> bytes:
    """Serializes `{name: value}` as a `tf.train.Example`.

    Args:
      features: name -> `bytes` or a list of `bytes` (BytesList), a float ndarray
        (FloatList, stored as float32, packed) or an integer/bool ndarray (Int64List,
        packed varints).

    Returns:
      The serialized message, byte-compatible with `Example.SerializeToString()` up to
      map-entry order.
    """
    parts: list[bytes | memoryview] = []
    for name, value in features.items():
        feature = _encode_feature(name, value)
        entry = b"".join(_len_field(1, name.encode("utf-8")) + _len_field(2, feature))
        parts += _len_field(1, entry)
    return b"".join(_len_field(1, b"".join(parts)))
