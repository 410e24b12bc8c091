"""Random (B, T) windows of a token stream, gathered on the device."""
from __future__ import annotations

from ..ids import check_token_ids
from .tokenizers import compact_ids


class Batcher:
    """Holds a token stream on a backend and draws (x, y) windows with a seeded host RNG.

    The stream stays in its compact type (uint8 for up to 256 tokens: one byte a
    token of training text); only the gathered (B, T+1) window becomes int64.
    """

    def __init__(self, tokens, backend, block_size: int, vocab_size: int | None = None, what: str = "the tokens"):
        """vocab_size: the model's; the stream's ids are checked against it on the host (TokenIdError
        naming `what`)."""
        if len(tokens) < block_size + 1:
            raise ValueError(f"{len(tokens)} tokens is shorter than block_size + 1 = {block_size + 1}")
        if vocab_size is not None:
            check_token_ids(tokens, vocab_size, what)
        if isinstance(tokens, (list, tuple)):
            tokens = compact_ids(tokens, max(tokens) + 1)
        self.backend = backend
        self.block_size = block_size
        self.n = len(tokens)
        self.stream = backend.from_host(tokens)  # (N,) uint8/16/32: an array.array is not copied on the cpu
        xp = backend.xp
        self._offsets = xp.arange(block_size + 1, dtype=xp.int64, device=backend.device)[None, :]  # (1, T+1)

    def batch(self, batch_size: int, rng, rows: slice | None = None):
        """rng: a backends.RNG; returns x, y of shape (B, T), y = x shifted by one. rows: only these rows of
        the batch (one rank's share in data-parallel training; the draw is the whole batch's)."""
        xp = self.backend.xp
        starts = rng.host_integers(0, self.n - self.block_size, batch_size)
        starts = self.backend.from_host(starts if rows is None else starts[rows], "int64")
        with self.backend.activate():
            idx = starts[:, None] + self._offsets  # (B, T+1)
            win = xp.astype(xp.reshape(xp.take(self.stream, xp.reshape(idx, (-1,))), idx.shape), xp.int64)
        return win[:, :-1], win[:, 1:]
