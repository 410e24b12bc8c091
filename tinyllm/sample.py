"""Text generation: temperature, top-k, top-p (nucleus), greedy, KV cache.

Everything runs in the backend's `xp`; the only host trip per token is one
read of the chosen ids (B ints): the ids are fed back from the device, and the
noise is made there (tinyllm/random.py, keyed by the seed and counted by the
token), so the same seed gives the same samples on every backend.

A model with `new_cache()` (GPT) is decoded incrementally: the prompt is run
once (prefill), then each new token costs one position of work. Positions
are absolute (learned position table), so once the context fills block_size
the last block_size tokens are re-run from position 0 (exactly what a full
recompute would see). Models without a cache (MLP, bigram) recompute the last
block_size tokens each step, which for them is already cheap.

The samples of `complete` come from a generator, `iter_complete`, that decodes
at most SAMPLE_BATCH lines side by side (memory stays bounded for any number
of samples) and text samples one at a time, handing each new piece of text to
a callback: `tinyllm sample` prints as it goes, so Ctrl-C keeps what was
generated.
"""
from __future__ import annotations

import math
import numbers

from backends import backend_of

from .random import RandomStream
from .autograd import no_grad
from .errors import SamplingError

SAMPLING_SITE = 0x5A3D1E  # the generator's call-site word for sampling noise (dropout sites are < 2**31 too)
SAMPLE_BATCH = 64  # lines decoded side by side


def _stream(seed) -> RandomStream:
    """seed: a RandomStream to draw from, an integer >= 0, or None (unpredictable)."""
    if isinstance(seed, RandomStream):
        return seed
    if seed is None:
        return RandomStream.fresh(SAMPLING_SITE)
    if type(seed) is not int or seed < 0:
        raise SamplingError(f"seed must be an integer >= 0, got {seed!r}")
    return RandomStream(seed=seed, site=SAMPLING_SITE)


def _check(max_new_tokens, temperature, top_k, top_p, num_samples) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise SamplingError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not isinstance(temperature, numbers.Real) or not math.isfinite(temperature) or temperature < 0:
        raise SamplingError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
        raise SamplingError(f"top_k must be a positive integer (or None for no limit), got {top_k!r}")
    if top_p is not None and not (0.0 < top_p <= 1.0):
        raise SamplingError(f"top_p must be in (0, 1] (or None for no limit), got {top_p!r}")
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise SamplingError(f"num_samples must be a positive integer, got {num_samples!r}")


def _prompt_ids(prompt, tokenizer) -> list:
    if isinstance(prompt, str):
        if tokenizer is None:
            raise SamplingError("a text prompt needs a tokenizer (pass tokenizer=..., or give token ids)")
        ids = tokenizer.encode(prompt)  # TokenizerError names characters outside the vocabulary
    else:
        ids = _host_ids(prompt)
    if not ids:
        raise SamplingError("the prompt is empty; give at least one token (e.g. the <bos> token)")
    return ids


def _host_ids(prompt) -> list:
    """Token ids as a list of ints, from a list, or (nanoGPT's form) a Tensor or array, each of shape (T,) or (1, T)."""
    to_list, owner = getattr(prompt, "tolist", None), backend_of(prompt)  # a Tensor or NumPy array; a device array
    host = to_list() if to_list is not None else owner.to_host(prompt).tolist() if owner is not None else prompt
    if not isinstance(host, (list, tuple)):  # a range, a generator, one int
        host = list(host) if hasattr(host, "__iter__") and not isinstance(host, (str, bytes)) else [host]
    if host and isinstance(host[0], (list, tuple)):
        if len(host) != 1:
            raise SamplingError(f"generate continues one prompt, got {len(host)} rows; for several samples of "
                                f"one prompt pass num_samples= to generate_batch")
        host = host[0]
    try:
        return [_as_id(i) for i in host]
    except TypeError:
        raise SamplingError(f"a prompt is text (with tokenizer=) or token ids (a list, a Tensor or an array of "
                            f"ints), got {type(prompt).__name__}") from None


def _as_id(i) -> int:
    if isinstance(i, float) and not i.is_integer() or isinstance(i, (str, bytes)):
        raise TypeError(i)
    return int(i)


def filter_probs(xp, logits, temperature: float, top_k: int | None, top_p: float | None):
    """logits (B, V) -> probabilities (B, V) after temperature, top-k and top-p.

    Tokens outside the top-k / nucleus get probability exactly 0.
    """
    z = xp.astype(logits, xp.float64) / temperature
    V = z.shape[-1]
    if top_k is not None and top_k < V:
        kth = xp.sort(z, axis=-1, descending=True)[:, top_k - 1:top_k]  # (B, 1)
        z = xp.where(z < kth, xp.full_like(z, -math.inf), z)  # arrays, not scalars: older namespaces
    p = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    p = p / xp.sum(p, axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        sp = xp.sort(p, axis=-1, descending=True)  # (B, V)
        before = xp.cumulative_sum(sp, axis=-1) - sp  # mass of strictly larger tokens
        kept = before < top_p  # the smallest prefix whose mass reaches top_p (>= 1 token)
        # smallest kept probability per row: every token at least that large stays
        thresh = xp.min(xp.where(kept, sp, xp.full_like(sp, math.inf)), axis=-1, keepdims=True)
        p = xp.where(p >= thresh, p, xp.zeros_like(p))
        p = p / xp.sum(p, axis=-1, keepdims=True)
    return p


def _pick(backend, logits, temperature, top_k, top_p, stream: RandomStream):
    """logits (B, V) -> one token id per row, (B,) int64 on the device (no host read)."""
    xp = backend.xp
    if temperature == 0.0:
        return xp.astype(xp.argmax(logits, axis=-1), xp.int64)
    p = filter_probs(xp, logits, temperature, top_k, top_p)
    cdf = xp.cumulative_sum(p, axis=-1)  # (B, V)
    u = stream.uniform(backend, (p.shape[0], 1), "float64") * cdf[:, -1:]
    idx = xp.sum(xp.astype(cdf <= u, xp.int64), axis=-1)  # first index whose cdf exceeds u
    # a zero-probability token can never be chosen: cdf is flat across it. minimum, not clip:
    # array-api-compat's generic clip indexes with a boolean mask, a hidden sync on a GPU
    return xp.minimum(idx, xp.full_like(idx, p.shape[-1] - 1))


class _Decoder:
    """Next-token logits for B growing sequences, incrementally where the model allows.

    The sequences live on the device (B, L): the prompt is copied in once, each
    chosen token is appended there."""

    def __init__(self, model, seqs: list):
        self.model = model
        self.block = model.config.block_size
        self.cached = hasattr(model, "new_cache")
        self.backend = model.backend
        self.cache = None
        self.pos = 0  # tokens of the current window already in the cache
        self.seq = self.backend.from_host(seqs, "int64")  # (B, L)

    def _run(self, ids, pos):
        logits, _ = self.model(ids, cache=self.cache, pos=pos)
        return logits.data[:, -1, :]  # (B, V)

    def prefill(self):
        window = self.seq[:, max(0, self.seq.shape[1] - self.block):]
        if self.cached:
            self.cache = self.model.new_cache()
            self.pos = window.shape[1]
        return self._run(window, 0)

    def step(self, nxt):
        """nxt (B,) on the device: the token each sequence grew by."""
        xp = self.backend.xp
        self.seq = xp.concat([self.seq, nxt[:, None]], axis=1)
        if not self.cached or self.pos + 1 > self.block:
            return self.prefill()
        out = self._run(nxt[:, None], self.pos)
        self.pos += 1
        return out


def generate_batch(model, prompt, max_new_tokens: int = 100, num_samples: int = 1, temperature: float = 1.0,
                   top_k: int | None = None, top_p: float | None = None, seed=0, stop_token: int | None = None,
                   tokenizer=None, on_step=None) -> list:
    """num_samples continuations of one prompt, decoded side by side (one batch).

    Returns a list of num_samples lists of new token ids (the stop token, if
    reached, is not included). seed: an int, or a tinyllm.random.RandomStream to draw from.
    on_step(ids), if given, gets the token drawn for each row at every step.
    """
    _check(max_new_tokens, temperature, top_k, top_p, num_samples)
    ids = _prompt_ids(prompt, tokenizer)
    V = model.config.vocab_size
    bad = [i for i in ids if not 0 <= i < V]
    if bad:
        raise SamplingError(f"prompt token ids {bad[:5]} are outside the vocabulary (0..{V - 1})")
    backend = model.backend
    stream = _stream(seed)
    out = [[] for _ in range(num_samples)]
    done = [False] * num_samples
    was_training = model.training
    model.eval()
    try:
        with no_grad(), backend.activate():
            dec = _Decoder(model, [list(ids) for _ in range(num_samples)])
            logits = dec.prefill() if max_new_tokens else None
            for step in range(max_new_tokens):
                idx = _pick(backend, logits, float(temperature), top_k, top_p, stream)
                nxt = backend.to_host(idx).tolist()  # the one read per token
                if on_step is not None:
                    on_step(nxt)
                for r, t in enumerate(nxt):
                    if done[r]:
                        continue
                    if stop_token is not None and t == stop_token:
                        done[r] = True
                    else:
                        out[r].append(t)
                if all(done) or step == max_new_tokens - 1:
                    break
                logits = dec.step(idx)
    finally:
        model.train(was_training)
    return out


def generate(model, prompt, max_new_tokens: int = 100, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, seed=0, stop_token: int | None = None, tokenizer=None) -> list:
    """Continue `prompt` (token ids, or text with tokenizer=) by up to max_new_tokens tokens.

    temperature 0 is greedy (argmax); top_k keeps the k most likely tokens,
    top_p the smallest set whose probability reaches p. Returns the new token
    ids only (stopping before stop_token if it is drawn).
    """
    return generate_batch(model, prompt, max_new_tokens, 1, temperature, top_k, top_p, seed, stop_token,
                          tokenizer)[0]


def default_prompt(tokenizer) -> list:
    """Where a sample starts when no prompt is given: <bos>, else a newline, else token 0."""
    if getattr(tokenizer, "bos_id", None) is not None:
        return [tokenizer.bos_id]
    stoi = getattr(tokenizer, "stoi", None)
    if stoi is None:  # e.g. byte-level BPE: every text encodes
        return tokenizer.encode("\n")[:1] or [0]
    return [stoi["\n"]] if "\n" in stoi else [0]


def iter_lines(model, tokenizer, num_samples: int = 10, max_new_tokens: int | None = None,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               seed=0, prompt: str = ""):
    """Whole lines from a line dataset model (names, arithmetic), yielded one by one: start after
    <bos> (plus an optional prompt), stop at the next <bos>; strings, prompt included. At most
    SAMPLE_BATCH lines are decoded side by side, drawing from one RNG."""
    if getattr(tokenizer, "bos_id", None) is None:
        raise SamplingError("sample_lines needs a tokenizer with a <bos> token (a line dataset)")
    _check(0 if max_new_tokens is None else max_new_tokens, 1.0, None, None, num_samples)
    ids = [tokenizer.bos_id] + (tokenizer.encode(prompt) if prompt else [])
    n = max_new_tokens if max_new_tokens is not None else max(16, model.config.block_size)
    rng = _stream(seed)
    sep = " " if getattr(tokenizer, "kind", "char") == "word" and prompt else ""
    for start in range(0, num_samples, SAMPLE_BATCH):
        rows = generate_batch(model, ids, n, min(SAMPLE_BATCH, num_samples - start), temperature, top_k, top_p,
                              rng, tokenizer.bos_id)
        yield from (prompt + (sep if r else "") + tokenizer.decode(r) for r in rows)


def sample_lines(model, tokenizer, num_samples: int = 10, max_new_tokens: int | None = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 seed=0, prompt: str = "") -> list:
    """The lines of iter_lines as a list."""
    return list(iter_lines(model, tokenizer, num_samples, max_new_tokens, temperature, top_k, top_p, seed, prompt))


def iter_text(model, tokenizer, prompt: str | None = None, num_samples: int = 1, max_new_tokens: int = 200,
              temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
              seed=0, on_text=None):
    """Free text continuations (prompt included) for text datasets, decoded one sample at a time and
    yielded as strings. on_text(piece), if given, gets each sample's text as it grows: the prompt,
    then every new token's text (a caller can print as it goes)."""
    _check(max_new_tokens, 1.0, None, None, num_samples)
    ids = tokenizer.encode(prompt) if prompt else default_prompt(tokenizer)
    rng = _stream(seed)
    head = prompt or ""
    for _ in range(num_samples):
        row, shown = [], [""]
        if on_text is not None:
            on_text(head)

        def step(nxt):
            row.append(nxt[0])
            if getattr(tokenizer, "kind", None) == "char":  # one character a token: no re-decoding
                on_text(tokenizer.decode(nxt))
                return
            text = tokenizer.decode(row)
            on_text(text[len(shown[0]):])
            shown[0] = text

        rows = generate_batch(model, ids, max_new_tokens, 1, temperature, top_k, top_p, rng, None,
                              on_step=None if on_text is None else step)
        yield head + tokenizer.decode(rows[0])


def sample_text(model, tokenizer, prompt: str | None = None, num_samples: int = 1, max_new_tokens: int = 200,
                temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                seed=0) -> list:
    """The samples of iter_text as a list."""
    return list(iter_text(model, tokenizer, prompt, num_samples, max_new_tokens, temperature, top_k, top_p, seed))


def iter_complete(model, tokenizer, prompt: str = "", num_samples: int = 1, max_new_tokens: int | None = None,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, seed=0,
                  on_text=None):
    """Samples as strings, yielded one by one, whatever the data: whole lines (from <bos> to <bos>)
    for line datasets such as names, a max_new_tokens continuation (default 200) for text, where
    on_text gets the text as it is generated (see iter_text)."""
    if getattr(tokenizer, "bos_id", None) is not None:
        return iter_lines(model, tokenizer, num_samples, max_new_tokens, temperature, top_k, top_p, seed, prompt)
    return iter_text(model, tokenizer, prompt or None, num_samples, 200 if max_new_tokens is None else max_new_tokens,
                     temperature, top_k, top_p, seed, on_text)


def complete(model, tokenizer, prompt: str = "", num_samples: int = 1, max_new_tokens: int | None = None,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, seed=0) -> list:
    """The samples of iter_complete as a list."""
    return list(iter_complete(model, tokenizer, prompt, num_samples, max_new_tokens, temperature, top_k, top_p, seed))


__all__ = ["generate", "complete", "iter_complete", "generate_batch", "sample_lines", "iter_lines", "sample_text",
           "iter_text", "filter_probs", "default_prompt", "SamplingError", "SAMPLE_BATCH"]
