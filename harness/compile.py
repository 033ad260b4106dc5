"""Compile variant .cu files to cubins with NVRTC, and cache them.

This path needs no GPU: NVRTC is a library, so CI compiles every variant for sm_80 and sm_90 with
exactly the code that later builds the cubins a GPU loads. Each (file, dtype, arch) is compiled
once; the cubin is cached under ~/.cache/cuda-workbench keyed by a hash of the source, every
header it includes from kernels/, the options and the NVRTC version.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import site
import sys
from functools import lru_cache
from pathlib import Path

from harness.atomic import atomic_write
from harness.errors import UserError

KERNELS_DIR = Path(__file__).resolve().parent.parent / "kernels"
CACHE_DIR = Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "cuda-workbench"))


class CompileError(Exception):
    """NVRTC rejected a source file; the message holds the compiler's log."""


def _site_dirs() -> list[Path]:
    dirs = [Path(p) for p in site.getsitepackages()]
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.append(Path(user))
    return dirs + [Path(p) for p in sys.path if p.endswith("site-packages")]


@lru_cache(maxsize=1)
def cuda_include_dirs() -> tuple[Path, ...]:
    """Where cuda_bf16.h, cooperative_groups.h and the libcu++ headers they need live.

    Looks at $CUDA_PATH / $CUDA_HOME, /usr/local/cuda, the pip CUDA headers
    (cuda-toolkit[nvrtc,cudart] puts them in site-packages/nvidia/cu13/include) and CuPy's
    bundled CCCL (CUDA 13 moved libcu++ out of the top include folder).
    """
    found: list[Path] = []
    toolkit_roots = [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    candidates = [Path(root) / "include" for root in toolkit_roots if root]
    for site_dir in _site_dirs():
        candidates += [site_dir / "nvidia" / "cu13" / "include", site_dir / "nvidia" / "cuda_runtime" / "include"]
    for candidate in candidates:
        if (candidate / "cuda_bf16.h").exists() and candidate not in found:
            found.append(candidate)
            if (candidate / "cccl" / "cuda" / "std").exists():  # CUDA 13 toolkits keep libcu++ here
                found.append(candidate / "cccl")
            break
    for site_dir in ([] if len(found) > 1 else _site_dirs()):
        libcudacxx = site_dir / "cupy" / "_core" / "include" / "cupy" / "_cccl" / "libcudacxx"
        if libcudacxx.exists() and libcudacxx not in found:
            found.append(libcudacxx)
            break
    if not found or not (found[0] / "cuda_bf16.h").exists():
        raise UserError(
            "CUDA headers not found (cuda_bf16.h). Install them with "
            "`pip install \"cuda-toolkit[nvrtc,cudart]==13.*\"` or set CUDA_PATH to a CUDA toolkit.")
    return tuple(found)


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UserError(f"CuPy is not installed ({exc}); `pip install cupy-cuda13x` (see README)") from exc
    return nvrtc


def nvrtc_version() -> tuple[int, int]:
    return tuple(_nvrtc().getVersion())


def local_includes(source: Path, seen: set[Path] | None = None) -> list[Path]:
    """Every header under kernels/ that `source` includes, directly or not (for the cache key)."""
    seen = set() if seen is None else seen
    for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', source.read_text(), re.M):
        for folder in (source.parent, KERNELS_DIR):
            header = (folder / name).resolve()
            if header.exists() and header not in seen:
                seen.add(header)
                local_includes(header, seen)
                break
    return sorted(seen)


def compile_options(source: Path, dtype: str, arch: str) -> list[str]:
    # The source's own folder first, so a variant can include a helper header beside it.
    # --ptxas-options=-v: ptxas reports each kernel's registers, spills and static shared memory,
    # which kernel_resources() keeps beside the cubin (launch limits are checked without a GPU).
    options = [f"--gpu-architecture={arch}", "-std=c++17", "--ptxas-options=-v", f"-I{source.parent}",
               f"-I{KERNELS_DIR}"]
    options += [f"-I{folder}" for folder in cuda_include_dirs()]
    if dtype == "bf16":
        options.append("-DWB_BF16")
    return options


def _cache_key(source: Path, options: list[str]) -> str:
    digest = hashlib.sha256()
    for path in [source, *local_includes(source)]:
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    digest.update(repr(options).encode())
    digest.update(repr(nvrtc_version()).encode())
    return digest.hexdigest()[:24]


def compile_cubin(source: Path, dtype: str, arch: str) -> Path:
    """Compile `source` for `dtype` and `arch` (e.g. "sm_90"), returning the cached cubin's path.

    Raises CompileError with NVRTC's log when the source does not compile.
    """
    source = Path(source).resolve()
    options = compile_options(source, dtype, arch)
    cubin = CACHE_DIR / f"{source.stem}-{dtype}-{arch}-{_cache_key(source, options)}.cubin"
    if cubin.exists():
        return cubin
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(source.read_text(), source.name, [], [])
    try:
        try:
            nvrtc.compileProgram(program, options)
        except Exception as exc:  # NVRTCError: the log says why
            log = nvrtc.getProgramLog(program)
            raise CompileError(f"{source} ({dtype}, {arch}) failed to compile: {exc}\n{log}") from None
        binary = nvrtc.getCUBIN(program)
        resources = parse_ptxas_report(nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)
    with atomic_write(cubin.with_suffix(".json"), "w") as handle:
        json.dump(resources, handle, indent=1)
    with atomic_write(cubin) as handle:  # a crash never leaves a truncated cubin in the cache
        handle.write(binary)
    return cubin


def parse_ptxas_report(log: str) -> dict[str, dict[str, int]]:
    """Per entry kernel: registers, static shared memory, stack frame and spill bytes, from ptxas -v."""
    kernels: dict[str, dict[str, int]] = {}
    current = None
    for line in log.splitlines():
        entry = re.search(r"Compiling entry function '([^']+)'", line)
        if entry:
            current = kernels.setdefault(entry.group(1), {"registers": 0, "shared_bytes": 0, "stack_bytes": 0,
                                                         "spill_bytes": 0})
            continue
        if current is None:
            continue
        frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if frame:
            current["stack_bytes"] = int(frame.group(1))
            current["spill_bytes"] = int(frame.group(2)) + int(frame.group(3))
        used = re.search(r"Used (\d+) registers", line)
        if used:
            current["registers"] = int(used.group(1))
            smem = re.search(r"(\d+) bytes smem", line)
            current["shared_bytes"] = int(smem.group(1)) if smem else 0
            current = None  # the "Used" line closes the entry's report
    return kernels


def kernel_resources(source: Path, dtype: str, arch: str) -> dict[str, dict[str, int]]:
    """What ptxas reported for each kernel of `source` (compiling it first when needed)."""
    return json.loads(compile_cubin(source, dtype, arch).with_suffix(".json").read_text())
