"""The error an op raises for operands whose shapes do not fit together."""


class ShapeError(ValueError):
    """Shapes an op cannot combine; the message names the op and the shapes, e.g. `matmul: (2, 2) @ (1, 3)`."""
