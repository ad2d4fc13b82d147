/*
 * The plain libcurl writer Tools/bench-influx compares GridMon with: posts a file of line
 * protocol to InfluxDB's /write in batches of N lines, over C keep-alive connections (one
 * thread and easy handle each, taking the next batch in file order), as fast as InfluxDB
 * answers. Prints `plain connections=<c> points=<n> seconds=<s> points_per_s=<r>`.
 *
 *   influx_plain URL FILE BATCH_LINES [CONNECTIONS]   (default 1 connection)
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static const char *url;
static char **starts;   /* batch i is starts[i] ..< starts[i + 1] */
static long *lines_in;  /* lines of batch i */
static long batches;
static long next_batch; /* taken with __atomic_fetch_add */
static long failed;

static void *run(void *arg) {
    (void)arg;
    CURL *h = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: text/plain");
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    for (;;) {
        long i = __atomic_fetch_add(&next_batch, 1, __ATOMIC_RELAXED);
        if (i >= batches) break;
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, starts[i]);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(starts[i + 1] - starts[i]));
        CURLcode rc = curl_easy_perform(h);
        long code = 0; curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code != 204) {
            fprintf(stderr, "write failed: %s HTTP %ld\n", curl_easy_strerror(rc), code);
            __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: influx_plain URL FILE BATCH_LINES [CONNECTIONS]\n"); return 2; }
    url = argv[1];
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END); long size = ftell(f); fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size);
    if (fread(data, 1, (size_t)size, f) != (size_t)size) { perror("read"); return 1; }
    fclose(f);
    long batch = atol(argv[3]);
    int connections = argc == 5 ? atoi(argv[4]) : 1;
    if (batch < 1 || connections < 1 || connections > 64) { fprintf(stderr, "bad BATCH_LINES or CONNECTIONS\n"); return 2; }
    /* Cut the file into batches of whole lines first, so the timed part only posts. */
    long capacity = size / 2 / batch + 2, points = 0;
    starts = malloc(sizeof(char *) * (size_t)(capacity + 1));
    lines_in = malloc(sizeof(long) * (size_t)capacity);
    char *p = data, *end = data + size;
    while (p < end) {
        if (batches + 1 >= capacity) { capacity *= 2; starts = realloc(starts, sizeof(char *) * (size_t)(capacity + 1)); lines_in = realloc(lines_in, sizeof(long) * (size_t)capacity); }
        char *q = p; long lines = 0;
        while (q < end && lines < batch) { q = memchr(q, '\n', (size_t)(end - q)); if (!q) { q = end; lines++; break; } q++; lines++; }
        starts[batches] = p; lines_in[batches] = lines; points += lines; batches++;
        p = q;
    }
    starts[batches] = end;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t threads[64];
    for (int i = 0; i < connections; i++) pthread_create(&threads[i], NULL, run, NULL);
    for (int i = 0; i < connections; i++) pthread_join(threads[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (failed) return 1;
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("plain connections=%d points=%ld seconds=%.3f points_per_s=%.0f\n", connections, points, s, (double)points / s);
    return 0;
}
