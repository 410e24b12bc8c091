"""Files a user gives to --data and --config (issue 14.5, 14.9, 14.12, 14.13): special files refused
before they are opened, a size check, messages that say what a path really is, text hygiene, and
token ids kept in the smallest integer type (under 4 bytes of memory a token of training text)."""
import os
import sys

import pytest

from backends import get_backend
from tinyllm.data import Batcher, load_dataset
from tinyllm.train import load_checkpoint

from cliproc import ROOT, TINY, no_traceback, run

SHAKESPEARE = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")


def one_line(code, out, err, want_code=2) -> str:
    assert code == want_code, err
    no_traceback(err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- 14.5: special files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make", ["fifo", "dev-zero"])
def test_a_fifo_or_device_as_data_is_not_a_regular_file(tmp_path, make):
    if make == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)  # nobody writes it: opening it would wait forever
    else:
        path = "/dev/zero"  # never ends
    out = tmp_path / "run"
    line = one_line(*run("train", *TINY, "--steps", "2", "--data", path, "--out", str(out), timeout=60))
    assert "not a regular file" in line and ("named pipe" in line or "character device" in line)
    assert not out.exists()


def test_a_file_too_large_for_the_memory_names_its_size_and_the_memory(tmp_path):
    big = tmp_path / "huge.txt"
    with open(big, "wb") as f:
        f.truncate(64 << 30)  # a sparse 64 GiB: no disk used, more than the child may take
    line = one_line(*run("train", *TINY, "--steps", "2", "--data", str(big), "--out", str(tmp_path / "run"),
                         timeout=60))
    assert "is 64.0 GiB" in line and "of memory" in line and "available" in line


def test_a_line_file_too_large_for_the_memory_is_refused_up_front(tmp_path):
    names = open(os.path.join(ROOT, "tinyllm", "data", "names.txt"), encoding="utf-8").read()
    p = tmp_path / "many-names.txt"
    p.write_text(names * 120)  # 27 MB of short lines: one example a line needs far more than 1 GiB
    line = one_line(*run("train", *TINY, "--data", str(p), "--out", str(tmp_path / "run"), limit=1 << 30,
                         timeout=120))
    assert "read one example a line takes about" in line and "--no-lines" in line


# -- 14.13: what a path really is ---------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--data", "--config"])
@pytest.mark.parametrize("kind, expect", [("dir", "is a directory, not a regular file"),
                                          ("fifo", "is a named pipe (FIFO), not a regular file"),
                                          ("loop", "is a symbolic link loop"),
                                          ("dangling", "is a symbolic link to 'nowhere', which does not exist")])
def test_a_path_that_is_not_a_file_is_called_what_it_is(tmp_path, flag, kind, expect):
    p = str(tmp_path / "thing")
    if kind == "dir":
        os.mkdir(p)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "loop":
        os.symlink(p + "2", p)
        os.symlink(p, p + "2")
    else:
        os.symlink("nowhere", p)
    line = one_line(*run("train", *TINY, flag, p, "--out", str(tmp_path / "run"), timeout=60))
    assert expect in line and "does not exist;" not in line.replace(expect, "")


def test_utf16_data_is_called_utf16_with_the_conversion(tmp_path):
    for name, data in (("bom.txt", "hello world\n".encode("utf-16")), ("le.txt", "hello world\n".encode("utf-16-le"))):
        p = tmp_path / name
        p.write_bytes(data * 50)
        line = one_line(*run("train", *TINY, "--data", str(p), "--out", str(tmp_path / "run"), timeout=60))
        assert "is UTF-16 text, not UTF-8" in line and "iconv -f UTF-16 -t UTF-8" in line


def test_a_dangling_symlink_out_is_named_not_file_exists(tmp_path):
    out = tmp_path / "run"
    os.symlink("nowhere", out)
    line = one_line(*run("train", *TINY, "--steps", "2", "--out", str(out), timeout=60))
    assert "is a symbolic link to 'nowhere', which does not exist" in line and "File exists" not in line


def test_sample_out_pointing_at_a_file_of_the_run_names_the_run(tmp_path):
    out = tmp_path / "run"
    code, _, err = run("train", *TINY, "--steps", "2", "--out", str(out))
    assert code == 0, err
    line = one_line(*run("sample", "--out", str(out / "log.jsonl"), "--device", "cpu"))
    assert line == f"error: --out takes a training run's directory, not a file in it: pass --out {out}"


# -- 14.9: text hygiene --------------------------------------------------------------------------------------

def test_bom_and_crlf_are_not_tokens_and_the_describe_line_says_so(tmp_path):
    text = open(SHAKESPEARE, encoding="utf-8").read()[:5000]
    p = tmp_path / "win.txt"
    p.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    ds = load_dataset(str(p), lines=False)
    assert "\ufeff" not in ds.tokenizer.itos and "\r" not in ds.tokenizer.itos
    assert ds.tokenizer.itos == load_dataset(_write(tmp_path / "unix.txt", text), lines=False).tokenizer.itos
    code, out, err = run("train", *TINY, "--steps", "2", "--data", str(p), "--no-lines", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "data win.txt (byte-order mark removed; \\r\\n line ends read as \\n; one text)" in out.splitlines()[0]
    # a flag keeps the bytes
    raw = load_dataset(str(p), lines=False, raw_text=True)
    assert "\ufeff" in raw.tokenizer.itos and "\r" in raw.tokenizer.itos
    code, out, err = run("train", *TINY, "--steps", "2", "--data", str(p), "--no-lines", "--raw-text",
                         "--out", str(tmp_path / "r2"))
    assert code == 0, err
    assert load_checkpoint(str(tmp_path / "r2"))[1]["train"]["raw_text"] is True


def _write(path, text) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- 14.12: token ids in the smallest integer type; memory per token of training text ------------------------

@pytest.mark.parametrize("vocab, itemsize", [(65, 1), (300, 2)])
def test_token_streams_use_the_smallest_integer_type(tmp_path, backend, vocab, itemsize):
    chars = "".join(chr(0x100 + i) for i in range(vocab))
    text = (chars * 40)[: vocab * 40]
    ds = load_dataset(_write(tmp_path / "t.txt", text), lines=False)
    assert ds.tokenizer.vocab_size == vocab
    assert ds.train.itemsize == itemsize and len(ds.train) + len(ds.val) == len(text)
    assert ds.tokenizer.decode(list(ds.train) + list(ds.val)) == text
    b = Batcher(ds.train, backend, 8)
    assert b.stream.dtype == backend.dtype(["uint8", "uint16"][itemsize - 1])  # gathered from it on the device
    x, y = b.batch(4, backend.rng(0))
    assert backend.dtype_name(x.dtype) == "int64" and tuple(x.shape) == (4, 8)
    xs, ys = backend.to_host(x), backend.to_host(y)
    assert (xs[:, 1:] == ys[:, :-1]).all()


PEAK_RSS = """
import resource, sys
from tinyllm.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)  # Linux: KiB
sys.exit(code)
"""


def _peak_rss(tmp_path, data: str, name: str) -> int:
    import subprocess

    env = {**os.environ, "PYTHONPATH": ROOT}
    p = subprocess.run([sys.executable, "-c", PEAK_RSS, "train", *TINY, "--steps", "2", "--data", data,
                        "--no-lines", "--out", str(tmp_path / name)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    return int(p.stderr.strip().splitlines()[-1])


def _bytes_per_token(tmp_path, megabytes: int) -> float:
    text = open(SHAKESPEARE, encoding="utf-8").read()
    small = _write(tmp_path / "small.txt", text)
    big = tmp_path / "big.txt"
    with open(big, "w", encoding="utf-8") as f:
        for _ in range(megabytes * 1_000_000 // len(text)):
            f.write(text)
    extra_tokens = os.path.getsize(big) - len(text)
    return (_peak_rss(tmp_path, str(big), "big") - _peak_rss(tmp_path, small, "small")) / extra_tokens


def test_a_16_mb_text_trains_in_under_4_bytes_a_token(tmp_path):
    assert _bytes_per_token(tmp_path, 16) < 4.0


@pytest.mark.slow
def test_a_100_mb_text_trains_in_under_4_bytes_a_token(tmp_path):
    assert _bytes_per_token(tmp_path, 100) < 4.0
