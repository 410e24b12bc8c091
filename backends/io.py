"""Host-side safetensors encoding and decoding (NumPy arrays <-> bytes).

Written by hand rather than through the safetensors package so that every
way a file can be damaged becomes one SafetensorsFormatError with a clear
reason (the fuzz tests feed it random bytes). The layout follows the spec
exactly, so `safetensors.numpy.load` and `safetensors.torch.load_file` read
what we write and we read what they write:

    8 bytes   little-endian u64 N = header length
    N bytes   JSON {name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]},
                    "__metadata__": {str: str}}  (padded with spaces to 8 bytes)
    rest      the tensors' raw little-endian bytes, offsets relative to here
"""
from __future__ import annotations

import json
import struct

import numpy as np

# safetensors dtype codes <-> NumPy dtypes (little-endian); bool is one byte.
_CODES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit


class SafetensorsFormatError(ValueError):
    """Bytes that are not a well-formed safetensors file; the message says where."""


def is_host_array(a) -> bool:
    return isinstance(a, np.ndarray)


def _code(a: np.ndarray) -> str:
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    for code, s in _CODES.items():
        if np.dtype(s) == dt:
            return code
    raise TypeError(f"dtype {a.dtype} cannot be stored in safetensors here (use one of "
                    f"{', '.join(sorted(_CODES))})")


def encode_safetensors(tensors: dict, metadata: dict | None = None) -> list:
    """Chunks (bytes / memoryviews) whose concatenation is the file; nothing is copied twice."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):  # sorted: the same tensors give the same bytes
        a = tensors[name]
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise TypeError(f"tensor names must be non-empty strings other than __metadata__, got {name!r}")
        if not is_host_array(a):
            raise TypeError(f"tensor {name!r} is a {type(a).__name__}, not a host NumPy array "
                            f"(copy it with backend.to_host first)")
        code = _code(a)
        data = np.asarray(a, dtype=np.dtype(_CODES[code]), order="C")  # (ascontiguousarray makes 0-d 1-d)
        n = data.nbytes
        header[name] = {"dtype": code, "shape": list(data.shape), "data_offsets": [offset, offset + n]}
        chunks.append(memoryview(data.reshape(-1)).cast("B") if n else b"")
        offset += n
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # align the data section to 8 bytes
    return [struct.pack("<Q", len(hb)), hb] + chunks


def describe(a) -> tuple:
    """(safetensors dtype code, shape tuple) of a host array."""
    return _code(a), tuple(int(s) for s in a.shape)


def _bad(msg: str):
    raise SafetensorsFormatError(msg)


def decode_safetensors(buf) -> tuple:
    """bytes of a whole file -> ({name: NumPy array (a copy)}, metadata dict).

    Every inconsistency raises SafetensorsFormatError; arbitrary bytes never
    crash, hang or allocate more than the buffer's size.
    """
    buf = memoryview(buf).cast("B")
    if len(buf) < 8:
        _bad(f"file is {len(buf)} bytes long, too short to hold a header")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > len(buf):
        _bad(f"header length {n} does not fit in a {len(buf)}-byte file (truncated or not safetensors)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _bad(f"header is not valid JSON ({str(e)[:80]})")
    if not isinstance(header, dict):
        _bad("header is not a JSON object")
    data = buf[8 + n:]
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        _bad("__metadata__ is not a map of strings to strings")
    spans, out = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            _bad(f"entry {name!r} does not have exactly dtype, shape and data_offsets")
        code, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(code, str) or code not in _CODES:
            _bad(f"tensor {name!r} has unsupported dtype {code!r}")
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(type(s) is int and 0 <= s < 2 ** 48 for s in shape)):
            _bad(f"tensor {name!r} has an invalid shape {str(shape)[:60]}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs)
                or not 0 <= offs[0] <= offs[1] <= len(data)):
            _bad(f"tensor {name!r} has data offsets {str(offs)[:60]} outside the {len(data)}-byte data section")
        dt = np.dtype(_CODES[code])
        count = 1
        for s in shape:
            count *= s
        if count * dt.itemsize != offs[1] - offs[0]:
            _bad(f"tensor {name!r}: shape {shape} of {code} needs {count * dt.itemsize} bytes, "
                 f"its offsets span {offs[1] - offs[0]}")
        spans.append((offs[0], offs[1], name))
        out[name] = (dt, shape, offs)
    spans.sort()
    pos = 0
    for b, e, name in spans:  # the data section must be covered exactly, with no overlap or gap
        if b != pos:
            _bad(f"tensor {name!r} starts at {b}, expected {pos} (overlapping or gapped data)")
        pos = e
    if pos != len(data):
        _bad(f"data section is {len(data)} bytes, the tensors account for {pos} (truncated or padded)")
    arrays = {}
    for name, (dt, shape, (b, e)) in out.items():
        a = np.frombuffer(data[b:e], dtype=dt).reshape(tuple(shape)).copy()
        arrays[name] = a.astype(dt.newbyteorder("="), copy=False)
    return arrays, meta
