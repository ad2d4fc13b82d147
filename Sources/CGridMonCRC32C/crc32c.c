#include <string.h>
#include "gridmon_crc32c.h"

#if defined(__x86_64__)
#include <cpuid.h>

int gridmon_crc32c_hw_available(void) {
    unsigned int a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t gridmon_crc32c_hw(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    uint64_t value = (uint32_t)~crc;
    for (; length >= 8; p += 8, length -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);  // unaligned load
        value = __builtin_ia32_crc32di(value, word);
    }
    uint32_t v = (uint32_t)value;
    for (; length > 0; p++, length--) v = __builtin_ia32_crc32qi(v, *p);
    return ~v;
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>

int gridmon_crc32c_hw_available(void) { return 1; }

uint32_t gridmon_crc32c_hw(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    uint32_t v = ~crc;
    for (; length >= 8; p += 8, length -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        v = __crc32cd(v, word);
    }
    for (; length > 0; p++, length--) v = __crc32cb(v, *p);
    return ~v;
}

#else

int gridmon_crc32c_hw_available(void) { return 0; }

uint32_t gridmon_crc32c_hw(uint32_t crc, const void *data, size_t length) {
    (void)data;
    (void)length;
    return crc;  // never called: not available
}

#endif
