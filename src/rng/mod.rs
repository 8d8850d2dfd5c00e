//! Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random
//! numbers: as easy as 1, 2, 3", SC'11; the generator of cuRAND, PyTorch and JAX) and the
//! Box–Muller normals built on it. Bit-exact twin of `shaders/common/philox.wgsl`.
//!
//! Every random number in a trial is a pure function of (key, counter), so a result never depends
//! on workgroup size, dispatch shape, chunking, backend or number of shards. The counter layout is
//! fixed here and in the shader (see [`ctr`]).

pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// Streams: which kind of draw a counter belongs to (bits 8..16 of counter word 2).
pub mod simd;

pub mod stream {
    /// Programming noise of G+ and G- and the two drift exponents (one call per device pair;
    /// with several pairs per weight, pair k's block at counter word 3 = k).
    pub const PROG: u32 = 1;
    /// At inference time index t, one block per weight: the accumulated 1/f read noise of the
    /// pair's devices (words 0 and 1; the aihwkit tile path uses word 0) and the output noise of
    /// the GDC readout (word 2). With several pairs per weight, pairs 0 and 1 read words 0 and 1
    /// and pairs 2 and 3 words 0 and 1 of the block at counter word 3 = 1. (Stream 3 is unused.)
    pub const READ: u32 = 2;
    /// Output noise of the GDC baseline readout right after programming.
    pub const GDC_BASE: u32 = 4;
    /// Output noise (and per-read weight noise) of one MVM.
    pub const OUT: u32 = 5;
    /// Which devices are stuck (`device.stuck_set`, `stuck_reset`): per weight and programming,
    /// pair k's block at counter word 3 = k, word 0 for its G+ and word 1 for its G−.
    pub const FAULT: u32 = 6;
    /// Input noise after the DAC (`periphery.inp_noise`): per MVM vector, one block per four
    /// input lines of a tile ([`super::inp_normals`]).
    pub const INP: u32 = 7;
}

/// Counter word 2: layer (8 bits) | stream (8 bits) | time index (16 bits), with the layer's bits
/// 8..11 XORed into bits 28..31: a layer below 256 keeps the word it always had, and layers
/// 256..[`MAX_LAYERS`] − 1 (MobileBERT's 24 layers hold 361 matrices) stay apart from every other
/// layer while the time index is below [`WIDE_LAYER_TIMES`] (the planners check both).
pub fn ctr_word2(layer: u32, stream: u32, t_index: u32) -> u32 {
    ((layer & 0xFF) | ((stream & 0xFF) << 8) | ((t_index & 0xFFFF) << 16)) ^ (((layer >> 8) & 0xF) << 28)
}

/// Analog layers a run numbers (12 bits of counter word 2).
pub const MAX_LAYERS: usize = 4096;

/// Time indices a run with more than 256 layers may use (the low 12 bits of the time field).
pub const WIDE_LAYER_TIMES: usize = 4096;

/// Counter word 3 of an MVM draw: output index (20 bits) | input tile (8 bits) | bound-management level (4 bits).
pub fn ctr_word3_out(out: u32, tile_in: u32, bm_level: u32) -> u32 {
    (out & 0xF_FFFF) | ((tile_in & 0xFF) << 20) | ((bm_level & 0xF) << 28)
}

/// Per-read weight-noise draws use output-group indices with this bit set (groups stay < 2^18).
pub const W_NOISE_GROUP: u32 = 0x8_0000;

/// The output noise of one MVM for outputs `4·o4 .. 4·o4+3` of sample `s`: all four words of one
/// block become four normals (output `o` takes component `o % 4`). Twin of WGSL `out_normals`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn out_normals(s: u32, trial: u32, layer: u32, t_index: u32, o4: u32, tile_in: u32, bm_level: u32, key: [u32; 2]) -> [f32; 4] {
    normal4(philox4x32_10([s, trial, ctr_word2(layer, stream::OUT, t_index), ctr_word3_out(o4, tile_in, bm_level)], key))
}

/// Output tiles a layer may have when its inputs are noisy: [`inp_normals`] keeps the output tile
/// in 11 bits of counter word 3 (the planners check it).
pub const MAX_INP_NOISE_TILES_OUT: u32 = 1 << 11;

/// Counter word 3 of an input-noise draw: input group k4 (9 bits: tiles have at most 2048
/// inputs) | output tile (11 bits) in the output field of [`ctr_word3_out`], then the input tile
/// and the bound-management level.
pub fn ctr_word3_inp(k4: u32, tile_out: u32, tile_in: u32, bm_level: u32) -> u32 {
    ctr_word3_out((k4 & 0x1FF) | ((tile_out & 0x7FF) << 9), tile_in, bm_level)
}

/// The input noise of one MVM of tile (`tile_out`, `tile_in`) for its input lines `4·k4 ..
/// 4·k4+3` of sample `s`: four normals of one block (line k takes component k % 4). Every output
/// tile draws its own, as each of aihwkit's tiles prepares its inputs itself. Twin of WGSL
/// `inp_normals`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn inp_normals(s: u32, trial: u32, layer: u32, t_index: u32, k4: u32, tile_out: u32, tile_in: u32, bm_level: u32, key: [u32; 2]) -> [f32; 4] {
    normal4(philox4x32_10([s, trial, ctr_word2(layer, stream::INP, t_index), ctr_word3_inp(k4, tile_out, tile_in, bm_level)], key))
}

/// The counter of a draw: `[element or sample, global trial, word2, word3]`.
pub fn ctr(index: u32, trial: u32, word2: u32, word3: u32) -> [u32; 4] {
    [index, trial, word2, word3]
}

/// Key from the experiment seed and the sweep point (the programming key ignores the time axis,
/// so a time sweep reuses each trial's programmed state, as the device physics requires).
pub fn key(seed: u64, point: u32) -> [u32; 2] {
    let lo = seed as u32;
    let hi = (seed >> 32) as u32;
    // A multiplicative mix keeps neighbouring sweep points far apart in key space.
    [lo ^ point.wrapping_mul(0x85EB_CA6B), hi ^ point.wrapping_mul(0xC2B2_AE35).rotate_left(16)]
}

/// High 32 bits of a 32 x 32 -> 64 product. The CPU has a native 64-bit multiply; the WGSL
/// builds the same word from 16-bit halves ([`mulhi32_halves`], tested equal for all inputs tried).
#[inline(always)]
pub fn mulhi32(a: u32, b: u32) -> u32 {
    ((a as u64 * b as u64) >> 32) as u32
}

/// The WGSL algorithm (shaders/common/philox.wgsl `mulhi32`), kept to test it against the u64 product.
pub fn mulhi32_halves(a: u32, b: u32) -> u32 {
    let (a0, a1) = (a & 0xFFFF, a >> 16);
    let (b0, b1) = (b & 0xFFFF, b >> 16);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16) + (p01 & 0xFFFF) + (p10 & 0xFFFF);
    p11.wrapping_add(p01 >> 16).wrapping_add(p10 >> 16).wrapping_add(mid >> 16)
}

/// Philox4x32 with 10 rounds.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for _ in 0..10 {
        let hi0 = mulhi32(PHILOX_M0, c[0]);
        let lo0 = PHILOX_M0.wrapping_mul(c[0]);
        let hi1 = mulhi32(PHILOX_M1, c[2]);
        let lo1 = PHILOX_M1.wrapping_mul(c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
    }
    c
}

/// Philox4x32-10 of eight counters with one key (the fast CPU kernels draw with
/// it): lane `i` equals `rng::philox4x32_10([c[0][i], c[1][i], c[2][i], c[3][i]], key)` bit for
/// bit. With AVX2 the eight lanes are one 256-bit register per word (`philox_x8_avx2`): LLVM
/// vectorised the portable loop in some callers and left it scalar in others (`program`,
/// `drift`).
#[inline(always)]
pub fn philox_x8(c: [[u32; 8]; 4], key: [u32; 2]) -> [[u32; 8]; 4] {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2() {
        // SAFETY: the CPU was checked for AVX2 just above.
        return unsafe { philox_x8_avx2(c, key) };
    }
    philox_x8_portable(c, key)
}

/// `philox_x8` on eight 32-bit lanes per word: the 32 × 32 → 64-bit products of the even lanes
/// and of the odd lanes (shifted down) by `vpmuludq`, their high halves blended back into lane
/// order, the low halves by `vpmulld`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn philox_x8_avx2(c: [[u32; 8]; 4], key: [u32; 2]) -> [[u32; 8]; 4] {
    use std::arch::x86_64::*;
    // SAFETY (whole body): unaligned loads and stores of [u32; 8] values, which are 32 bytes each.
    let load = |w: &[u32; 8]| unsafe { _mm256_loadu_si256(w.as_ptr() as *const __m256i) };
    let (m0, m1) = (_mm256_set1_epi32(PHILOX_M0 as i32), _mm256_set1_epi32(PHILOX_M1 as i32));
    // High 32 bits of each lane's product with m (m in every lane).
    let mulhi = |x: __m256i, m: __m256i| {
        let even = _mm256_srli_epi64::<32>(_mm256_mul_epu32(x, m));
        let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(x), m);
        _mm256_blend_epi32::<0b1010_1010>(even, odd)
    };
    let (mut c0, mut c1, mut c2, mut c3) = (load(&c[0]), load(&c[1]), load(&c[2]), load(&c[3]));
    let mut k = key;
    for _ in 0..10 {
        let (k0, k1) = (_mm256_set1_epi32(k[0] as i32), _mm256_set1_epi32(k[1] as i32));
        let n0 = _mm256_xor_si256(_mm256_xor_si256(mulhi(c2, m1), c1), k0);
        let n1 = _mm256_mullo_epi32(c2, m1);
        let n2 = _mm256_xor_si256(_mm256_xor_si256(mulhi(c0, m0), c3), k1);
        let n3 = _mm256_mullo_epi32(c0, m0);
        (c0, c1, c2, c3) = (n0, n1, n2, n3);
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
    }
    let mut out = [[0u32; 8]; 4];
    for (w, v) in out.iter_mut().zip([c0, c1, c2, c3]) {
        // SAFETY: see above.
        unsafe { _mm256_storeu_si256(w.as_mut_ptr() as *mut __m256i, v) };
    }
    out
}

/// `philox_x8` in portable Rust (the baseline target's path, and the AVX2 path's test oracle).
#[inline(always)]
pub fn philox_x8_portable(mut c: [[u32; 8]; 4], key: [u32; 2]) -> [[u32; 8]; 4] {
    let mut k = key;
    for _ in 0..10 {
        let mut n = [[0u32; 8]; 4];
        for i in 0..8 {
            let p0 = PHILOX_M0 as u64 * c[0][i] as u64;
            let p1 = PHILOX_M1 as u64 * c[2][i] as u64;
            n[0][i] = (p1 >> 32) as u32 ^ c[1][i] ^ k[0];
            n[1][i] = p1 as u32;
            n[2][i] = (p0 >> 32) as u32 ^ c[3][i] ^ k[1];
            n[3][i] = p0 as u32;
        }
        c = n;
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
    }
    c
}

/// Uniform in (0, 1]: the top 24 bits, never 0 (safe for `ln`).
#[inline(always)]
pub fn u01_open(x: u32) -> f32 {
    ((x >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0)
}

/// Uniform in [0, 1): the top 24 bits.
#[inline(always)]
pub fn u01(x: u32) -> f32 {
    (x >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Four standard normals from one Philox block: two Box–Muller pairs (f32, as in the shader).
#[inline]
pub fn normal4(r: [u32; 4]) -> [f32; 4] {
    let r0 = (-2.0 * u01_open(r[0]).ln()).sqrt();
    let t0 = std::f32::consts::TAU * u01(r[1]);
    let r1 = (-2.0 * u01_open(r[2]).ln()).sqrt();
    let t1 = std::f32::consts::TAU * u01(r[3]);
    [r0 * t0.cos(), r0 * t0.sin(), r1 * t1.cos(), r1 * t1.sin()]
}

/// The first Box–Muller pair only (what a stage that needs two normals computes).
#[inline]
pub fn normal2(r: [u32; 4]) -> [f32; 2] {
    let r0 = (-2.0 * u01_open(r[0]).ln()).sqrt();
    let t0 = std::f32::consts::TAU * u01(r[1]);
    [r0 * t0.cos(), r0 * t0.sin()]
}

/// `n` values uniform in [-1, 1) from Philox keyed by `seed` (test matrices, benchmark inputs,
/// the MVM-error workload's inputs): reproducible everywhere, independent of any trial stream
/// (counter word 2 is all ones, which no stage uses).
pub fn uniform_signed(n: usize, seed: u64) -> Vec<f32> {
    let k = key(seed, u32::MAX);
    (0..n.div_ceil(4)).flat_map(|i| philox4x32_10([i as u32, (i >> 32) as u32, u32::MAX, 0], k)).take(n).map(|r| u01(r) * 2.0 - 1.0).collect()
}

/// f64 normals from the same block, for the f64 reference model.
pub fn normal4_f64(r: [u32; 4]) -> [f64; 4] {
    let u = |x: u32| ((x >> 8) as f64 + 1.0) / 16_777_216.0;
    let v = |x: u32| (x >> 8) as f64 / 16_777_216.0;
    let r0 = (-2.0 * u(r[0]).ln()).sqrt();
    let t0 = std::f64::consts::TAU * v(r[1]);
    let r1 = (-2.0 * u(r[2]).ln()).sqrt();
    let t1 = std::f64::consts::TAU * v(r[3]);
    [r0 * t0.cos(), r0 * t0.sin(), r1 * t1.cos(), r1 * t1.sin()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers below 256 keep the word of the 8-bit layout; every (layer < 4096, stream, time
    /// index < 4096) has its own word.
    #[test]
    fn word2_widens_the_layer_without_moving_a_narrow_one() {
        for layer in [0u32, 1, 17, 255] {
            for stream in [stream::PROG, stream::READ, stream::GDC_BASE, stream::OUT, stream::FAULT, 0x52] {
                for t in [0u32, 1, 4095, 4096, 65535] {
                    assert_eq!(ctr_word2(layer, stream, t), layer | (stream << 8) | (t << 16));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for layer in (0..MAX_LAYERS as u32).step_by(37).chain([255, 256, 4095]) {
            for stream in [stream::PROG, stream::OUT, 0x52] {
                for t in [0u32, 1, 2, 255, 256, 4095] {
                    assert!(seen.insert(ctr_word2(layer, stream, t)), "layer {layer} stream {stream} t {t}");
                }
            }
        }
    }

    #[test]
    fn philox_x8_both_paths_equal_the_scalar_block() {
        // Counters and keys from an LCG (every bit pattern class: top bits set, zeros, all ones).
        let mut x = 0x9E37_79B9u32;
        let mut next = || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x
        };
        for round in 0..2_000 {
            let mut c: [[u32; 8]; 4] = std::array::from_fn(|_| std::array::from_fn(|_| next()));
            if round == 0 {
                c = [[u32::MAX; 8]; 4];
            }
            let key = [next(), next()];
            let (fast, portable) = (philox_x8(c, key), philox_x8_portable(c, key));
            for i in 0..8 {
                let want = philox4x32_10([c[0][i], c[1][i], c[2][i], c[3][i]], key);
                assert_eq!([fast[0][i], fast[1][i], fast[2][i], fast[3][i]], want, "lane {i}, round {round}");
                assert_eq!([portable[0][i], portable[1][i], portable[2][i], portable[3][i]], want, "lane {i}, round {round}");
            }
        }
    }

    #[test]
    fn known_answer_random123() {
        // Random123 kat_vectors: philox4x32_10, counter 0, key 0.
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        // Random123 kat_vectors: all-ones counter and key.
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        // Random123 kat_vectors: the digits of pi.
        assert_eq!(philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]), [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
    }

    #[test]
    fn mulhi_matches_u64_product() {
        let mut x = 0x1234_5678u32;
        for _ in 0..10_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let y = x.rotate_left(13) ^ 0xDEAD_BEEF;
            assert_eq!(mulhi32_halves(x, y), ((x as u64 * y as u64) >> 32) as u32, "{x:#x} * {y:#x}");
            assert_eq!(mulhi32_halves(x, 0xFFFF_FFFF), mulhi32(x, 0xFFFF_FFFF));
        }
    }
}
