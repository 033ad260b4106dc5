// The GELU formulas every gelu variant uses, forward and backward: the variants differ only in how
// they move the data. GPT-2's tanh approximation, as torch.nn.functional.gelu(approximate="tanh"):
//     gelu(x) = 0.5 * x * (1 + tanh(u)),  u = sqrt(2 / pi) * (x + 0.044715 * x^3)
#pragma once
#include "common.cuh"

constexpr float GELU_SCALE = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float GELU_CUBE = 0.044715f;

__device__ __forceinline__ float gelu_value(float x) {
    const float u = GELU_SCALE * (x + GELU_CUBE * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

// d gelu / dx by the product rule: 0.5 * (1 + tanh(u)) + 0.5 * x * tanh'(u) * du/dx, where
// tanh'(u) = 1 - tanh(u)^2 reuses the tanh already computed (llm.c writes 1 / cosh(u)^2, which
// costs a second transcendental) and du/dx = sqrt(2 / pi) * (1 + 3 * 0.044715 * x^2).
__device__ __forceinline__ float gelu_derivative(float x) {
    const float u = GELU_SCALE * (x + GELU_CUBE * x * x * x);
    const float tanh_u = tanhf(u);
    const float du_dx = GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
    return 0.5f * (1.0f + tanh_u) + 0.5f * x * (1.0f - tanh_u * tanh_u) * du_dx;
}
