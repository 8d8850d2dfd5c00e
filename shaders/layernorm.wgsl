// Stage `layernorm`: LayerNorm over each row (Ba et al. 2016; PyTorch `nn.LayerNorm`): y =
// (x − mean) / sqrt(var + ε) · γ + β with the biased variance, two passes over the row in f32;
// with `P.seq.mode` 1, MobileBERT's NoNorm (Sun et al. ACL 2020) or an inference BatchNorm kept
// digital after a convolution (per channel): y = activate(x · γ + β) with the layer's
// activation (none for the transformer's). `gb` holds γ then β. Rows are every (trial, sample,
// token or pixel) of the dispatch. One invocation = one row. CPU twin: src/engine/cpu/layernorm.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gb: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn layernorm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= S.rows) {
        return;
    }
    let w = S.width_in;
    let o = r * w;
    if (S.mode == 1u) {
        for (var c = 0u; c < w; c = c + 1u) {
            y[o + c] = activate(P.layer.activation, x[o + c] * gb[c] + gb[w + c]);
        }
        return;
    }
    var sum = 0.0;
    for (var c = 0u; c < w; c = c + 1u) {
        sum = sum + x[o + c];
    }
    let mean = sum / f32(w);
    var sq = 0.0;
    for (var c = 0u; c < w; c = c + 1u) {
        let e = x[o + c] - mean;
        sq = sq + e * e;
    }
    let inv = 1.0 / sqrt(sq / f32(w) + S.eps);
    for (var c = 0u; c < w; c = c + 1u) {
        y[o + c] = (x[o + c] - mean) * inv * gb[c] + gb[w + c];
    }
}
