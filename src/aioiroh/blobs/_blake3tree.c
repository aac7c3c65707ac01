/* BLAKE3 subtree chaining values, written from the BLAKE3 specification (portable C,
 * no SIMD). Optional accelerator for aioiroh.blobs._blake3tree; the pure-Python module gives
 * identical results. One entry point: subtree_cv(data, start_chunk, is_root) -> 32 bytes. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define CHUNK_LEN 1024
#define BLOCK_LEN 64
#define CHUNK_START 1u
#define CHUNK_END 2u
#define PARENT 4u
#define ROOT 8u

static const uint32_t IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                               0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
static const uint8_t SCHED[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
static inline uint32_t load32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void store32(uint8_t *p, uint32_t w) {
    p[0] = (uint8_t)w; p[1] = (uint8_t)(w >> 8); p[2] = (uint8_t)(w >> 16); p[3] = (uint8_t)(w >> 24);
}

#define G(a, b, c, d, x, y)                  \
    do {                                     \
        v[a] = v[a] + v[b] + (x);            \
        v[d] = rotr(v[d] ^ v[a], 16);        \
        v[c] = v[c] + v[d];                  \
        v[b] = rotr(v[b] ^ v[c], 12);        \
        v[a] = v[a] + v[b] + (y);            \
        v[d] = rotr(v[d] ^ v[a], 8);         \
        v[c] = v[c] + v[d];                  \
        v[b] = rotr(v[b] ^ v[c], 7);         \
    } while (0)

/* Compress one block into cv (first 8 output words). */
static void compress(uint32_t cv[8], const uint8_t block[BLOCK_LEN], uint64_t counter,
                     uint32_t block_len, uint32_t flags) {
    uint32_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load32(block + 4 * i);
    for (int i = 0; i < 8; i++) v[i] = cv[i];
    v[8] = IV[0]; v[9] = IV[1]; v[10] = IV[2]; v[11] = IV[3];
    v[12] = (uint32_t)counter; v[13] = (uint32_t)(counter >> 32);
    v[14] = block_len; v[15] = flags;
    for (int r = 0; r < 7; r++) {
        const uint8_t *s = SCHED[r];
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) cv[i] = v[i] ^ v[i + 8];
}

static void chunk_cv(const uint8_t *data, size_t len, uint64_t counter, int is_root,
                     uint32_t out[8]) {
    uint8_t block[BLOCK_LEN];
    size_t nblocks = len ? (len + BLOCK_LEN - 1) / BLOCK_LEN : 1;
    memcpy(out, IV, sizeof(IV));
    for (size_t i = 0; i < nblocks; i++) {
        size_t off = i * BLOCK_LEN;
        size_t blen = len - off < BLOCK_LEN ? len - off : BLOCK_LEN;
        if (len == 0) blen = 0;
        const uint8_t *p = data + off;
        if (blen < BLOCK_LEN) {
            memset(block, 0, BLOCK_LEN);
            if (blen) memcpy(block, p, blen);
            p = block;
        }
        uint32_t flags = 0;
        if (i == 0) flags |= CHUNK_START;
        if (i == nblocks - 1) flags |= CHUNK_END | (is_root ? ROOT : 0);
        compress(out, p, counter, (uint32_t)blen, flags);
    }
}

static void parent_cv(const uint32_t l[8], const uint32_t r[8], int is_root, uint32_t out[8]) {
    uint8_t block[BLOCK_LEN];
    for (int i = 0; i < 8; i++) { store32(block + 4 * i, l[i]); store32(block + 32 + 4 * i, r[i]); }
    memcpy(out, IV, sizeof(IV));
    compress(out, block, 0, BLOCK_LEN, PARENT | (is_root ? ROOT : 0));
}

static void subtree(const uint8_t *data, size_t len, uint64_t start, int is_root, uint32_t out[8]) {
    size_t n = len ? (len + CHUNK_LEN - 1) / CHUNK_LEN : 1;
    if (n == 1) { chunk_cv(data, len, start, is_root, out); return; }
    size_t left = 1;
    while (left * 2 < n) left *= 2;
    uint32_t l[8], r[8];
    subtree(data, left * CHUNK_LEN, start, 0, l);
    subtree(data + left * CHUNK_LEN, len - left * CHUNK_LEN, start + left, 0, r);
    parent_cv(l, r, is_root, out);
}

static PyObject *py_subtree_cv(PyObject *self, PyObject *args) {
    Py_buffer buf;
    unsigned long long start;
    int is_root;
    uint32_t out[8];
    uint8_t bytes[32];
    if (!PyArg_ParseTuple(args, "y*Kp", &buf, &start, &is_root)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    subtree((const uint8_t *)buf.buf, (size_t)buf.len, start, is_root, out);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    for (int i = 0; i < 8; i++) store32(bytes + 4 * i, out[i]);
    return PyBytes_FromStringAndSize((const char *)bytes, 32);
}

static PyMethodDef methods[] = {
    {"subtree_cv", py_subtree_cv, METH_VARARGS,
     "subtree_cv(data, start_chunk, is_root) -> 32-byte BLAKE3 chaining value"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_blake3tree_c", NULL, -1, methods};

PyMODINIT_FUNC PyInit__blake3tree_c(void) { return PyModule_Create(&module); }
