// mulhi32 for adapters without 64-bit integers: the high word of the 32 x 32 -> 64 product built
// from 16-bit halves (about 15 instructions). Same bits as common/mulhi_u64.wgsl; Rust twin
// `rng::mulhi32_halves`. No entry points.

fn mulhi32(a: u32, b: u32) -> u32 {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    return p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}
