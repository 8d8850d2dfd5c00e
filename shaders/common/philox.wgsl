// Counter-based RNG: Philox4x32-10 (Salmon et al., SC'11) and Box-Muller normals.
// Bit-exact twin: src/rng/mod.rs. No entry points. `mulhi32`, the high word of the 32 x 32 -> 64
// product, comes from common/mulhi_u64.wgsl (a 64-bit product, where the adapter has
// SHADER_INT64) or common/mulhi_halves.wgsl (built from 16-bit halves); both give the same bits.
// Counter layout (same as the Rust constants): [element or sample, global trial,
// layer | stream << 8 | t_index << 16, extra].

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

const STREAM_PROG: u32 = 1u;
const STREAM_READ: u32 = 2u;
const STREAM_GDC_BASE: u32 = 4u;
const STREAM_OUT: u32 = 5u;
const STREAM_FAULT: u32 = 6u;
const STREAM_INP: u32 = 7u;

fn philox4x32_10(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = ctr_in;
    var k = key_in;
    for (var r = 0u; r < 10u; r = r + 1u) {
        let hi0 = mulhi32(PHILOX_M0, c.x);
        let lo0 = PHILOX_M0 * c.x;
        let hi1 = mulhi32(PHILOX_M1, c.z);
        let lo1 = PHILOX_M1 * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    return c;
}

// Layer bits 8..11 go to bits 28..31 by XOR (src/rng/mod.rs `ctr_word2`): layers below 256 keep
// their words; layers 256..4095 run with time indices below 4096.
fn ctr_word2(layer: u32, stream: u32, t_index: u32) -> u32 {
    return ((layer & 0xFFu) | ((stream & 0xFFu) << 8u) | ((t_index & 0xFFFFu) << 16u)) ^ (((layer >> 8u) & 0xFu) << 28u);
}

fn ctr_word3_out(out_idx: u32, tile_in: u32, bm_level: u32) -> u32 {
    return (out_idx & 0xFFFFFu) | ((tile_in & 0xFFu) << 20u) | ((bm_level & 0xFu) << 28u);
}

// Per-read weight-noise draws use output-group indices with this bit set (groups stay < 2^18).
const W_NOISE_GROUP: u32 = 0x80000u;

// The output noise of one MVM for outputs 4*o4 .. 4*o4+3 of sample s: all four words of one
// block become four normals (output o takes component o % 4). Twin: rng::out_normals.
fn out_normals(s: u32, trial: u32, layer: u32, t_index: u32, o4: u32, tile_in: u32, bm_level: u32, key: vec2<u32>) -> vec4<f32> {
    return normal4(philox4x32_10(vec4<u32>(s, trial, ctr_word2(layer, STREAM_OUT, t_index), ctr_word3_out(o4, tile_in, bm_level)), key));
}

// Input noise of one MVM of tile (tile_out, tile_in) for input lines 4*k4 .. 4*k4+3 of sample s
// (line k takes component k % 4): input group in 9 bits and output tile in 11 bits of the output
// field. Twin: rng::inp_normals.
fn inp_normals(s: u32, trial: u32, layer: u32, t_index: u32, k4: u32, tile_out: u32, tile_in: u32, bm_level: u32, key: vec2<u32>) -> vec4<f32> {
    let w3 = ctr_word3_out((k4 & 0x1FFu) | ((tile_out & 0x7FFu) << 9u), tile_in, bm_level);
    return normal4(philox4x32_10(vec4<u32>(s, trial, ctr_word2(layer, STREAM_INP, t_index), w3), key));
}

// Uniform in (0, 1]: never 0, safe for log.
fn u01_open(x: u32) -> f32 {
    return (f32(x >> 8u) + 1.0) * (1.0 / 16777216.0);
}

// Uniform in [0, 1).
fn u01(x: u32) -> f32 {
    return f32(x >> 8u) * (1.0 / 16777216.0);
}

const TAU: f32 = 6.283185307179586;

fn normal4(r: vec4<u32>) -> vec4<f32> {
    let r0 = sqrt(-2.0 * log(u01_open(r.x)));
    let t0 = TAU * u01(r.y);
    let r1 = sqrt(-2.0 * log(u01_open(r.z)));
    let t1 = TAU * u01(r.w);
    return vec4<f32>(r0 * cos(t0), r0 * sin(t0), r1 * cos(t1), r1 * sin(t1));
}

fn normal2(r: vec4<u32>) -> vec2<f32> {
    let r0 = sqrt(-2.0 * log(u01_open(r.x)));
    let t0 = TAU * u01(r.y);
    return vec2<f32>(r0 * cos(t0), r0 * sin(t0));
}
