"""Checkpoints: round trips, interop with safetensors/PyTorch, and safe loading.

Every damaged or mismatched checkpoint must give one CheckpointError line,
never a crash, a hang, or silently different numbers. Fuzz loops are seeded
and bounded.
"""
import hashlib
import json
import os
import random
import struct

import numpy as np
import pytest

from backends.io import SafetensorsFormatError, decode_safetensors, encode_safetensors
from tinyllm.data import CharTokenizer
from tinyllm.train.checkpoint import INDEX, CheckpointError, has_checkpoint, load_checkpoint, save_checkpoint
from tinyllm.train.resume import check_tensors, check_tokenizer


def _tensors(seed=0):
    g = np.random.default_rng(seed)
    return {
        "model.wte": g.normal(size=(7, 5)).astype(np.float32),
        "model.ln.b": g.normal(size=(5,)).astype(np.float64),
        "optim.0.m": g.normal(size=(7, 5)).astype(np.float32),
        "counts": g.integers(0, 100, size=(3, 2)).astype(np.int64),
        "mask": g.integers(0, 2, size=(4,)).astype(bool),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def _meta(step=3):
    rng_state = np.random.Generator(np.random.PCG64(7)).bit_generator.state  # 128-bit ints inside
    return {"step": step, "config": {"model": "gpt", "lr": 1e-3}, "rng": rng_state,
            "tokenizer": CharTokenizer.from_text("abc\n", bos=True).to_dict(), "losses": [1.5, 1.25]}


def _same(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


def _tensor_file(d):
    return os.path.join(d, json.load(open(os.path.join(d, INDEX)))["file"])


def _files(d):
    return sorted(os.listdir(d))


# -- round trips ----------------------------------------------------------------------------------

def test_round_trip_exact(tmp_path):
    t, m = _tensors(), _meta()
    assert not has_checkpoint(str(tmp_path))
    save_checkpoint(str(tmp_path), t, m)
    assert has_checkpoint(str(tmp_path))
    t2, m2 = load_checkpoint(str(tmp_path))
    _same(t, t2)
    assert m2 == m  # RNG state with 128-bit integers survives JSON exactly
    g = np.random.Generator(np.random.PCG64(0))
    g.bit_generator.state = m2["rng"]
    assert g.random() == np.random.Generator(np.random.PCG64(7)).random()
    # the checkpoint.json path itself also works
    _same(t, load_checkpoint(str(tmp_path / INDEX))[0])


def test_saving_again_keeps_one_tensor_file_and_no_temps(tmp_path):
    d = str(tmp_path)
    for step in (1, 2, 2, 5):  # the same step twice must not clobber the committed file
        save_checkpoint(d, _tensors(step), _meta(step))
        files = _files(d)
        assert len([f for f in files if f.endswith(".safetensors")]) == 1, files
        assert not [f for f in files if f.startswith(".tmp")], files
        t, m = load_checkpoint(d)
        _same(t, _tensors(step))
        assert m["step"] == step


def test_pytorch_and_safetensors_read_our_files_and_we_read_theirs(tmp_path):
    from safetensors.numpy import load_file, save
    save_checkpoint(str(tmp_path), _tensors(), _meta())
    path = _tensor_file(str(tmp_path))
    _same(_tensors(), load_file(path))
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load
    tt = torch_load(path)
    for k, a in _tensors().items():
        np.testing.assert_array_equal(tt[k].numpy(), a)
    assert tt["model.wte"].dtype == torch.float32 and tt["counts"].dtype == torch.int64
    # and the other way: bytes written by the reference implementation decode here
    ref = {k: v for k, v in _tensors(1).items()}
    arrays, meta = decode_safetensors(save(ref, metadata={"who": "reference"}))
    _same(ref, arrays)
    assert meta == {"who": "reference"}


def test_non_host_array_or_bad_meta_leaves_nothing_behind(tmp_path):
    d = str(tmp_path)
    save_checkpoint(d, _tensors(), _meta())
    before = {f: open(os.path.join(d, f), "rb").read() for f in _files(d)}
    with pytest.raises(TypeError, match="host NumPy array"):
        save_checkpoint(d, {"w": [1.0, 2.0]}, _meta())
    with pytest.raises(TypeError):
        save_checkpoint(d, _tensors(), {"step": 4, "bad": object()})
    with pytest.raises(TypeError, match="cannot be stored"):
        save_checkpoint(d, {"c": np.zeros(2, dtype=np.complex64)}, _meta())
    assert {f: open(os.path.join(d, f), "rb").read() for f in _files(d)} == before


# -- safe loading: every defect is one clear CheckpointError --------------------------------------

@pytest.fixture
def ckpt(tmp_path):
    d = str(tmp_path / "run")
    save_checkpoint(d, _tensors(), _meta())
    return d


def _refused(d, *words):
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(d)
    msg = str(ei.value)
    assert "\n" not in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_checkpoint(tmp_path):
    _refused(str(tmp_path), "no checkpoint", "without --resume")
    _refused(str(tmp_path / "does-not-exist"), "no checkpoint")


def _edit_index(d, fn):
    p = os.path.join(d, INDEX)
    idx = json.load(open(p))
    fn(idx)
    with open(p, "w") as f:
        json.dump(idx, f)


@pytest.mark.parametrize("edit, words", [
    (lambda i: i.update(format="something-else"), ["not a tinyllm checkpoint"]),
    (lambda i: i.pop("format"), ["not a tinyllm checkpoint"]),
    (lambda i: i.update(version=99), ["version 99"]),
    (lambda i: i.update(file="../../etc/passwd"), ["file name", "invalid"]),
    (lambda i: i.update(file="ckpt-00000003-deadbeef.safetensors"), ["missing"]),
    (lambda i: i.update(size=-1), ["size or sha256"]),
    (lambda i: i.update(size="12"), ["size or sha256"]),
    (lambda i: i.update(size=i["size"] + 1), ["truncated"]),
    (lambda i: i.update(size=i["size"] - 1), ["longer than recorded"]),
    (lambda i: i.update(sha256="0" * 64), ["sha256"]),
    (lambda i: i.update(sha256="xyz"), ["size or sha256"]),
    (lambda i: i.update(meta=[1, 2]), ["meta"]),
    (lambda i: i.update(tensors={"a": 5}), ["tensor list is malformed"]),
    (lambda i: i["tensors"]["model.wte"].update(shape=[5, 7]), ["model.wte", "records"]),
    (lambda i: i["tensors"]["model.wte"].update(dtype="F64"), ["model.wte", "records"]),
    (lambda i: i["tensors"].pop("counts"), ["does not hold the tensors"]),
    (lambda i: i["tensors"].update(extra={"dtype": "F32", "shape": [1]}), ["does not hold the tensors"]),
], ids=["format", "no-format", "version", "path-traversal", "missing-file", "neg-size", "str-size",
        "size+1", "size-1", "sha", "sha-not-hex", "meta-list", "tensors-malformed", "shape", "dtype",
        "missing-tensor", "extra-tensor"])
def test_tampered_index_is_refused(ckpt, edit, words):
    _edit_index(ckpt, edit)
    _refused(ckpt, *words)


def test_index_that_is_not_json_or_not_an_object(ckpt):
    p = os.path.join(ckpt, INDEX)
    for raw in [b"", b"{", b"\xff\xfe\x00", b"[]", b"null", b"[" * 100000, b'{"format": "tinyllm-checkpoint"']:
        open(p, "wb").write(raw)
        _refused(ckpt, "checkpoint")


def test_truncated_tensor_file_at_every_cut(ckpt):
    path = _tensor_file(ckpt)
    data = open(path, "rb").read()
    for cut in sorted(set(random.Random(0).sample(range(len(data)), 40) + [0, 1, 7, 8, 9, len(data) - 1])):
        open(path, "wb").write(data[:cut])
        _refused(ckpt, "truncated")


def test_flipped_byte_anywhere_fails_the_hash(ckpt):
    path = _tensor_file(ckpt)
    data = open(path, "rb").read()
    r = random.Random(1)
    for _ in range(60):
        b = bytearray(data)
        i = r.randrange(len(b))
        b[i] ^= 1 << r.randrange(8)
        open(path, "wb").write(bytes(b))
        _refused(ckpt, "sha256")


def _rehash(d, data):
    """Write tampered tensor bytes AND fix size + hash in the index: only the parser stands guard."""
    open(_tensor_file(d), "wb").write(data)
    _edit_index(d, lambda i: i.update(size=len(data), sha256=hashlib.sha256(data).hexdigest()))


def test_consistently_tampered_header_never_loads_different_numbers(ckpt):
    """Flip bytes in the safetensors header with a matching hash: either a clean refusal,
    or (e.g. a space in the padding became a tab) exactly the original tensors."""
    path = _tensor_file(ckpt)
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    r = random.Random(2)
    refused = loaded = 0
    for _ in range(300):
        b = bytearray(data)
        for _ in range(r.choice([1, 1, 2, 3])):
            i = r.randrange(0, 8 + n)  # header length or header JSON
            b[i] = r.randrange(256) if r.random() < 0.5 else b[i] ^ (1 << r.randrange(8))
        _rehash(ckpt, bytes(b))
        try:
            t, _ = load_checkpoint(ckpt)
        except CheckpointError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        _same(t, _tensors())
        loaded += 1
    assert refused > 250, (refused, loaded)


def test_random_bytes_as_tensor_file_or_index(ckpt):
    r = random.Random(3)
    good_index = open(os.path.join(ckpt, INDEX), "rb").read()
    for _ in range(150):
        blob = bytes(r.randrange(256) for _ in range(r.choice([0, 5, 8, 64, 500])))
        if r.random() < 0.5:
            blob = struct.pack("<Q", r.choice([0, 2, len(blob), 2 ** 63, 2 ** 64 - 1])) + blob
        if r.random() < 0.5:
            open(os.path.join(ckpt, INDEX), "wb").write(good_index)
            _rehash(ckpt, blob)
        else:
            open(os.path.join(ckpt, INDEX), "wb").write(blob)
        with pytest.raises(CheckpointError):
            load_checkpoint(ckpt)


# -- the parser on its own, with crafted adversarial headers --------------------------------------

def _st(header: dict, data: bytes = b"") -> bytes:
    hb = json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + data


@pytest.mark.parametrize("blob", [
    b"", b"\x00" * 7, struct.pack("<Q", 2 ** 64 - 1) + b"{}", struct.pack("<Q", 10) + b"{}",
    _st([]), _st({"a": 1}), _st({"a": {"dtype": "F32", "shape": [1]}}),
    _st({"a": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 4]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4),
    _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 3),
    _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8),
    _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
         "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8),
    _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"k": 1}}, b"\0" * 4),
    struct.pack("<Q", 200000) + b"[" * 200000,
])
def test_parser_rejects_crafted_headers(blob):
    with pytest.raises(SafetensorsFormatError):
        decode_safetensors(blob)


def test_parser_fuzz_random_structures():
    """Random but JSON-valid headers: the parser returns arrays matching the header, or refuses."""
    r = random.Random(4)
    good = encode_safetensors(_tensors())
    ok = 0
    for _ in range(400):
        choice = r.random()
        if choice < 0.4:  # mutate a real file's header JSON structurally
            (n,) = struct.unpack("<Q", good[:8])
            h = json.loads(good[8:8 + n])
            k = r.choice(sorted(h))
            field = r.choice(["dtype", "shape", "data_offsets"])
            h[k][field] = r.choice([None, 0, -1, "F32", "I64", [], [1], [0, 0], [2 ** 62, 2 ** 62], {"x": 1}, "🙂"])
            blob = _st(h, good[8 + n:])
        elif choice < 0.7:  # random bytes after a plausible length prefix
            body = bytes(r.randrange(256) for _ in range(r.randrange(0, 200)))
            blob = struct.pack("<Q", r.randrange(0, len(body) + 3)) + body
        else:  # truncate or extend a good file
            cut = r.randrange(0, len(good) + 20)
            blob = good[:cut] + bytes(max(0, cut - len(good)))
        try:
            arrays, _ = decode_safetensors(blob)
        except SafetensorsFormatError as e:
            assert "\n" not in str(e)
            continue
        ok += 1
        assert all(isinstance(a, np.ndarray) for a in arrays.values())
    assert ok < 400


# -- checks the trainer runs when applying a checkpoint ------------------------------------------

def test_check_tensors_missing_extra_and_wrong_shape():
    t = _tensors()
    expected = {k: v.shape for k, v in t.items()}
    check_tensors(t, expected)  # exact match passes
    with pytest.raises(CheckpointError, match="1 tensor\\(s\\) missing \\(extra.w\\).*same model settings"):
        check_tensors(t, {**expected, "extra.w": (2, 2)})
    with pytest.raises(CheckpointError, match="unexpected tensor\\(s\\) \\(counts\\)"):
        check_tensors(t, {k: v for k, v in expected.items() if k != "counts"})
    with pytest.raises(CheckpointError, match="'model.wte' has shape \\(7, 5\\), expected \\(9, 5\\)"):
        check_tensors(t, {**expected, "model.wte": (9, 5)})


def test_check_tokenizer_refuses_other_data():
    meta = _meta()
    same = CharTokenizer.from_text("abc\n", bos=True).to_dict()
    check_tokenizer(meta, same)
    other = CharTokenizer.from_text("abcd\n", bos=True).to_dict()
    with pytest.raises(CheckpointError, match="the data has characters its 4-token tokenizer lacks \\('d'\\); "
                                              "resume with the data and settings it was trained with"):
        check_tokenizer(meta, other)
    with pytest.raises(CheckpointError, match="no tokenizer"):
        check_tokenizer({"step": 1}, same)
