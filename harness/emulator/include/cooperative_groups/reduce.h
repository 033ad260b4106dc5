// Emulator stand-in for <cooperative_groups/reduce.h>.
#include "emu_runtime.h"
