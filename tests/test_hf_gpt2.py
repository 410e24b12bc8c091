"""GPT-2 / Hugging Face layout: `tinyllm export`, `--init-from DIR`, and transformers as the reference.

Without torch + transformers the reference tests skip with the reason; the
round trip, names, shapes, config keys and every error still run. Nothing is
fetched from a network: transformers is told it is offline, and every GPT-2
directory here is made by the test.
"""
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub are imported anywhere
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest

from backends.io import decode_safetensors, encode_safetensors
from tinyllm.cli import EXIT_BAD_INPUT, main
from tinyllm.gpt2 import ExportError, export_model, load_pretrained, load_pretrained_model
from tinyllm.models import GPT, GPTConfig
from tinyllm.gpt2 import HFFormatError, gpt2_config
from tinyllm.sample import generate_batch

try:
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel
    HAVE_HF = True
except ImportError:
    HAVE_HF = False
needs_hf = pytest.mark.skipif(not HAVE_HF, reason="torch and transformers are not installed (the reference): "
                                                   "pip install torch transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(vocab_size=37, block_size=24, n_layer=2, n_head=2, n_embd=16)
VARIANTS = {
    "gpt2": dict(),                                           # biases, tied head: GPT-2 itself
    "untied": dict(tie_weights=False),                        # lm_head exported transposed
    "bare": dict(bias=False, norm_affine=False, tie_weights=False),  # zeros / ones stand in
}
# the keys of GPT-2's published config.json (openai-community/gpt2) that describe the model
GPT2_ARCH_KEYS = {"activation_function", "architectures", "attn_pdrop", "bos_token_id", "embd_pdrop", "eos_token_id",
                  "initializer_range", "layer_norm_epsilon", "model_type", "n_embd", "n_head", "n_layer",
                  "n_positions", "resid_pdrop", "summary_activation", "summary_first_dropout",
                  "summary_proj_to_labels", "summary_type", "summary_use_proj", "vocab_size"}
# one block of GPT2LMHeadModel's state dict, as save_pretrained writes it
GPT2_BLOCK = {"ln_1.weight": "C", "ln_1.bias": "C", "attn.c_attn.weight": "C,3C", "attn.c_attn.bias": "3C",
              "attn.c_proj.weight": "C,C", "attn.c_proj.bias": "C", "ln_2.weight": "C", "ln_2.bias": "C",
              "mlp.c_fc.weight": "C,4C", "mlp.c_fc.bias": "4C", "mlp.c_proj.weight": "4C,C", "mlp.c_proj.bias": "C"}


def model_of(backend="cpu", seed=0, **kw):
    m = GPT(GPTConfig(**{**SMALL, **kw}), device=backend, seed=seed)
    # non-zero biases and gains, so a dropped or swapped one shows in the logits
    rng = np.random.default_rng(seed + 1)
    m.load_state_dict({n: p.backend.from_host(p.backend.to_host(p.data) + rng.normal(0, 0.1, p.shape), "float32")
                       for n, p in m.named_parameters()})
    return m.eval()


def host(a):
    if isinstance(a, tuple):  # a model's (logits, loss): the logits
        a = a[0]
    return np.asarray(a.backend.to_host(a.data) if hasattr(a, "backend") else a)


def tokens(n=12, vocab=SMALL["vocab_size"], seed=3):
    return np.random.default_rng(seed).integers(0, vocab, (2, n))


def read_tensors(d):
    with open(os.path.join(d, "model.safetensors"), "rb") as f:
        return decode_safetensors(f.read())


# -- round trip, names, shapes, config ------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS))
def test_round_trip_is_identical(backend, variant, tmp_path):
    m = model_of(backend, **VARIANTS[variant])
    dest = str(tmp_path / "hf")
    assert export_model(m, None, dest) == ["config.json", "model.safetensors"]
    back = load_pretrained_model(dest, backend)
    ids = tokens()
    np.testing.assert_array_equal(host(back(ids)), host(m(ids)))  # bit for bit
    if variant != "bare":  # same parameters, same config (a bare model comes back with its zeros and ones)
        assert back.config == m.config
        theirs = dict(back.named_parameters())
        for n, p in m.named_parameters():
            np.testing.assert_array_equal(host(theirs[n]), host(p), err_msg=n)
    again = str(tmp_path / "again")
    export_model(back, None, again)
    a, b = read_tensors(dest)[0], read_tensors(again)[0]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_names_shapes_and_config_keys_are_gpt2s(variant, tmp_path):
    m = model_of(**VARIANTS[variant])
    c = m.config
    export_model(m, None, str(tmp_path / "hf"))
    tensors, meta = read_tensors(tmp_path / "hf")
    assert meta == {"format": "pt"}  # transformers refuses a safetensors file without it
    C, V = c.n_embd, c.vocab_size
    dims = {"C": C, "3C": 3 * C, "4C": 4 * C}
    want = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (c.block_size, C),
            "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(c.n_layer):
        want.update({f"transformer.h.{i}.{k}": tuple(dims[d] for d in s.split(",")) for k, s in GPT2_BLOCK.items()})
    if not c.tie_weights:
        want["lm_head.weight"] = (V, C)
    assert {k: a.shape for k, a in tensors.items()} == want
    assert all(a.dtype == np.float32 for a in tensors.values())
    with open(tmp_path / "hf" / "config.json") as f:
        conf = json.load(f)
    assert GPT2_ARCH_KEYS <= set(conf)
    assert (conf["n_layer"], conf["n_head"], conf["n_embd"], conf["n_positions"], conf["vocab_size"]) == \
        (c.n_layer, c.n_head, c.n_embd, c.block_size, V)
    assert conf["model_type"] == "gpt2" and conf["architectures"] == ["GPT2LMHeadModel"]
    assert conf["tie_word_embeddings"] is c.tie_weights
    if HAVE_HF:  # every key is one transformers knows, and its own model has exactly these tensors
        assert set(conf) <= set(GPT2Config().to_dict())
        ref = GPT2LMHeadModel(GPT2Config(**conf)).state_dict()
        if c.tie_weights:
            ref.pop("lm_head.weight")
        assert {k: tuple(v.shape) for k, v in ref.items()} == want


def test_missing_biases_and_gains_export_as_zeros_and_ones(tmp_path):
    m = model_of(**VARIANTS["bare"])
    export_model(m, None, str(tmp_path / "hf"))
    t = read_tensors(tmp_path / "hf")[0]
    for k, a in t.items():
        if k.endswith(".bias"):
            assert not a.any(), k
        elif ".ln_" in k and k.endswith(".weight"):
            assert (a == 1).all(), k
    np.testing.assert_array_equal(t["lm_head.weight"], host(m.lm_head.weight).T)  # (V, C): transposed
    np.testing.assert_array_equal(t["transformer.h.1.attn.c_attn.weight"], host(m.blocks[1].attn.qkv.weight))


@pytest.mark.parametrize("kw, word", [(dict(norm="rms"), "norm='rms'"), (dict(final_norm=False), "final_norm"),
                                      (dict(activation="relu"), "activation='relu'")])
def test_unrepresentable_config_is_refused_one_line(kw, word, tmp_path, capsys):
    with pytest.raises(HFFormatError, match=word):
        export_model(model_of(**kw), None, str(tmp_path / "x"))
    run = str(tmp_path / "run")  # the same through the CLI: exit 2, one line, nothing written
    assert main(["train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--steps", "1",
                 "--eval-iters", "1", "--samples", "0", "--device", "cpu", "--out", run,
                 "--config", _toml(tmp_path, kw)]) == 0
    capsys.readouterr()
    assert main(["export", "--out", run, str(tmp_path / "dest")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and word in err[0]
    assert not os.path.exists(tmp_path / "dest")


def _toml(tmp_path, kw) -> str:
    p = tmp_path / "model.toml"
    p.write_text("[model]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in kw.items()))
    return str(p)


def test_export_refuses_a_destination_with_files_and_leaves_it_alone(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="already holds files"):
        export_model(model_of(), None, str(dest))
    assert os.listdir(dest) == ["mine.txt"] and (dest / "mine.txt").read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    export_model(model_of(), None, str(empty))  # an empty directory is fine
    assert sorted(os.listdir(empty)) == ["config.json", "model.safetensors"]
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]  # no temporary directory left


def test_export_only_gpt_models(tmp_path):
    from tinyllm.models import build_model

    with pytest.raises(HFFormatError, match="only GPT models"):
        export_model(build_model("mlp", vocab_size=10), None, str(tmp_path / "x"))


# -- reading the files transformers and older tools write ----------------------------------------------

def _rewrite(d, fn):
    t, meta = read_tensors(d)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(encode_safetensors(fn(t), metadata=meta))


def test_reads_unprefixed_names_buffers_and_a_repeated_tied_head(tmp_path):
    m = model_of()
    d = str(tmp_path / "hf")
    export_model(m, None, d)
    T = m.config.block_size

    def old_style(t):  # the original gpt2 file: no prefix, mask buffers, and (some tools) lm_head repeated
        out = {k.removeprefix("transformer."): v for k, v in t.items()}
        for i in range(m.config.n_layer):
            out[f"h.{i}.attn.bias"] = np.tril(np.ones((T, T), np.float32))[None, None]
            out[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
        out["lm_head.weight"] = t["transformer.wte.weight"]
        return out

    _rewrite(d, old_style)
    assert "h.0.attn.bias" in read_tensors(d)[0]
    np.testing.assert_array_equal(host(load_pretrained_model(d)(tokens())), host(m(tokens())))


def test_block_size_crops_the_position_table(tmp_path):
    m = model_of()
    d = str(tmp_path / "hf")
    export_model(m, None, d)
    short = load_pretrained_model(d, block_size=8)
    assert short.config.block_size == 8 and short.wpe.weight.shape == (8, 16)
    ids = tokens(8)
    np.testing.assert_array_equal(host(short(ids)), host(m(ids)))
    with pytest.raises(HFFormatError, match="n_positions 24"):
        load_pretrained_model(d, block_size=25)


def _gpt2_dir(tmp_path, bpe_text="the cat sat on the mat. " * 40, **kw):
    """A small GPT-2 directory with a byte-level BPE tokenizer, as tinyllm exports it."""
    pytest.importorskip("tokenizers", reason="tokenizers is not installed (pip install 'tinyllm[bpe]')")
    from tinyllm.data.bpe import train_bpe

    tok = train_bpe([bpe_text], 262)
    d = str(tmp_path / "gpt2")
    export_model(model_of(**{"vocab_size": tok.vocab_size, **kw}), tok, d)
    return d, tok


def _break(d, how):
    p = lambda f: os.path.join(d, f)  # noqa: E731
    if how == "no config":
        os.remove(p("config.json"))
    elif how == "bad json":
        open(p("config.json"), "w").write("{not json")
    elif how == "llama":
        c = json.load(open(p("config.json")))
        json.dump({**c, "model_type": "llama"}, open(p("config.json"), "w"))
    elif how == "erf gelu":
        c = json.load(open(p("config.json")))
        json.dump({**c, "activation_function": "gelu"}, open(p("config.json"), "w"))
    elif how == "no weights":
        os.rename(p("model.safetensors"), p("pytorch_model.bin"))
    elif how == "damaged weights":
        open(p("model.safetensors"), "r+b").truncate(100)
    elif how == "missing tensor":
        _rewrite(d, lambda t: {k: v for k, v in t.items() if k != "transformer.h.1.mlp.c_fc.bias"})
    elif how == "wrong shape":
        _rewrite(d, lambda t: {**t, "transformer.ln_f.weight": np.ones(17, np.float32)})
    elif how == "foreign tensor":
        _rewrite(d, lambda t: {**t, "multiple_choice_head.summary.weight": np.ones((16, 1), np.float32)})
    elif how == "no tokenizer":
        os.remove(p("tokenizer.json"))
    elif how == "merges without vocab":
        os.remove(p("tokenizer.json"))
        open(p("merges.txt"), "w").write("#version: 0.2\n")
    elif how in ("bigger vocab", "smaller vocab"):
        c = json.load(open(p("config.json")))
        json.dump({**c, "vocab_size": 300 if how == "bigger vocab" else 100}, open(p("config.json"), "w"))


BROKEN = [("no config", "config.json is missing"), ("bad json", "config.json cannot be read as JSON"),
          ("llama", "'llama' model"), ("erf gelu", "activation_function 'gelu'"),
          ("no weights", "model.safetensors is missing; the directory has pytorch_model.bin"),
          ("damaged weights", "model.safetensors is not a readable safetensors file"),
          ("missing tensor", "lacks tensor 'transformer.h.1.mlp.c_fc.bias'"),
          ("wrong shape", "'transformer.ln_f.weight' has shape (17,)"),
          ("foreign tensor", "'multiple_choice_head.summary.weight'"),
          ("no tokenizer", "has no tokenizer: it needs tokenizer.json, or vocab.json + merges.txt"),
          ("merges without vocab", "vocab.json is missing"),
          ("bigger vocab", "model.safetensors: tensor 'transformer.wte.weight' has shape (262, 16), config.json "
                           "implies (300, 16)"),
          ("smaller vocab", "has 262 tokens, more than the model's vocab_size 100 in config.json")]


@pytest.mark.parametrize("how, words", BROKEN)
def test_a_missing_or_mismatched_file_is_one_line_exit_2(how, words, tmp_path, capsys):
    d, _ = _gpt2_dir(tmp_path)
    _break(d, how)
    for argv in (["sample", "--init-from", d, "--max-new-tokens", "3", "--device", "cpu"],
                 ["train", "--init-from", d, "--data", "names", "--steps", "1", "--out", str(tmp_path / "run")]):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == EXIT_BAD_INPUT and len(err) == 1 and err[0].startswith("error: "), err
        assert words in err[0], err[0]
    assert not os.path.exists(tmp_path / "run")


def test_init_from_a_hub_name_is_refused_without_a_download(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--init-from", "gpt2"]) == EXIT_BAD_INPUT
    assert "is not a directory" in capsys.readouterr().err and os.listdir(tmp_path) == []


# -- the CLI: sample from a GPT-2 directory, fine-tune it, export a run ------------------------------

def test_sample_and_fine_tune_from_a_gpt2_directory(tmp_path, capsys):
    text = "the cat sat on the mat. the dog sat on the log. " * 30
    d, tok = _gpt2_dir(tmp_path, text)
    data = tmp_path / "my.txt"
    data.write_text(text)
    assert main(["sample", "--init-from", d, "--prompt", "the cat", "--temperature", "0", "--max-new-tokens", "5",
                 "--num-samples", "2", "--device", "cpu"]) == 0
    a, sep, b = capsys.readouterr().out.splitlines()
    model, _ = load_pretrained(d)
    want = "the cat" + tok.decode(generate_batch(model, tok.encode("the cat"), 5, temperature=0.0)[0])
    assert a == b == want and sep == "-" * 40
    run = str(tmp_path / "run")
    assert main(["train", "--init-from", d, "--data", str(data), "--steps", "4", "--eval-interval", "2",
                 "--eval-iters", "1", "--batch-size", "2", "--block-size", "16", "--lr", "1e-3", "--samples", "0",
                 "--device", "cpu", "--out", run]) == 0
    log = capsys.readouterr().out
    assert "block 16" in log and f"vocab {tok.vocab_size}" in log
    first = json.loads(open(os.path.join(run, "log.jsonl")).read().splitlines()[1])
    assert first["event"] == "eval" and first["step"] == 0
    from tinyllm.train.trainer import Trainer, TrainConfig

    # step 0's loss is the pretrained model's loss: the weights were loaded, not drawn afresh
    fresh = Trainer(TrainConfig(data=str(data), block_size=16, n_layer=2, n_head=2, n_embd=16, eval_iters=1,
                                batch_size=2, tokenizer="bpe", vocab_size=262, out=str(tmp_path / "x")),
                    verbose=False)
    assert fresh.evaluate()["val"] != pytest.approx(first["val"])
    assert main(["train", "--resume", "--out", run, "--steps", "6", "--samples", "0"]) == 0
    capsys.readouterr()
    hf2 = str(tmp_path / "hf2")
    assert main(["export", "--out", run, hf2]) == 0
    assert "tokenizer.json" in capsys.readouterr().out
    assert sorted(os.listdir(hf2)) == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert load_pretrained(hf2)[1].encode(text) == tok.encode(text)


def test_export_a_char_run_says_the_tokenizer_stays_behind(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--steps", "1",
                 "--eval-iters", "1", "--samples", "0", "--device", "cpu", "--out", run]) == 0
    capsys.readouterr()
    assert main(["export", "--out", run, str(tmp_path / "hf")]) == 0
    out = capsys.readouterr().out
    assert "char tokenizer has no Hugging Face form" in out and "from_pretrained" in out
    assert main(["export", "--out", str(tmp_path / "none"), str(tmp_path / "hf2")]) == EXIT_BAD_INPUT
    assert "no checkpoint" in capsys.readouterr().err


def test_gpt2_config_bos_is_the_tokenizers():
    assert gpt2_config(GPTConfig(**SMALL), bos_id=0)["eos_token_id"] == 0
    assert gpt2_config(GPTConfig(**SMALL))["bos_token_id"] is None


# -- transformers as the reference, both ways ---------------------------------------------------------

def hf_logits(hf, ids):
    with torch.no_grad():
        return hf(torch.tensor(ids)).logits.numpy()


def hf_greedy(hf, ids, n):
    with torch.no_grad():
        out = hf.generate(torch.tensor(ids), max_new_tokens=n, do_sample=False, use_cache=True,
                          eos_token_id=None, pad_token_id=0)
    return out[:, ids.shape[1]:].tolist()


@needs_hf
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_tinyllm_to_transformers_logits_and_greedy_tokens(backend, variant, tmp_path):
    m = model_of(backend, **VARIANTS[variant])
    export_model(m, None, str(tmp_path / "hf"))
    hf = GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf")).eval()
    ids = tokens()
    np.testing.assert_allclose(host(m(ids)), hf_logits(hf, ids), atol=1e-5, rtol=0)
    prompt = ids[:, :4]
    ours = generate_batch(m, prompt[0].tolist(), max_new_tokens=16, temperature=0.0)  # KV cache
    assert ours == [hf_greedy(hf, prompt[:1], 16)[0]]


@needs_hf
@pytest.mark.parametrize("tied", [True, False])
def test_transformers_to_tinyllm_logits_and_greedy_tokens(backend, tied, tmp_path):
    torch.manual_seed(0)
    conf = GPT2Config(vocab_size=41, n_positions=32, n_embd=24, n_layer=2, n_head=3, tie_word_embeddings=tied,
                      bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(conf).eval()
    with torch.no_grad():  # non-trivial biases and gains (GPT-2 initialises them to 0 and 1)
        for n, p in hf.named_parameters():
            if n.endswith("bias") or ".ln_" in n:
                p.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(str(tmp_path / "hf"))
    m = load_pretrained_model(str(tmp_path / "hf"), backend)
    assert m.config.tie_weights is tied and m.config.block_size == 32
    ids = tokens(20, 41)
    np.testing.assert_allclose(host(m(ids)), hf_logits(hf, ids), atol=1e-5, rtol=0)
    prompt = ids[:1, :3]
    assert generate_batch(m, prompt[0].tolist(), max_new_tokens=20, temperature=0.0) == hf_greedy(hf, prompt, 20)


@needs_hf
def test_exported_tokenizer_loads_in_transformers(tmp_path):
    d, tok = _gpt2_dir(tmp_path, "Hello world, héllo wörld! 😀 " * 20)
    at = transformers.AutoTokenizer.from_pretrained(d)
    text = "Hello wörld 😀, hi"
    assert at(text)["input_ids"] == tok.encode(text)
    assert at.decode(tok.encode(text)) == text == tok.decode(tok.encode(text))


# -- GPT-2 124M's shape ---------------------------------------------------------------------------

GPT2_124M = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


@pytest.mark.slow  # about 20 s idle (500 MB of weights written, read and compared)
def test_gpt2_124m_shape_loads_samples_50_tokens_and_exports(tmp_path):
    m = GPT(GPTConfig(**GPT2_124M), device="cpu", seed=0)
    assert 124_000_000 < m.num_parameters() < 125_000_000  # GPT-2 small: 124.44M
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    export_model(m, None, a)
    del m
    loaded = load_pretrained_model(a)
    prompt = list(range(100, 108))
    out = generate_batch(loaded, prompt, max_new_tokens=50, temperature=0.0)[0]  # KV cache
    assert len(out) == 50 and all(0 <= t < 50257 for t in out)
    export_model(loaded, None, b)
    with open(os.path.join(a, "model.safetensors"), "rb") as fa, open(os.path.join(b, "model.safetensors"), "rb") as fb:
        assert fa.read() == fb.read()
    if HAVE_HF:  # the same 50 tokens from transformers' generate
        hf = GPT2LMHeadModel.from_pretrained(b).eval()
        assert hf_greedy(hf, np.array([prompt]), 50)[0] == out


# -- no torch needed; the benchmark script -----------------------------------------------------------

def test_export_and_init_from_need_no_torch(tmp_path):
    """In a process where torch and transformers cannot be imported at all."""
    import subprocess
    import sys

    d, _ = _gpt2_dir(tmp_path)
    code = (f"import sys; sys.modules['torch'] = sys.modules['transformers'] = None\n"
            f"from tinyllm.cli import main\n"
            f"assert main(['sample', '--init-from', {d!r}, '--max-new-tokens', '4', '--num-samples', '1']) == 0\n"
            f"assert main(['train', '--init-from', {d!r}, '--data', 'names', '--steps', '1', '--eval-iters', '1', "
            f"'--samples', '0', '--device', 'cpu', '--out', {str(tmp_path / 'run')!r}]) == 0\n"
            f"assert main(['export', '--out', {str(tmp_path / 'run')!r}, {str(tmp_path / 'hf2')!r}]) == 0\n"
            f"assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "hf2")) == ["config.json", "model.safetensors", "tokenizer.json",
                                                    "tokenizer_config.json"]


@needs_hf
def test_bench_generate_script_runs_its_gate():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench", "bench_generate.py"), "--small", "--rounds", "1",
                        "--new-tokens", "5", "--json"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["same_greedy_tokens"] is True and r["threads"] == r["torch_threads"] == 1
    assert r["tinyllm"]["tok_s_median"] > 0 and r["ratio_tok_s"] == pytest.approx(
        r["tinyllm"]["tok_s_median"] / r["transformers"]["tok_s_median"])


def test_reads_a_bfloat16_file(tmp_path):
    """Hugging Face models are often saved in bfloat16, which NumPy lacks: widened to float32 exactly."""
    import struct

    m = model_of()
    d = str(tmp_path / "hf")
    export_model(m, None, d)
    t, meta = read_tensors(d)
    halves = {k: (v.view(np.uint32) >> 16).astype("<u2") for k, v in t.items()}  # truncate to bf16
    header, blobs, at = {"__metadata__": meta}, [], 0  # the safetensors format, written by hand
    for k, v in halves.items():
        header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [at, at + v.nbytes]}
        blobs.append(v.tobytes())
        at += v.nbytes
    head = json.dumps(header).encode()
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    back = dict(load_pretrained_model(d).named_parameters())
    for k, v in halves.items():
        ours = k.removeprefix("transformer.").replace("h.", "blocks.").replace("ln_1", "ln1").replace("ln_2", "ln2")
        ours = ours.replace("c_attn", "qkv").replace("attn.c_proj", "attn.proj").replace("c_fc", "fc")
        ours = ours.replace("mlp.c_proj", "mlp.proj")
        np.testing.assert_array_equal(host(back[ours]), (v.astype(np.uint32) << 16).view(np.float32), err_msg=k)
