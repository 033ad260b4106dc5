"""kernels/warp_mma.cuh's ldmatrix (plain and .trans) and mma.sync against the register layouts the PTX ISA specifies
(written out again here, in Python and in the test kernels, independently of the emulator's code).

The same tests run on the CPU emulator (in CI) and on a GPU. Passing on both is what says that the
emulator's stand-ins (harness/emulator/include/emu_warp_mma.h) behave as the hardware does, so the
variants built on them (matmul forward 6) are checked on the CPU for the right reasons."""
import pytest
import torch

from harness.emulator import EmulatedKernels, build, compiler_missing

SOURCE = r'''
#include "common.cuh"
#include "warp_mma.cuh"

union Pair {
    floatX halves[2];
    unsigned word;
};
__device__ unsigned pack(floatX low, floatX high) {
    Pair p;
    p.halves[0] = low, p.halves[1] = high;
    return p.word;
}

// Lane l copies row l of `tile` (32 rows of 8: four 8 x 8 matrices, one under the other) into
// shared rows `pitch` elements apart, addresses that row for ldmatrix (.trans when `transposed`),
// and writes out what it gets.
extern "C" __global__ void ldmatrix_registers(int* registers, const floatX* tile, int pitch, int transposed) {
    __shared__ __align__(16) floatX rows[32 * 64];
    const int lane = threadIdx.x;
    for (int c = 0; c < 8; c++) rows[lane * pitch + c] = tile[lane * 8 + c];
    __syncwarp();
    unsigned r[4];
    if (transposed) {
        ldmatrix_x4_trans(r, rows + lane * pitch);
    } else {
        ldmatrix_x4(r, rows + lane * pitch);
    }
    for (int i = 0; i < 4; i++) registers[lane * 4 + i] = (int)r[i];
}

// Each lane takes its registers from A (16 x 16, row-major), B (16 x 8, stored as its columns:
// bt[n][k]) and C (16 x 8 fp32) by the PTX ISA's m16n8k16 layout, and writes D = A B + C back by it.
extern "C" __global__ void mma_by_layout(float* d_out, const floatX* a_in, const floatX* bt, const float* c_in) {
    const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    unsigned a[4], b[2];
    for (int i = 0; i < 4; i++) {
        const int row = g + 8 * (i % 2), k = 2 * t + 8 * (i / 2);
        a[i] = pack(a_in[row * 16 + k], a_in[row * 16 + k + 1]);
    }
    for (int i = 0; i < 2; i++) b[i] = pack(bt[g * 16 + 2 * t + 8 * i], bt[g * 16 + 2 * t + 8 * i + 1]);
    float d[4];
    for (int i = 0; i < 4; i++) d[i] = c_in[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2];
    mma_bf16_16x8x16(d, a, b);
    for (int i = 0; i < 4; i++) d_out[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d[i];
}
'''


@pytest.fixture(params=[pytest.param("emulator", marks=pytest.mark.emulated), pytest.param("gpu", marks=pytest.mark.gpu)])
def target(request, tmp_path):
    """(kernels, device) for the test source, compiled for the CPU emulator or for this GPU."""
    source = tmp_path / "warp_mma_probe.cu"
    source.write_text(SOURCE)
    if request.param == "emulator":
        if compiler_missing():
            pytest.skip(compiler_missing())
        library, found = build(source, "bf16")
        return EmulatedKernels(library, found, "warp_mma probe", "bf16"), "cpu"
    request.getfixturevalue("gpu")  # skips, saying why, without one
    import cupy

    from harness.compile import compile_cubin
    from harness.gpu import Kernels, device_arch

    module = cupy.RawModule(path=str(compile_cubin(source, "bf16", device_arch())))
    return Kernels(module, "warp_mma probe"), "cuda"


def bits(x: torch.Tensor) -> torch.Tensor:
    """bf16 values' 16-bit patterns, as int64."""
    return x.view(torch.int16).to(torch.int64) & 0xFFFF


@pytest.mark.parametrize("pitch", [8, 16, 40])
@pytest.mark.parametrize("transposed", [False, True], ids=["plain", "trans"])
def test_ldmatrix_hands_lane_l_its_elements_of_each_matrix(target, pitch, transposed):
    kernels, device = target
    generator = torch.Generator().manual_seed(pitch)
    tile = torch.randn(32, 8, generator=generator).to(torch.bfloat16)
    registers = torch.full((32, 4), -1, dtype=torch.int32, device=device)
    kernels.ldmatrix_registers((1,), (32,), (registers, tile.to(device), pitch, int(transposed)))
    expected = torch.empty(32, 4, dtype=torch.int64)
    pattern = bits(tile)
    for lane in range(32):
        for i in range(4):
            if transposed:  # register i: matrix i's column lane / 4, rows 2 (lane % 4) and the next
                first, second = pattern[8 * i + 2 * (lane % 4), lane // 4], pattern[8 * i + 2 * (lane % 4) + 1, lane // 4]
            else:  # register i: matrix i's row lane / 4, columns 2 (lane % 4) and the next
                first, second = pattern[8 * i + lane // 4, 2 * (lane % 4)], pattern[8 * i + lane // 4, 2 * (lane % 4) + 1]
            expected[lane, i] = first | second << 16
    assert torch.equal(registers.cpu().to(torch.int64) & 0xFFFFFFFF, expected)


def test_mma_adds_the_product_in_the_documented_fragment_layout(target):
    kernels, device = target
    generator = torch.Generator().manual_seed(7)
    a = torch.randn(16, 16, generator=generator).to(torch.bfloat16)
    b = torch.randn(16, 8, generator=generator).to(torch.bfloat16)
    c = torch.randn(16, 8, generator=generator)
    d = torch.full((16, 8), float("nan"), device=device)
    kernels.mma_by_layout((1,), (32,), (d, a.to(device), b.t().contiguous().to(device), c.to(device)))
    expected = a.double() @ b.double() + c.double()
    # bf16 products are exact in fp32; 16 of them and C summed in fp32 (or wider) round at about 2^-24.
    torch.testing.assert_close(d.cpu().double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.emulated
def test_the_emulated_instructions_refuse_a_partial_warp(tmp_path):
    """On a GPU, a warp-collective instruction some lanes skip is undefined: the emulator says so."""
    if compiler_missing():
        pytest.skip(compiler_missing())
    from harness.emulator import EmulationError

    source = tmp_path / "warp_mma_probe.cu"
    source.write_text(SOURCE)
    library, found = build(source, "bf16")
    kernels = EmulatedKernels(library, found, "warp_mma probe", "bf16")
    registers, tile = torch.zeros(32, 4, dtype=torch.int32), torch.zeros(32, 8, dtype=torch.bfloat16)
    with pytest.raises(EmulationError, match="warp-collective"):
        kernels.ldmatrix_registers((1,), (16,), (registers, tile, 8, 0))


@pytest.mark.nvrtc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_probe_assembles_for_the_gpu(tmp_path, arch):
    """NVRTC and ptxas accept the inline PTX (no GPU needed): a typo in an instruction fails here."""
    from harness.compile import compile_cubin

    source = tmp_path / "warp_mma_probe.cu"
    source.write_text(SOURCE)
    assert compile_cubin(source, "bf16", arch).stat().st_size > 0
