"""What a backward pass allocates, traced (NumPy's allocations are traced by tracemalloc): for the tests
that hold a gradient to making no full-size array."""
import tracemalloc


def backward_peak(loss) -> int:
    """Bytes allocated at the peak of loss.backward() above what was held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        loss.backward()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
