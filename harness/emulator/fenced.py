"""CPU tensors fenced by inaccessible memory, for kernels run on the emulator.

A kernel whose index goes wrong by more than the NaN guard zones around the harness's buffers
(harness/check.py) would otherwise read or write whatever the process keeps there: the Python heap,
another tensor. It might pass, or corrupt memory and abort the process later. Here each buffer ends
within 256 bytes of a gigabyte of reserved, inaccessible address space, with another before it, so
such an access faults at once, and the emulator reports the fault as the launch's error: on a GPU,
"an illegal memory access was encountered". The reservations cost address space, not memory.
"""
from __future__ import annotations

import ctypes
import mmap
import sys

import torch

FENCE_BYTES = 1 << 30  # on each side: an index off by up to a gigabyte faults
ALIGNMENT = 256  # a cudaMalloc'd buffer starts 256-byte aligned; so does this one's first element
PROT_NONE, PROT_READ_WRITE = 0, mmap.PROT_READ | mmap.PROT_WRITE

_libc = None


def _c_library():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc = libc
    return _libc


class _Reservation:
    """Owns one mapping; unmapped when the last tensor over it is gone."""

    def __init__(self, address: int, length: int):
        self.address, self.length = address, length

    def __del__(self):
        _c_library().munmap(self.address, self.length)


def fenced_empty(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised 1-D CPU tensor of `numel` elements between two inaccessible fences. Where the
    platform has no mmap (not Linux or macOS), a plain tensor: the NaN guard zones still apply."""
    nbytes = max(1, numel) * torch.empty((), dtype=dtype).element_size()
    if not sys.platform.startswith(("linux", "darwin")):
        return torch.empty(numel, dtype=dtype)
    libc = _c_library()
    page = mmap.PAGESIZE
    body = -(-nbytes // page) * page
    length = FENCE_BYTES + body + FENCE_BYTES
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
    address = libc.mmap(None, length, PROT_NONE, flags, -1, 0)
    if address is None or address == ctypes.c_void_p(-1).value:
        return torch.empty(numel, dtype=dtype)  # no address space to spare: guard zones only
    reservation = _Reservation(address, length)
    if libc.mprotect(address + FENCE_BYTES, body, PROT_READ_WRITE) != 0:
        return torch.empty(numel, dtype=dtype)
    # The buffer's end as close to the upper fence as its alignment allows.
    start = address + FENCE_BYTES + (body - nbytes) // ALIGNMENT * ALIGNMENT
    window = (ctypes.c_char * nbytes).from_address(start)
    window.reservation = reservation  # the tensor holds the window, the window the mapping
    return torch.frombuffer(window, dtype=dtype, count=numel) if numel else torch.empty(0, dtype=dtype)
