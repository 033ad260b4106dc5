// Emulator stand-in for <cuda_runtime.h>: everything the variants use is in emu_runtime.h.
#include "emu_runtime.h"
