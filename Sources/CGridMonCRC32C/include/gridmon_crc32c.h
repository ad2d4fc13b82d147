#ifndef GRIDMON_CRC32C_H
#define GRIDMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has a CRC-32C instruction `gridmon_crc32c_hw` can use (x86-64: SSE4.2's
/// crc32; arm64: the CRC32 extension, when the build targets it). Swift cannot reach either
/// instruction, which is why this shim exists.
int gridmon_crc32c_hw_available(void);

/// CRC-32C (Castagnoli) of `length` bytes at `data`, continuing from the checksum `crc` (0 to
/// start): the same value as GridMonCore's `CRC32C.checksum`. Call only when
/// `gridmon_crc32c_hw_available()` said so.
uint32_t gridmon_crc32c_hw(uint32_t crc, const void *data, size_t length);

#endif
