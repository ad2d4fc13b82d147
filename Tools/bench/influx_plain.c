/*
 * The plain libcurl writer Tools/bench-influx compares GridMon with: posts a file of line
 * protocol to InfluxDB's /write in batches of N lines over one keep-alive handle, as fast as
 * InfluxDB answers. Prints `plain points=<n> seconds=<s> points_per_s=<r>`.
 *
 *   influx_plain URL FILE BATCH_LINES
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: influx_plain URL FILE BATCH_LINES\n"); return 2; }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END); long size = ftell(f); fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size);
    if (fread(data, 1, (size_t)size, f) != (size_t)size) { perror("read"); return 1; }
    fclose(f);
    long batch = atol(argv[3]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: text/plain");
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, argv[1]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long points = 0;
    char *p = data, *end = data + size;
    while (p < end) {
        char *q = p; long lines = 0;
        while (q < end && lines < batch) { q = memchr(q, '\n', (size_t)(end - q)); if (!q) { q = end; break; } q++; lines++; }
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, p);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(q - p));
        CURLcode rc = curl_easy_perform(h);
        long code = 0; curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code != 204) { fprintf(stderr, "write failed: %s HTTP %ld\n", curl_easy_strerror(rc), code); return 1; }
        points += lines;
        p = q;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("plain points=%ld seconds=%.3f points_per_s=%.0f\n", points, s, (double)points / s);
    return 0;
}
