"""Data-parallel training across processes and machines over MPI (mpi4py): `mpiexec -n N tinyllm train`."""
from .parallel import DataParallel, collective_errors, rank_device, rank_log
from .world import DistError, MPIWorld, NullWorld, current_world

__all__ = ["DataParallel", "DistError", "MPIWorld", "NullWorld", "collective_errors", "current_world", "rank_device",
           "rank_log"]
