"""The group of processes a run trains with: one process (NullWorld) or an MPI world.

A process started by an MPI launcher (`mpiexec -n N tinyllm train ...`) finds
the world by itself: the launcher sets OMPI_COMM_WORLD_SIZE (Open MPI) or
PMI_SIZE (MPICH, Intel MPI, Slurm's PMI), and then mpi4py is imported here and
nowhere else. Without those variables a run is one process and never imports
mpi4py. TINYLLM_DIST=none forces one process; TINYLLM_DIST=mpi forces MPI.
Under a launcher of several processes every rank, one told TINYLLM_DIST=none
too, first tells the others whether it trains with them (agree_on_mode): a rank
that alone trained by itself would leave the others waiting for it forever.

The collectives take host arrays (NumPy, via the backend's to_host) or, where
the MPI is CUDA-aware, CuPy arrays: mpi4py reads both through the buffer
protocol / __cuda_array_interface__, so nothing here imports numpy or cupy.
"""
from __future__ import annotations

import os
import pickle

from backends.env import flag, setting

from ..errors import ConfigError

LAUNCH_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")  # set by Open MPI's and MPICH-family launchers
INSTALL = "pip install 'tinyllm[mpi]' (mpi4py and Open MPI; or mpi4py built against your cluster's MPI)"


class DistError(ConfigError):
    """A distributed launch that cannot work (no mpi4py, ranks that disagree); exit 2 on every rank."""


class NullWorld:
    """One process: rank 0 of 1. The collectives return what they are given."""

    rank, size, local_rank = 0, 1, 0
    name = "single process"
    cuda_aware = False

    @property
    def root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, buf) -> None:
        """Sum buf (a host array, or a device array where cuda_aware) over all ranks, in place."""

    def bcast_buffer(self, buf) -> None:
        """Overwrite buf with rank 0's buf, in place."""

    def bcast(self, obj):
        return obj

    def allgather(self, obj) -> list:
        return [obj]


class MPIWorld(NullWorld):
    """COMM_WORLD through mpi4py. local_rank is the rank among the processes of this machine."""

    def __init__(self):
        launched = ", ".join(f"{k}={os.environ[k]}" for k in LAUNCH_VARS if k in os.environ)
        try:
            from mpi4py import MPI
        except ImportError as e:
            why = f" ({launched})" if launched else ""
            raise DistError(f"started by an MPI launcher{why} but mpi4py cannot be imported ({e}); "
                            f"install it: {INSTALL}") from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = node.Get_rank()
        node.Free()
        self.cuda_aware = _cuda_aware(MPI)
        self.name = f"MPI rank {self.rank} of {self.size} ({MPI.Get_library_version().splitlines()[0].strip()})"

    def allreduce_sum(self, buf) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def bcast_buffer(self, buf) -> None:
        self.comm.Bcast(buf, root=0)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)


def _cuda_aware(MPI) -> bool:
    """Whether device buffers may go to MPI as they are (Open MPI's and MPICH's query; TINYLLM_CUDA_AWARE_MPI=0/1
    overrides it). Untested here: this machine has no GPU."""
    forced = flag("TINYLLM_CUDA_AWARE_MPI", unset=None)  # a flag: "1", "on", "0", "off", ... (backends/env.py)
    if forced is not None:
        return forced
    query = getattr(MPI, "Query_cuda_support", None)
    try:
        return bool(query()) if query is not None else False
    except Exception:  # an MPI without the extension
        return False


def launch_size() -> int:
    """How many processes an MPI launcher started (1: none did)."""
    for k in LAUNCH_VARS:
        try:
            return int(os.environ[k])
        except (KeyError, ValueError):
            continue
    return 1


def agree_on_mode() -> None:
    """Every rank of a launch of several processes: the same answer to "train together?" (else DistError on
    every rank). Without mpi4py nothing can be asked: MPIWorld then says what to install."""
    try:
        from mpi4py import MPI
    except ImportError:
        return
    try:
        mine = launched_by_mpi()
    except DistError:
        mine = None  # an unknown TINYLLM_DIST: told to the others, then raised here
    everyone = MPI.COMM_WORLD.allgather((mine, os.environ.get("TINYLLM_DIST")))
    if mine is None:
        launched_by_mpi()
    if len({m for m, _ in everyone}) == 1:
        return
    groups: dict = {}
    for rank, (m, mode) in enumerate(everyone):
        groups.setdefault((m, mode), []).append(str(rank))
    said = [f"rank{'s' if len(r) > 1 else ''} {', '.join(r)} "
            f"{'TINYLLM_DIST unset' if mode is None else f'TINYLLM_DIST={mode}'} "
            f"({'with MPI' if m else 'alone' if m is False else 'unknown'})" for (m, mode), r in groups.items()]
    raise DistError(f"the ranks disagree on training together: {'; '.join(said)}; give every rank the same "
                    f"TINYLLM_DIST (or none)")


def launched_by_mpi() -> bool:
    mode = setting("TINYLLM_DIST")
    if mode not in ("auto", "mpi", "none"):
        raise DistError(f"TINYLLM_DIST={mode!r}: use auto (find an MPI launch by itself), mpi or none")
    if mode != "auto":
        return mode == "mpi"
    return any(k in os.environ for k in LAUNCH_VARS)


_WORLD = None


def current_world():
    """The world of this process, found once (DistError when launched by MPI without mpi4py)."""
    global _WORLD
    if _WORLD is None:
        if launch_size() > 1:
            agree_on_mode()
        _WORLD = MPIWorld() if launched_by_mpi() else NullWorld()
    return _WORLD


def picklable(err: BaseException) -> BaseException:
    """err, or a DistError with its message where it cannot cross to the other ranks."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return DistError(str(err))
