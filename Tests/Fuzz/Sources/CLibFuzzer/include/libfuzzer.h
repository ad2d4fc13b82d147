// libFuzzer's driver entry point (compiler-rt's libclang_rt.fuzzer_no_main), which Swift
// cannot see otherwise: SwiftPM renames an executable's `main`, so the harness calls the
// driver itself instead of letting libFuzzer own `main`.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
