/*
 * Plain protobuf-c baseline for Tools/bench-codec: the same frames as
 * gridmon-bench's CodecBenchmark, encoded (structs filled + packed behind a
 * 5-byte frame header) and decoded (unpack + free_unpacked) in C.
 *
 * Output lines match gridmon-bench:
 *   c <case> ns_per_frame=<median CPU ns> ns_per_sample=<..> ops=<n>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gridmon.pb-c.h"

static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_SAMPLES 64
static Gridmon__V1__Sample samples[MAX_SAMPLES];
static Gridmon__V1__Sample *sample_ptrs[MAX_SAMPLES];
static uint8_t out[1 << 16];
static volatile size_t sink;

static size_t encode(int count) {
    Gridmon__V1__SampleBatch batch;
    Gridmon__V1__Frame frame;
    gridmon__v1__sample_batch__init(&batch);
    gridmon__v1__frame__init(&frame);
    for (int i = 0; i < count; i++) {
        Gridmon__V1__Sample *s = &samples[i];
        gridmon__v1__sample__init(s);
        s->seq = (uint64_t)i + 1;
        s->timestamp_ns = 1700000000000000000LL + (int64_t)i * 1000000000LL;
        s->cpu_percent = 12.5 + (double)(i % 50);
        s->memory_percent = 41.25;
        s->disk_percent = 63.0 + 0.01 * (double)i;
        s->load1 = 0.75;
        s->net_rx_bytes_per_s = 123456.0 + (double)i;
        s->net_tx_bytes_per_s = 65432.0;
        s->disk_read_bytes_per_s = 4096.0 * (double)(i + 1);
        s->disk_write_bytes_per_s = 8192.0;
        sample_ptrs[i] = s;
    }
    batch.stream_id = 1;
    batch.n_samples = (size_t)count;
    batch.samples = sample_ptrs;
    frame.body_case = GRIDMON__V1__FRAME__BODY_SAMPLES;
    frame.samples = &batch;
    size_t size = gridmon__v1__frame__get_packed_size(&frame);
    out[0] = 0;
    out[1] = (uint8_t)(size >> 24); out[2] = (uint8_t)(size >> 16);
    out[3] = (uint8_t)(size >> 8);  out[4] = (uint8_t)size;
    return 5 + gridmon__v1__frame__pack(&frame, out + 5);
}

typedef void (*op_fn)(int count, const uint8_t *payload, size_t len);

static void op_encode(int count, const uint8_t *payload, size_t len) {
    (void)payload; (void)len;
    sink = encode(count);
}

static void op_decode(int count, const uint8_t *payload, size_t len) {
    (void)count;
    Gridmon__V1__Frame *f = gridmon__v1__frame__unpack(NULL, len, payload);
    if (!f) abort();
    sink = f->samples->n_samples;
    gridmon__v1__frame__free_unpacked(f, NULL);
}

static void measure(const char *name, op_fn fn, int count, const uint8_t *payload, size_t len,
                    int rounds, int millis) {
    long calls = 1;
    for (;;) {
        uint64_t t = cpu_ns();
        for (long i = 0; i < calls; i++) fn(count, payload, len);
        uint64_t e = cpu_ns() - t;
        if (e > 20000000u) { calls = (long)((double)calls * millis * 1e6 / (double)e); if (calls < 1) calls = 1; break; }
        calls *= 4;
    }
    double per[64];
    if (rounds > 64) rounds = 64;
    for (int r = 0; r < rounds; r++) {
        uint64_t t = cpu_ns();
        for (long i = 0; i < calls; i++) fn(count, payload, len);
        per[r] = (double)(cpu_ns() - t) / (double)calls;
    }
    qsort(per, (size_t)rounds, sizeof per[0], cmp);
    double ns = per[rounds / 2];
    printf("c %s_%d ns_per_frame=%.1f ns_per_sample=%.1f ops=%ld\n", name, count, ns, ns / count, calls * rounds);
}

int main(int argc, char **argv) {
    int rounds = 7, millis = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--millis")) millis = atoi(argv[i + 1]);
    }
    int counts[] = {1, 64};
    for (int k = 0; k < 2; k++) {
        int count = counts[k];
        measure("encode", op_encode, count, NULL, 0, rounds, millis);
        size_t n = encode(count);
        static uint8_t payload[1 << 16];
        memcpy(payload, out + 5, n - 5);
        measure("decode", op_decode, count, payload, n - 5, rounds, millis);
        printf("c frame_bytes_%d=%zu\n", count, n);
    }
    return 0;
}
