//! Runtime CPU-feature dispatch for the eight-lane loops (the fast CPU kernels and the
//! peak probes): a function body compiled twice, for AVX2+FMA and for the baseline target, and
//! the AVX2 copy taken where the CPU has it. The eight-lane Philox (`rng::philox_x8`) becomes
//! 256-bit integer multiplies in the AVX2 copy.

/// Whether the CPU runs AVX2 and FMA (checked once).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name(args)` that runs `$body_fn(args)` compiled for AVX2+FMA when the CPU has them
/// (the body is `#[inline(always)]`, so it is generated again inside the `target_feature`
/// function) and for the baseline target otherwise. Floating-point results are the same either
/// way: Rust never contracts `a * b + c` into an FMA on its own.
macro_rules! simd_entry {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body_fn:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body_fn($($arg),*)
                }
                if $crate::rng::simd::has_avx2() {
                    // SAFETY: the CPU was checked for AVX2 and FMA just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body_fn($($arg),*)
        }
    };
}
pub(crate) use simd_entry;
