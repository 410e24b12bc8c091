"""Token ids from the host, checked before they go to a device: a model called with host ids, the targets
of cross_entropy, a dataset's token stream. On a GPU an id outside the vocabulary would not raise (CuPy's
take wraps it; a kernel would read past its table), so it is refused here, in one line. Ids already on a
device are not read back to be checked (that would wait for the device); the trainer's come from a stream
checked once when it went over."""
from __future__ import annotations

from backends import backend_of
from backends.ids import ids_outside

from .errors import TokenIdError


def host_data(ids):
    """The host object behind ids (a list, a NumPy array, an array.array, the array of a cpu Tensor),
    or None where ids live on a device (a GPU, array-api-strict's)."""
    owner = getattr(ids, "backend", None)  # a Tensor
    if owner is not None and hasattr(ids, "data"):
        return ids.data if owner.kind == "cpu" else None
    owner = backend_of(ids)
    return ids if owner is None or owner.kind == "cpu" else None


def check_token_ids(ids, vocab_size: int, what: str, skip: "int | None" = None) -> None:
    """TokenIdError naming the first host id outside [0, vocab_size) (ids equal to `skip` allowed)."""
    data = host_data(ids)
    if data is None:
        return
    bad = ids_outside(data, vocab_size, skip)
    if bad:
        (where, v), more = bad[0], len(bad) - 1
        at = f" at {where[0] if len(where) == 1 else where}" if where else ""
        raise TokenIdError(f"{what}: token id {v}{at}{' (and more)' if more else ''} is outside the vocabulary "
                           f"of {vocab_size} (ids 0..{vocab_size - 1}); encode with the model's tokenizer, or "
                           f"give the model a larger vocab_size")
