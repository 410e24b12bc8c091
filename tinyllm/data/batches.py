"""Random (B, T) windows of a token stream, gathered on the device."""
from __future__ import annotations


class Batcher:
    """Holds a token stream on a backend and draws (x, y) windows with a seeded host RNG."""

    def __init__(self, tokens: list, backend, block_size: int):
        if len(tokens) < block_size + 1:
            raise ValueError(f"{len(tokens)} tokens is shorter than block_size + 1 = {block_size + 1}")
        self.backend = backend
        self.block_size = block_size
        self.n = len(tokens)
        self.stream = backend.from_host(tokens, "int64")  # (N,)
        xp = backend.xp
        self._offsets = xp.arange(block_size + 1, dtype=self.stream.dtype, device=backend.device)[None, :]  # (1, T+1)

    def batch(self, batch_size: int, rng):
        """rng: a backends.RNG; returns x, y of shape (B, T), y = x shifted by one."""
        xp = self.backend.xp
        starts = self.backend.from_host(rng.host_integers(0, self.n - self.block_size, batch_size), "int64")
        with self.backend.activate():
            idx = starts[:, None] + self._offsets  # (B, T+1)
            win = xp.reshape(xp.take(self.stream, xp.reshape(idx, (-1,))), idx.shape)
        return win[:, :-1], win[:, 1:]
