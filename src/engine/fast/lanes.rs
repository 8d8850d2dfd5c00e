//! Eight-lane building blocks of the fast CPU kernels: Philox4x32-10 on eight counters at once
//! (bit-exact with `rng::philox4x32_10`), Box–Muller normals on all four words, and branch-free
//! f32 `ln`, `exp`, `sin`/`cos` (of a turn fraction, or of any angle) and `tanh`, written so LLVM vectorises them
//! (AVX2 where the CPU has it, see `fast::has_avx2`).
//!
//! The polynomials are Cephes' single-precision ones (S. L. Moshier, Cephes Math Library:
//! `logf`, `expf`, `sinf`/`cosf` on [-π/4, π/4]); relative error about 1e-7, far inside the
//! 2⁻¹¹ absolute error WGSL allows the GPU's `log`/`cos` (tests bound both, see `tolerances`).

// The Cephes coefficients are kept as published (a few more digits than an f32 holds).
#![allow(clippy::excessive_precision)]

/// Lanes per call.
pub const L: usize = 8;
pub type U = [u32; L];
pub type F = [f32; L];

pub use crate::rng::philox_x8;

#[inline(always)]
fn u01_open(x: u32) -> f32 {
    // Through i32: the value is below 2^24, and a signed conversion is one vector instruction.
    ((x >> 8) as i32 as f32 + 1.0) * (1.0 / 16_777_216.0)
}

#[inline(always)]
fn u01(x: u32) -> f32 {
    (x >> 8) as i32 as f32 * (1.0 / 16_777_216.0)
}

/// Natural log of a positive normal finite f32 (Cephes `logf`). Its callers pass uniforms in
/// (0, 1] and conductance ratios; any other input gives some value, never undefined behaviour.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let e0 = ((bits >> 23) & 0xFF) as i32 - 127;
    let m0 = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    let big = m0 > std::f32::consts::SQRT_2;
    let m = if big { m0 * 0.5 } else { m0 };
    let e = (e0 + big as i32) as f32;
    let f = m - 1.0;
    let z = f * f;
    let mut y = 7.037_683_6e-2f32;
    y = y * f - 1.151_461_1e-1;
    y = y * f + 1.167_699_9e-1;
    y = y * f - 1.242_014_1e-1;
    y = y * f + 1.424_932_3e-1;
    y = y * f - 1.666_805_8e-1;
    y = y * f + 2.000_071_5e-1;
    y = y * f - 2.499_999_4e-1;
    y = y * f + 3.333_333_1e-1;
    y = y * f * z;
    y += e * -2.121_944_4e-4;
    y += -0.5 * z;
    f + y + e * 0.693_359_4
}

/// A float holding an integer `n` with |n| < 2^22, as an i32: adding 1.5·2^23 puts `n` in the low
/// mantissa bits exactly. Safe for every input (one outside that range, ±∞ or NaN gives some
/// value, never undefined behaviour, unlike `to_int_unchecked`), and unlike a saturating `as`
/// LLVM vectorises it (a float add and an integer subtract).
#[inline(always)]
fn small_int(n: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23, bits 0x4B40_0000
    ((n + MAGIC).to_bits() as i32).wrapping_sub(0x4B40_0000)
}

/// e^x (Cephes `expf`); saturates to e^-87 below -87 and to e^88 above 88 (±∞ included); NaN
/// gives NaN (`clamp` passes it through into y), so a NaN activation stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_2e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 5.000_000_1e-1;
    y = y * r * r + r + 1.0;
    // n is an integer in [-126, 127] for finite x (exact in `small_int`); for NaN the scale is
    // some finite power of two and y is NaN already.
    let ni = small_int(n);
    y * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// x^p for finite x > 0 (a NaN exponent gives NaN).
#[inline(always)]
pub fn pow(x: f32, p: f32) -> f32 {
    exp(p * ln(x))
}

/// tanh through e^(2x); absolute error about 1e-7; ±∞ give ±1 and NaN gives NaN, as libm's.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(2.0 * x.clamp(-10.0, 10.0));
    1.0 - 2.0 / (e + 1.0)
}

/// (sin, cos) of 2π·u for u in [0, 1): quadrant from u itself, Cephes polynomials on [-π/4, π/4].
#[inline(always)]
pub fn sincos_turns(u: f32) -> (f32, f32) {
    let q = (u * 4.0 + 0.5).floor();
    // q is in [0, 4] for u in [0, 1); any other u gives some quadrant, never undefined behaviour.
    in_quadrant((u - q * 0.25) * std::f32::consts::TAU, q)
}

/// (sin x, cos x) for any finite x: the quadrant q = round(2x/π), the remainder
/// x − q·π/2 by Cephes' three-part π/2 (the first two parts have few enough bits that q times them
/// is exact for |q| < 2^13, i.e. |x| < 1.2·10^4), then `sincos_turns`' polynomials. Absolute error
/// about 1e-7 for |x| ≤ 1e4, growing past that as the reduction runs out of bits (libm reduces
/// exactly, WGSL's `sin`/`cos` do not). NaN or ±∞ give NaN.
#[inline(always)]
pub fn sincos(x: f32) -> (f32, f32) {
    const PIO2_1: f32 = 1.570_312_5; // 0x3FC9_0000: 8 significant bits
    const PIO2_2: f32 = 4.837_512_969_970_703_125e-4; // 0x39FD_A000: 11 significant bits
    const PIO2_3: f32 = 7.549_789_954_891_882_16e-8;
    let q = (x * std::f32::consts::FRAC_2_PI + 0.5).floor();
    // q fits `small_int` for |x| < 6.5e6; beyond, only the quadrant's low bits matter and they
    // come out as some quadrant, never undefined behaviour.
    in_quadrant(((x - q * PIO2_1) - q * PIO2_2) - q * PIO2_3, q)
}

/// (sin, cos) of q·π/2 + a for |a| ≤ π/4 and an integer-valued q: Cephes' `sinf`/`cosf`
/// polynomials on a, swapped and negated by the quadrant q mod 4.
#[inline(always)]
fn in_quadrant(a: f32, q: f32) -> (f32, f32) {
    let z = a * a;
    let s = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * a + a;
    let c = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    let qi = small_int(q);
    let (ss, cc) = if qi & 1 != 0 { (c, s) } else { (s, c) };
    let sin = if qi & 2 != 0 { -ss } else { ss };
    let cos = if (qi + 1) & 2 != 0 { -cc } else { cc };
    (sin, cos)
}

/// Four normals per lane from eight Philox blocks: the same Box–Muller pairs as `rng::normal4`.
#[inline(always)]
pub fn normal4_x8(r: &[U; 4]) -> [F; 4] {
    let mut out = [[0f32; L]; 4];
    for i in 0..L {
        let r0 = (-2.0 * ln(u01_open(r[0][i]))).sqrt();
        let (s0, c0) = sincos_turns(u01(r[1][i]));
        let r1 = (-2.0 * ln(u01_open(r[2][i]))).sqrt();
        let (s1, c1) = sincos_turns(u01(r[3][i]));
        out[0][i] = r0 * c0;
        out[1][i] = r0 * s0;
        out[2][i] = r1 * c1;
        out[3][i] = r1 * s1;
    }
    out
}

/// The first Box–Muller pair per lane, as `rng::normal2`.
#[inline(always)]
pub fn normal2_x8(r: &[U; 4]) -> [F; 2] {
    let mut out = [[0f32; L]; 2];
    for i in 0..L {
        let r0 = (-2.0 * ln(u01_open(r[0][i]))).sqrt();
        let (s0, c0) = sincos_turns(u01(r[1][i]));
        out[0][i] = r0 * c0;
        out[1][i] = r0 * s0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn philox_lanes_match_the_twin_bit_for_bit() {
        let key = [0x1234_5678, 0x9ABC_DEF0];
        let c: [U; 4] = std::array::from_fn(|w| std::array::from_fn(|i| (i as u32).wrapping_mul(0x9E37_79B9) ^ (w as u32 * 77)));
        let r = philox_x8(c, key);
        for i in 0..L {
            let want = rng::philox4x32_10([c[0][i], c[1][i], c[2][i], c[3][i]], key);
            assert_eq!([r[0][i], r[1][i], r[2][i], r[3][i]], want, "lane {i}");
        }
        // Random123 known answer in every lane.
        let r = philox_x8([[0; L]; 4], [0, 0]);
        assert_eq!([r[0][3], r[1][3], r[2][3], r[3][3]], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    }

    #[test]
    fn fast_math_within_its_stated_error() {
        // Relative error bound of the Cephes polynomials in f32, with room for the argument
        // reduction's rounding: 4 ulp-scale (5e-7).
        const REL: f32 = 5e-7;
        for i in 1..=20_000u32 {
            let x = i as f32 / 20_000.0;
            let (a, b) = (ln(x), x.ln());
            assert!((a - b).abs() <= REL * b.abs().max(1e-3), "ln({x}) = {a}, libm {b}");
            let u = (i - 1) as f32 / 20_000.0;
            let (s, c) = sincos_turns(u);
            let t = std::f64::consts::TAU * u as f64;
            assert!((s as f64 - t.sin()).abs() <= 1e-6 && (c as f64 - t.cos()).abs() <= 1e-6, "sincos({u}) = ({s}, {c})");
            let y = -20.0 + 40.0 * x;
            assert!((exp(y) - y.exp()).abs() <= REL * y.exp(), "exp({y}) = {}, libm {}", exp(y), y.exp());
            assert!((tanh(y / 4.0) - (y / 4.0).tanh()).abs() <= 2e-7, "tanh({})", y / 4.0);
        }
    }

    #[test]
    fn sincos_within_its_stated_error() {
        // Over the feature maps' arguments (projections of order 1–100) and out to 1e4, against
        // f64 libm: 1e-7 absolute plus the reduction's rounding, which grows with |x|.
        for i in 0..=200_000u32 {
            let x = -1e4f32 + i as f32 * 0.1;
            for x in [x, x / 100.0] {
                let (s, c) = sincos(x);
                let (ws, wc) = (x as f64).sin_cos();
                let tol = 2e-7 + 2e-11 * x.abs() as f64;
                assert!((s as f64 - ws).abs() <= tol && (c as f64 - wc).abs() <= tol, "sincos({x}) = ({s}, {c}), libm ({ws}, {wc})");
            }
        }
        assert_eq!(sincos(0.0), (0.0, 1.0));
        assert!(sincos(f32::NAN).0.is_nan() && sincos(f32::INFINITY).1.is_nan());
    }

    /// The previous conversion (`to_int_unchecked` after the clamp), written with a saturating
    /// `as`, which equals it wherever that was defined: the reference for bit-identity.
    fn exp_reference(x: f32) -> f32 {
        let x = x.clamp(-87.0, 88.0);
        let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let mut y = 1.987_569_1e-4f32;
        y = y * r + 1.398_2e-3;
        y = y * r + 8.333_452e-3;
        y = y * r + 4.166_579_6e-2;
        y = y * r + 1.666_666_5e-1;
        y = y * r + 5.000_000_1e-1;
        y = y * r * r + r + 1.0;
        y * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }

    #[test]
    fn finite_inputs_give_the_same_bits_as_before() {
        // Every 997th f32 bit pattern: about 4.3 million finite values of both signs, denormals,
        // the saturated ranges and everything between.
        for bits in (0..=u32::MAX).step_by(997) {
            let x = f32::from_bits(bits);
            if x.is_finite() {
                assert_eq!(exp(x).to_bits(), exp_reference(x).to_bits(), "exp({x:e})");
            }
        }
        for u in (0..1 << 24).map(|i| i as f32 / 16_777_216.0) {
            let q = (u * 4.0 + 0.5).floor();
            assert_eq!(small_int(q), q as i32, "quadrant of {u}");
        }
    }

    #[test]
    fn nan_propagates_and_infinities_saturate() {
        let (inf, nan) = (f32::INFINITY, f32::NAN);
        for x in [nan, -nan] {
            assert!(exp(x).is_nan(), "exp(NaN) = {}", exp(x));
            assert!(tanh(x).is_nan(), "tanh(NaN) = {}", tanh(x));
            assert!(pow(2.5, x).is_nan(), "pow(2.5, NaN) = {}", pow(2.5, x));
        }
        assert_eq!((exp(inf), exp(-inf)), (exp(88.0), exp(-87.0)));
        assert_eq!((tanh(inf), tanh(-inf)), (inf.tanh(), (-inf).tanh()));
        // Each input of the fast kernels' activations: a NaN pre-activation stays NaN.
        let gelu = |v: f32| 0.5 * v * (1.0 + tanh(0.797_884_6 * (v + 0.044715 * v * v * v)));
        assert!(gelu(nan).is_nan());
    }

    #[test]
    fn normals_match_the_twin_box_muller() {
        let key = [7, 11];
        let c: [U; 4] = [std::array::from_fn(|i| i as u32 * 1000 + 3), [5; L], [9; L], [0; L]];
        let r = philox_x8(c, key);
        let n = normal4_x8(&r);
        for i in 0..L {
            let want = rng::normal4([r[0][i], r[1][i], r[2][i], r[3][i]]);
            for w in 0..4 {
                assert!((n[w][i] - want[w]).abs() <= 1e-5 * want[w].abs().max(1.0), "lane {i} word {w}: {} vs {}", n[w][i], want[w]);
            }
        }
    }
}
