"""Host-side safetensors files (NumPy arrays <-> bytes), through the safetensors package.

The package's Rust parser validates a file completely (header JSON, dtypes,
shapes, offsets covering the data exactly); every way it refuses one becomes
a SafetensorsFormatError with its reason, so damaged files give one clear line.
"""
from __future__ import annotations

import json
import struct

import numpy as np
from safetensors import SafetensorError, deserialize
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save
from .errors import SafetensorsFormatError

# NumPy dtype -> safetensors dtype code, for the dtypes checkpoints hold
_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
          "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def is_host_array(a) -> bool:
    return isinstance(a, np.ndarray)


def describe(a) -> tuple:
    """(safetensors dtype code, shape tuple) of a host array."""
    code = _CODES.get(np.dtype(a.dtype).newbyteorder("=").name)
    if code is None:
        raise TypeError(f"dtype {a.dtype} cannot be stored in safetensors here (use one of {', '.join(sorted(_CODES))})")
    return code, tuple(int(s) for s in a.shape)


def encode_safetensors(tensors: dict, metadata: dict | None = None) -> bytes:
    """The whole file's bytes (the package builds it in memory)."""
    for name, a in tensors.items():
        if not is_host_array(a):
            raise TypeError(f"tensor {name!r} is a {type(a).__name__}, not a host NumPy array "
                            f"(copy it with backend.to_host first)")
        describe(a)
    if metadata and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata must map strings to strings")
    return _st_save({k: np.asarray(v, order="C") for k, v in tensors.items()}, metadata=metadata or None)


_NUMPY = {v: k for k, v in _CODES.items()}


def _load_widened(data: bytes) -> dict:
    """Like safetensors.numpy.load, with bfloat16 widened to float32 (exact: bf16 is a float32's top half)."""
    out = {}
    for name, v in deserialize(data):
        if v["dtype"] == "BF16":
            a = (np.frombuffer(v["data"], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif v["dtype"] in _NUMPY:
            a = np.frombuffer(v["data"], dtype=np.dtype(_NUMPY[v["dtype"]]).newbyteorder("<"))
        else:
            raise ValueError(f"tensor {name!r} has dtype {v['dtype']}, which NumPy cannot hold; "
                             f"convert the file to float32")
        out[name] = a.reshape(v["shape"])
    return out


def decode_safetensors(buf) -> tuple:
    """bytes of a whole file -> ({name: NumPy array}, metadata dict); SafetensorsFormatError if damaged."""
    data = bytes(buf)
    try:
        try:
            arrays = _st_load(data)
        except KeyError:  # a dtype NumPy lacks, e.g. BF16 (Hugging Face models are often saved so)
            arrays = _load_widened(data)
    except (SafetensorError, ValueError, TypeError, OverflowError, MemoryError) as e:
        raise SafetensorsFormatError(" ".join(str(e).split())[:200] or type(e).__name__) from None
    # the package has validated the header; read only its string metadata back
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    return {k: np.array(v, copy=True) for k, v in arrays.items()}, meta
