"""The layer contract: what a layer's Python file declares so that the harness, the tests and a
training loop can all call its kernel variants the same way.

A layer pass (say layernorm forward) is an `Op`: its dimensions, the tensors it reads and writes,
its readable reference, its tolerances, and the bytes and FLOPs it must move. Each numbered `.cu`
file in the pass's folder becomes a `Variant` through the `Op.variant` decorator, which sits on
the few lines of Python that give the launch geometry.
"""
from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping

import torch

from harness.errors import ShapeRefused, UserError
from harness.headers import VariantHeader, parse_header

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# A tensor's element type: "x" stands for the op's own dtype (fp32 or bf16); statistics, scratch
# and master copies are often "fp32"; token ids and targets are "i32".
FIXED_ELEMENT_TYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "i32": torch.int32}


def torch_dtype(element_type: str, op_dtype: str) -> torch.dtype:
    if element_type == "x":
        return DTYPES[op_dtype]
    return FIXED_ELEMENT_TYPES[element_type]


def element_size(element_type: str, op_dtype: str) -> int:
    return torch.empty((), dtype=torch_dtype(element_type, op_dtype)).element_size()


@dataclass(frozen=True)
class TensorSpec:
    """One argument tensor: its shape as a function of the op's dimensions, and its element type."""

    shape: Callable[[tuple], tuple[int, ...]]
    element_type: str = "x"

    def numel(self, dims: tuple) -> int:
        return math.prod(self.shape(dims))

    def nbytes(self, dims: tuple, op_dtype: str) -> int:
        return self.numel(dims) * element_size(self.element_type, op_dtype)


@dataclass(frozen=True)
class Tolerance:
    """Elementwise pass rule |out - ref| <= atol + rtol * |ref|."""

    atol: float
    rtol: float


def x128_size(dtype: str) -> int:
    """Elements of the op dtype in one 128-bit access (common.cuh's x128): 4 fp32, 8 bf16."""
    return 16 // element_size("x", dtype)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def block_sizes(*sizes: int) -> list[dict]:
    """Launch configurations that sweep the threads per block."""
    return [{"block_size": size} for size in sizes]


@dataclass(eq=False)  # identity equality: variants are cache keys
class Variant:
    """One numbered kernel file of an op and the Python that launches it."""

    op: "Op"
    number: int
    source: Path | None  # None for library variants (cuBLAS, torch) that have no .cu file
    header: VariantHeader
    launch: Callable  # launch(k, a, s, **config): enqueue the kernels, nothing else
    configs: list[dict]
    dtypes: tuple[str, ...]
    refuse: Callable[[tuple, str, dict], str | None] | None = None
    scratch: Callable[[tuple, str, dict], dict[str, TensorSpec]] | None = None
    archs: tuple[str, ...] = ("sm_80", "sm_90")  # targets the compile check builds for
    deterministic: bool = True  # False: output bits may change from run to run (float atomics add in any order)

    @property
    def name(self) -> str:
        return self.header.title

    @property
    def id(self) -> str:
        return f"{self.op.id}/{self.number}"

    def refusal(self, dims: tuple, dtype: str, config: dict) -> str | None:
        """Why this variant cannot run this case, or None when it can."""
        if any(value <= 0 for value in dims):
            return f"every dimension must be positive, got {self.op.format_dims(self.op.make_dims(dims))}"
        if dtype not in self.dtypes:
            return f"{self.id} supports dtypes {', '.join(self.dtypes)}, not {dtype}"
        if self.refuse is None:
            return None
        return self.refuse(dims, dtype, config)

    def scratch_specs(self, dims: tuple, dtype: str, config: dict) -> dict[str, TensorSpec]:
        return {} if self.scratch is None else self.scratch(dims, dtype, config)

    def bind(self, tensors: Mapping[str, torch.Tensor], dims: tuple, dtype: str,
             config: dict | None = None, device: str = "cuda") -> Callable[[], None]:
        """Check the buffers once and return a callable that only enqueues the kernels.

        `tensors` must hold every input, output and scratch tensor the op and this variant name,
        already allocated on `device`. On "cuda" the returned callable allocates nothing and never
        synchronises with the host, so a training loop can call it every step (or capture it in
        a CUDA graph). On "cpu" the kernels run in the CPU emulator (harness.emulator).
        """
        config = dict(self.configs[0] if config is None else config)
        dims = self.op.make_dims(dims)
        if device not in ("cuda", "cpu"):
            raise UserError(f"{self.id}: device must be 'cuda' or 'cpu' (the emulator), not {device!r}")
        reason = self.refusal(dims, dtype, config)
        if reason:
            raise ShapeRefused(f"{self.id} refuses {self.op.format_dims(dims)} {dtype} {config}: {reason}")
        expected = self.op.tensor_specs(dims) | self.scratch_specs(dims, dtype, config)
        validate_tensors(self.id, tensors, expected, dims, dtype, device)
        if device == "cpu":
            from harness import emulator

            kernels = emulator.load_variant(self, dtype)
        else:
            from harness import gpu  # imported here: the contract itself needs no GPU

            kernels = gpu.load_variant(self, dtype)
        args = SimpleNamespace(**{name: tensors[name] for name in expected}, **self.op.scalars)
        launch, scalar_names, op_id = self.launch, set(self.op.scalars), self.op.id

        def run(**scalars) -> None:
            """Enqueue the kernels; keyword arguments set the op's scalars (e.g. lr=..., step=...)."""
            if scalars:
                unknown = set(scalars) - scalar_names
                if unknown:
                    raise UserError(f"{op_id} has no scalars {sorted(unknown)}; it has {sorted(scalar_names)}")
                for name, value in scalars.items():
                    setattr(args, name, value)
            launch(kernels, args, dims, **config)

        return run


def check_header_matches(header: VariantHeader, op: "Op", number: int) -> None:
    where = f"{op.id}/{number}"
    if (header.layer, header.pass_name, header.number) != (op.layer, op.pass_name, number):
        raise ValueError(f"{where}: header says '{header.layer} {header.pass_name}, variant {header.number}'")
    expected_run = op.run_command(number)
    if header.run != expected_run:
        raise ValueError(f"{where}: header's Run: line is {header.run!r}; it should be {expected_run!r}")


def validate_tensors(owner: str, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, TensorSpec],
                     dims: tuple, dtype: str, device: str = "cuda") -> None:
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise UserError(f"{owner}: missing tensors {', '.join(missing)} (it needs {', '.join(expected)})")
    for name, spec in expected.items():
        tensor = tensors[name]
        want_shape = tuple(spec.shape(dims))
        want_dtype = torch_dtype(spec.element_type, dtype)
        if tuple(tensor.shape) != want_shape:
            raise UserError(f"{owner}: tensor '{name}' has shape {tuple(tensor.shape)}, expected {want_shape}")
        if tensor.dtype != want_dtype:
            raise UserError(f"{owner}: tensor '{name}' has dtype {tensor.dtype}, expected {want_dtype}")
        if not tensor.is_contiguous():
            raise UserError(f"{owner}: tensor '{name}' must be contiguous; call .contiguous() first")
    for name in expected:
        tensor = tensors[name]
        if tensor.device.type != device:
            hint = "kernels need CUDA tensors" if device == "cuda" else "the CPU emulator needs CPU tensors"
            raise UserError(f"{owner}: tensor '{name}' is on {tensor.device}; {hint}")
        if tensor.data_ptr() % 16:
            raise UserError(f"{owner}: tensor '{name}' is not 16-byte aligned; pass a fresh allocation")


@dataclass(eq=False)
class Op:
    """One pass of a layer (forward or backward) and everything the harness needs to know about it."""

    layer: str
    pass_name: str
    dims: tuple[str, ...]
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    shapes: list[tuple]  # checked by the tests; include awkward ones
    bench_shape: tuple  # the shape timed by default
    make_inputs: Callable[[tuple, str, torch.Generator], dict[str, torch.Tensor]]
    # reference(t): t holds the inputs (float64), the scalars and "dims"; returns the outputs in float64
    reference: Callable[[dict], dict[str, torch.Tensor]]
    tolerances: dict[str, dict[str, Tolerance]]  # dtype -> output name -> tolerance
    flops: Callable[[tuple], int]
    baselines: dict[str, Callable] = field(default_factory=dict)  # name -> factory(tensors, dims) -> callable
    bound: str = "memory"  # "memory": rated in GB/s against copy bandwidth; "compute": TFLOP/s against GEMM
    scalars: dict[str, float | int] = field(default_factory=dict)  # per-call values (lr, step), with check defaults
    # in-place patterns every variant must support: each maps outputs to the inputs whose buffers they may
    # share (e.g. {"dlogits": "logits"}); kernels/test_aliasing.py checks each pattern on the emulator
    aliases: list[dict[str, str]] = field(default_factory=list)
    folder: Path | None = None
    variants: list[Variant] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.Dims = namedtuple(f"{self.layer.title()}Dims", self.dims)
        self.shapes = [self.make_dims(s) for s in self.shapes]
        self.bench_shape = self.make_dims(self.bench_shape)

    @property
    def id(self) -> str:
        return f"{self.layer}.{self.pass_name}"

    def make_dims(self, values) -> tuple:
        if isinstance(values, Mapping):
            return self.Dims(**values)
        return self.Dims(*values)

    def format_dims(self, dims: tuple) -> str:
        return "(" + ",".join(f"{k}={v}" for k, v in zip(self.dims, dims)) + ")"

    def tensor_specs(self, dims: tuple) -> dict[str, TensorSpec]:
        return self.inputs | self.outputs

    def size(self, dims: tuple) -> int:
        """Elements in the op's largest tensor: how big a case is (the emulator keeps to small ones)."""
        return max(spec.numel(dims) for spec in (self.inputs | self.outputs).values())

    def bytes_moved(self, dims: tuple, dtype: str) -> int:
        """The fewest bytes the op must move: every input read once, every output written once."""
        return sum(spec.nbytes(dims, dtype) for spec in (self.inputs | self.outputs).values())

    def run_command(self, number: int) -> str:
        pass_flag = "" if self.pass_name == "forward" else f" --pass {self.pass_name}"
        return f"python bench.py {self.layer}{pass_flag} --variant {number}"

    def variant_by_number(self, number: int) -> Variant:
        for variant in self.variants:
            if variant.number == number:
                return variant
        valid = ", ".join(str(v.number) for v in self.variants)
        raise UserError(f"{self.id} has no variant {number}; valid variants: {valid}")

    def variant(self, number: int, *, configs: list[dict] | None = None, dtypes=("fp32",),
                refuse=None, scratch=None, archs=("sm_80", "sm_90"), library_header: str | None = None,
                deterministic: bool = True):
        """Decorator that registers the launch function of variant `number`.

        The `.cu` file is found by its number prefix in this op's folder (`3_warp_per_row.cu`);
        a library variant (no `.cu` file) gives its header text in `library_header` instead.
        deterministic=False declares that the outputs' bits may differ between two runs on the same
        inputs (kernels/test_determinism.py holds every other variant to repeating them exactly).
        """

        def register(launch: Callable) -> Callable:
            if any(v.number == number for v in self.variants):
                raise ValueError(f"{self.id}: variant {number} registered twice")
            for dtype in dtypes:
                if dtype not in DTYPES:
                    raise ValueError(f"{self.id}/{number}: unknown dtype {dtype!r}")
            if library_header is not None:
                source, header = None, parse_header(library_header, f"{self.id}/{number}")
            else:
                source = self.source_for(number)
                header = parse_header(source.read_text(), str(source))
            check_header_matches(header, self, number)
            self.variants.append(Variant(
                op=self, number=number, source=source, header=header, launch=launch,
                configs=list(configs or [{}]), dtypes=tuple(dtypes), refuse=refuse,
                scratch=scratch, archs=tuple(archs), deterministic=deterministic))
            self.variants.sort(key=lambda v: v.number)
            return launch

        return register

    def source_for(self, number: int) -> Path:
        if self.folder is None:
            raise ValueError(f"{self.id}: set folder= to find its .cu files")
        matches = sorted(self.folder.glob(f"{number}_*.cu"))
        if len(matches) != 1:
            raise ValueError(f"{self.id}: expected one file {number}_*.cu in {self.folder}, found {len(matches)}")
        return matches[0]
