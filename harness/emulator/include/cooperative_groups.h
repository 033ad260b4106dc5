// Emulator stand-in for <cooperative_groups.h>: everything the variants use is in emu_runtime.h.
#include "emu_runtime.h"
