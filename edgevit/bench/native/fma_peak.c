#include <stdint.h>
#define R8(x) x x x x x x x x
#define R16(x) R8(x) R8(x)
#define R64(x) R16(x) R16(x) R16(x) R16(x)

/* 64 dependent integer adds per loop iteration: one cycle each on every x86-64 core, so cycles = 64 * n. */
void add_chain(int64_t n) {
    uint64_t x = 0;
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile(R64("add $1, %0\n\t") : "+r"(x));
    }
}

__attribute__((target("avx2,fma"))) void fma_chain_256(int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile(R16("vfmadd231ps %%ymm1, %%ymm2, %%ymm0\n\t") ::: "xmm0", "xmm1", "xmm2");
    }
}

/* 12 independent accumulators: enough to cover latency x units (4-5 cycles x 2 pipes) on current cores. */
#define T256 "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t" \
  "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t" \
  "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t" \
  "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t" \
  "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t" \
  "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\t" "vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
__attribute__((target("avx2,fma"))) void fma_tput_256(int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile(T256 T256 ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                         "xmm9", "xmm10", "xmm11", "xmm14", "xmm15");
    }
}

#define T512 "vfmadd231ps %%zmm14, %%zmm15, %%zmm0\n\t" "vfmadd231ps %%zmm14, %%zmm15, %%zmm1\n\t" \
  "vfmadd231ps %%zmm14, %%zmm15, %%zmm2\n\t" "vfmadd231ps %%zmm14, %%zmm15, %%zmm3\n\t" \
  "vfmadd231ps %%zmm14, %%zmm15, %%zmm4\n\t" "vfmadd231ps %%zmm14, %%zmm15, %%zmm5\n\t" \
  "vfmadd231ps %%zmm14, %%zmm15, %%zmm6\n\t" "vfmadd231ps %%zmm14, %%zmm15, %%zmm7\n\t" \
  "vfmadd231ps %%zmm14, %%zmm15, %%zmm8\n\t" "vfmadd231ps %%zmm14, %%zmm15, %%zmm9\n\t" \
  "vfmadd231ps %%zmm14, %%zmm15, %%zmm10\n\t" "vfmadd231ps %%zmm14, %%zmm15, %%zmm11\n\t"
__attribute__((target("avx512f"))) void fma_tput_512(int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile(T512 T512 ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                         "xmm9", "xmm10", "xmm11", "xmm14", "xmm15");
    }
}
