// mulhi32 from a 64-bit product: one wide multiply where the adapter has SHADER_INT64 (about
// twice the Philox throughput of the 16-bit halves on an H100). Same bits as
// common/mulhi_halves.wgsl; Rust twin `rng::mulhi32`. No entry points.

fn mulhi32(a: u32, b: u32) -> u32 {
    return u32((u64(a) * u64(b)) >> 32u);
}
