"""Run variants on the CPU: each .cu file is compiled with g++ against emu_runtime.h (one fiber per
CUDA thread, real barriers for __syncthreads and shuffles) and launched through ctypes on CPU tensors.

This is how CI, which has no GPU, still runs every kernel: it catches wrong indexing, unguarded
tails, unwritten outputs, out-of-bounds accesses (with the guarded, fenced buffers of harness.check:
a fault is the launch's error, see FaultGuard in emu_runtime.h and fenced.py), barriers
or full-mask shuffles after threads returned, and launch lines that pass the wrong number or types
of arguments. It measures nothing about speed and cannot reproduce races that only the GPU's memory
ordering exposes: the GPU tests remain the authority. Inside recording_accesses() variants load a
second, instrumented build that records every memory access (include/emu_profile.h), which
harness/access_profile.py counts as a GPU's memory requests.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from harness.compile import CACHE_DIR, KERNELS_DIR, local_includes
from harness.errors import UserError
from harness.gpu import kernel_arg

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
EMULATED_SMS = 4  # small, so grid-stride loops take several turns

# extern __shared__ [__align__(n)] T name[];  ->  a pointer into the launch's dynamic shared memory
DYNAMIC_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([\w:]+)\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?(\w+)\s*\[\s*\]\s*;")
# __shared__ T name[...]...; (or a single T, or several: T a, b[4];)  ->  statics, each registered so it
# is poisoned
STATIC_SHARED = re.compile(r"__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s+)?[\w:<>]+)\s+"
                           r"(\w+\s*(?:\[[^\]]*\])*(?:\s*,\s*\w+\s*(?:\[[^\]]*\])*)*)\s*;")
DECLARATOR = re.compile(r"(\w+)\s*((?:\[[^\]]*\])*)")
KERNEL = re.compile(r'extern\s+"C"\s+__attribute__\s*\(\(used\)\)\s+void\s+(\w+)\s*\(([^)]*)\)')

SCALAR_TYPES = {
    "int": ctypes.c_int, "unsigned": ctypes.c_uint, "unsigned int": ctypes.c_uint, "float": ctypes.c_float,
    "double": ctypes.c_double, "long": ctypes.c_long, "size_t": ctypes.c_size_t, "long long": ctypes.c_longlong,
    "bool": ctypes.c_bool, "int64_t": ctypes.c_int64, "uint32_t": ctypes.c_uint32,
}
POINTEE_DTYPES = {"float": torch.float32, "float2": torch.float32, "float4": torch.float32,
                  "__nv_bfloat16": torch.bfloat16, "int": torch.int32}


class EmulationError(RuntimeError):
    """The emulator saw undefined behaviour, a hang or a bad launch."""


@dataclass(frozen=True)
class SiteCounts:
    """One load or store instruction's memory requests over a launch (emu_profile.h says how they
    are counted): sectors for global memory, wavefronts for shared memory, and the ideal number."""
    pc_offset: int  # the instruction's address in the emulator's library (harness.access_profile finds its line)
    space: str  # "global" or "shared"
    write: bool
    size: int  # bytes per lane
    requests: int  # warp-level instructions
    lanes: int  # lane accesses over those requests
    transactions: int  # 32-byte sectors (global) or wavefronts (shared)
    ideal: int  # the fewest the same bytes could take


@dataclass(frozen=True)
class LaunchAccesses:
    kernel: str
    library: Path
    grid: tuple
    block: tuple
    sites: list[SiteCounts]
    unaligned_lanes: int = 0  # lane traces too unlike their warp's to align: matched by occurrence instead


class _SiteRecord(ctypes.Structure):  # emu::profile::Record
    _fields_ = [("pc_offset", ctypes.c_uint64), ("space", ctypes.c_uint32), ("write", ctypes.c_uint32),
                ("size", ctypes.c_uint32), ("requests", ctypes.c_uint64), ("lanes", ctypes.c_uint64),
                ("transactions", ctypes.c_uint64), ("ideal", ctypes.c_uint64)]


_recorded: list[LaunchAccesses] | None = None


@contextmanager
def recording_accesses():
    """Within it, variants bound for the CPU load their profiled builds, and each launch's memory
    access counts are appended to the list it yields."""
    global _recorded
    if _recorded is not None:
        raise RuntimeError("recording_accesses() does not nest")
    _recorded = []
    try:
        yield _recorded
    finally:
        _recorded = None


@dataclass(frozen=True)
class Param:
    name: str
    type: str

    @property
    def is_pointer(self) -> bool:
        return "*" in self.type

    @property
    def base_type(self) -> str:
        words = [w for w in re.sub(r"[*&]", " ", self.type).split()
                 if w not in ("const", "volatile", "__restrict", "__restrict__")]
        return " ".join(words)


def parse_params(text: str) -> list[Param]:
    params = []
    for raw in (p.strip() for p in text.split(",")):
        if not raw or raw == "void":
            continue
        match = re.match(r"(.*?)(\w+)\s*$", raw, re.S)
        params.append(Param(name=match.group(2), type=" ".join(match.group(1).split())))
    return params


def transform_source(text: str) -> str:
    text = DYNAMIC_SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>"
                                        f"(emu::dynamic_shared());", text)
    return STATIC_SHARED.sub(lambda m: " ".join(
        f"static {m.group(1)} {d.group(1)}{d.group(2)}; emu::register_shared(&{d.group(1)}, sizeof({d.group(1)}));"
        for d in DECLARATOR.finditer(m.group(2))), text)


def transformed_headers(source: Path, mirror: Path) -> list[str]:
    """The -I options that stand for the source's folder and kernels/ (in that order, as NVRTC's): a
    copy of kernels/ under `mirror` holding every header the source includes, each put through
    transform_source, so the __shared__ arrays a header declares (a product's slices, say) are the
    block's shared memory too: poisoned per block, and seen as shared by ldmatrix and the profile.
    #line keeps each copy's accesses named after the original file."""
    for header in local_includes(source):
        if header.is_relative_to(KERNELS_DIR):
            copy = mirror / header.relative_to(KERNELS_DIR)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(f'#line 1 "{header}"\n' + transform_source(header.read_text()))
    folder = mirror / source.parent.relative_to(KERNELS_DIR) if source.is_relative_to(KERNELS_DIR) else source.parent
    return [f"-I{folder}", f"-I{mirror}"]


def wrapper(name: str, params: list[Param]) -> str:
    aliases = "".join(f"    using A{i} = {p.type.replace('__restrict', '')};\n" for i, p in enumerate(params))
    call_args = ", ".join(f"*reinterpret_cast<A{i}*>(args[{i}])" for i in range(len(params)))
    return (f'\nextern "C" const char* emu_launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
            f"unsigned by, unsigned bz, size_t shared_bytes, void** args) {{\n{aliases}"
            f"    static std::string error;\n"
            f"    error = emu::launch(dim3(gx, gy, gz), dim3(bx, by, bz), shared_bytes, [&] {{ {name}({call_args}); }});\n"
            f"    return error.c_str();\n}}\n")


def _find_compiler() -> str | None:
    """$CXX when it names a compiler that exists, else g++, else clang++."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return shutil.which("g++") or shutil.which("clang++")


def compiler_missing() -> str | None:
    """Why the emulator cannot build kernels here (no C++ compiler), or None when it can."""
    if _find_compiler():
        return None
    if os.environ.get("CXX"):
        return f"the CPU emulator's compiler $CXX={os.environ['CXX']} was not found"
    return "the CPU emulator needs a C++20 compiler: install g++ (apt-get install g++)"


def _compiler() -> str:
    missing = compiler_missing()
    if missing:
        raise UserError(missing)
    return _find_compiler()


@lru_cache(maxsize=None)
def uninitialised_pattern_flags() -> tuple[str, ...]:
    """g++ 12+ and clang fill every uninitialised local with a byte pattern (0xFE: a float of about
    -1.7e38), as a GPU leaves a register holding garbage. A fiber's fresh stack is otherwise zeros,
    and `float sum;` with no `= 0.0f` would sum correctly here and wrongly on the GPU. (A local set
    on some paths only may still be folded to its one assigned value by g++'s optimiser.)"""
    flag = "-ftrivial-auto-var-init=pattern"
    with tempfile.TemporaryDirectory() as work:
        probe = Path(work) / "probe.cpp"
        probe.write_text("int main() { int x; return x; }\n")
        done = subprocess.run([_compiler(), flag, "-c", str(probe), "-o", str(Path(work) / "probe.o")],
                              capture_output=True)
    return (flag,) if done.returncode == 0 else ()


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulationError(f"{what} failed:\n{result.stderr[-4000:]}")
    return result.stdout


# The memory-access profile (emu_profile.h): g++'s ThreadSanitizer instrumentation calls a hook
# before every load and store, its coverage instrumentation one at every basic block, and the
# profile header, not libtsan, provides the hooks (so the object is linked without -fsanitize, and
# -z defs proves nothing is left for a sanitizer runtime). -fno-threadsafe-statics: a guarded static
# would call ThreadSanitizer's atomics, and a launch runs on one OS thread anyway. -fno-tree-sra keeps
# a 16-byte vector copy one 16-byte access, as the GPU's one 128-bit instruction, where g++ would
# otherwise split it into four floats; -g gives addr2line the source line of each access.
PROFILE_COMPILE_FLAGS = ("-DEMU_PROFILE", "-fsanitize=thread", "-fsanitize-coverage=trace-pc", "-fno-threadsafe-statics",
                         "-fno-tree-sra", "-g")
PROFILE_LINK_FLAGS = ("-Wl,-z,defs", "-ldl")


@lru_cache(maxsize=None)
def build(source: Path, dtype: str, profiled: bool = False) -> tuple[Path, dict[str, list[Param]]]:
    """Compile `source` for the emulator; returns the shared library and each kernel's parameters.
    `profiled`: the build that records every memory access (harness/access_profile.py)."""
    source = Path(source).resolve()
    defines = ["-DWB_BF16"] if dtype == "bf16" else []
    digest = hashlib.sha256()
    for path in [source, *local_includes(source), *sorted(INCLUDE_DIR.rglob("*.h")), Path(__file__)]:
        digest.update(path.read_bytes())
    digest.update(repr((defines, _compiler(), uninitialised_pattern_flags(), profiled)).encode())
    folder = CACHE_DIR / "emulator"
    library = folder / f"{source.stem}-{dtype}{'-profiled' if profiled else ''}-{digest.hexdigest()[:20]}.so"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as work:
        includes = [f"-I{INCLUDE_DIR}", *transformed_headers(source, Path(work) / "kernels")]
        transformed = Path(work) / source.name.replace(".cu", ".cpp")
        transformed.write_text('#include "emu_runtime.h"\n#line 1 "' + str(source) + '"\n' + transform_source(source.read_text()))
        expanded = _run([_compiler(), "-std=c++20", "-E", "-P", *defines, *includes, str(transformed)],
                        f"preprocessing {source.name}")
        kernels = {m.group(1): parse_params(m.group(2)) for m in KERNEL.finditer(expanded)}
        if not kernels:
            raise EmulationError(f'{source}: no extern "C" __global__ kernels found')
        if not library.exists():
            unit = Path(work) / "unit.cpp"
            unit.write_text(transformed.read_text() + "".join(wrapper(n, p) for n, p in kernels.items()))
            output = Path(work) / "unit.so"
            flags = ["-std=c++20", "-O1", "-fPIC", "-pthread", "-w", *uninitialised_pattern_flags(), *defines, *includes]
            if profiled:
                objects = Path(work) / "unit.o"
                _run([_compiler(), *flags, *PROFILE_COMPILE_FLAGS, "-c", str(unit), "-o", str(objects)],
                     f"compiling {source.name} for the emulator's access profile")
                _run([_compiler(), "-shared", "-pthread", str(objects), *PROFILE_LINK_FLAGS, "-o", str(output)],
                     f"linking {source.name} for the emulator's access profile")
            else:
                _run([_compiler(), *flags, "-g0", "-shared", str(unit), "-o", str(output)],
                     f"compiling {source.name} for the emulator")
            os.replace(output, library)
    return library, kernels


class EmulatedKernel:
    def __init__(self, function, name: str, params: list[Param], dtype: str, profile=None):
        self._function, self.name, self.params, self.dtype = function, name, params, dtype
        self._profile = profile  # the profiled library (its emu_profile_begin/end), or None

    def _pointee_dtype(self, param: Param):
        if param.base_type == "floatX":
            return torch.bfloat16 if self.dtype == "bf16" else torch.float32
        return POINTEE_DTYPES.get(param.base_type)

    def _convert(self, index: int, param: Param, value):
        where = f"{self.name} argument {index} ({param.type} {param.name})"
        if param.is_pointer:
            if value is None:
                return ctypes.c_void_p(0)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{where}: expected a tensor, got {type(value).__name__}")
            if value.device.type != "cpu":
                raise TypeError(f"{where}: the emulator needs CPU tensors")
            expected = self._pointee_dtype(param)
            if expected is not None and value.dtype != expected:
                raise TypeError(f"{where}: tensor has dtype {value.dtype}, the kernel reads {expected}")
            return ctypes.c_void_p(value.data_ptr())
        ctype = SCALAR_TYPES.get(param.base_type)
        if ctype is None:
            raise TypeError(f"{where}: the emulator cannot pass this type")
        if isinstance(value, torch.Tensor) or value is None:
            raise TypeError(f"{where}: expected a scalar, got {type(value).__name__}")
        # On a GPU the C type comes from the Python value (harness.gpu.kernel_arg), not from the
        # signature: an int given for a float parameter arrives as int32 bits, and an int past int32
        # raises. Convert the same way here, so such a launch fails in CI and not only on a GPU.
        try:
            passed = kernel_arg(value)
        except (OverflowError, TypeError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if (passed.dtype.kind == "f") != (ctype in (ctypes.c_float, ctypes.c_double)) \
                or passed.dtype.itemsize != ctypes.sizeof(ctype):
            raise TypeError(f"{where}: a GPU launch passes {value!r} as {passed.dtype}, which a {param.type} "
                            "parameter misreads")
        return ctype(passed.item())

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        grid = tuple(grid) if isinstance(grid, tuple) else (grid,)
        block = tuple(block) if isinstance(block, tuple) else (block,)
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments "
                            f"({', '.join(p.name for p in self.params)}), the launch passed {len(args)}")
        values = [self._convert(i, p, a) for i, (p, a) in enumerate(zip(self.params, args))]
        pointers = (ctypes.c_void_p * max(1, len(values)))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p)
                                                             for v in values])
        dims = [int(x) for x in (grid + (1, 1))[:3] + (block + (1, 1))[:3]]
        if any(d <= 0 for d in dims):
            raise EmulationError(f"{self.name}: grid {grid} and block {block} must be positive")
        recording = self._profile is not None and _recorded is not None
        if recording:
            buffers = [(a.data_ptr(), a.numel() * a.element_size()) for a in args if isinstance(a, torch.Tensor)]
            ranges = (ctypes.c_uint64 * max(1, 2 * len(buffers)))(*[n for pair in buffers for n in pair])
            self._profile.emu_profile_begin(ranges, len(buffers))
        error = self._function(*dims, ctypes.c_size_t(shared_mem), pointers)
        if recording:
            count = ctypes.c_int(0)
            records = self._profile.emu_profile_end(ctypes.byref(count))
            sites = [SiteCounts(r.pc_offset, ("global", "shared")[r.space], bool(r.write), r.size, r.requests,
                                r.lanes, r.transactions, r.ideal) for r in records[:count.value]]
            _recorded.append(LaunchAccesses(self.name, Path(self._profile._name), tuple(grid), tuple(block), sites,
                                            self._profile.emu_profile_unaligned()))
        if error:
            raise EmulationError(f"{self.name} grid={grid} block={block}: {error.decode()}")


class EmulatedKernels:
    """Same interface as harness.gpu.Kernels: k.<kernel>(grid, block, args, shared_mem), k.num_sms."""

    num_sms = EMULATED_SMS

    def __init__(self, library: Path, kernels: dict[str, list[Param]], label: str, dtype: str,
                 profiled: bool = False):
        self._library = ctypes.CDLL(str(library))
        self._kernels, self._label, self._dtype = kernels, label, dtype
        self._cache: dict[str, EmulatedKernel] = {}
        self._profile = None
        if profiled:
            self._profile = self._library
            self._library.emu_profile_begin.argtypes = [ctypes.c_void_p, ctypes.c_int]
            self._library.emu_profile_begin.restype = None
            self._library.emu_profile_end.argtypes = [ctypes.c_void_p]
            self._library.emu_profile_end.restype = ctypes.POINTER(_SiteRecord)
            self._library.emu_profile_unaligned.restype = ctypes.c_ulonglong

    def __getattr__(self, name: str) -> EmulatedKernel:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cache:
            if name not in self._kernels:
                raise AttributeError(f"{self._label} has no kernel named {name!r}; it has {', '.join(self._kernels)}")
            function = getattr(self._library, f"emu_launch_{name}")
            function.restype = ctypes.c_char_p
            function.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_size_t, ctypes.c_void_p]
            self._cache[name] = EmulatedKernel(function, name, self._kernels[name], self._dtype, self._profile)
        return self._cache[name]


class LibraryOnCPU:
    """For library variants (cuBLAS through torch): their launch calls torch, which runs on the CPU as is."""

    num_sms = EMULATED_SMS


def load_variant(variant, dtype: str):
    """The variant's kernels on the emulator: the profiled build inside recording_accesses()."""
    return _load_variant(variant, dtype, _recorded is not None)


@lru_cache(maxsize=None)
def _load_variant(variant, dtype: str, profiled: bool):
    if variant.source is None:
        return LibraryOnCPU()
    library, kernels = build(variant.source, dtype, profiled)
    return EmulatedKernels(library, kernels, f"{variant.id} ({dtype}, emulated{', profiled' if profiled else ''})",
                           dtype, profiled)
