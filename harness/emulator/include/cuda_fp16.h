// Emulator stand-in for <cuda_fp16.h>: everything the variants use is in emu_runtime.h.
#include "emu_runtime.h"
