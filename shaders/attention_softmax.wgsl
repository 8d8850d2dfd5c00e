// Stage `attention_softmax`: exact scaled dot-product attention (Vaswani et al. 2017), digital:
// out_i = Σ_j softmax_j(q_i·k_j / √d_head) v_j over the keys j < len (the padding mask; padding
// trails) and, causal, j ≤ i. One pass with a running maximum (online softmax; Milakov &
// Gimelshein 2018), so no scores are stored and sequences of any length (512 tokens and more)
// run in one invocation. q, k, v and out are [trial][sample][token][d_model], head h in columns
// h·d_head..; `lengths` is [sample] of this batch. One invocation = one (trial, sample, head,
// query token). CPU twin: src/engine/cpu/attention_softmax.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> lengths: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

// Largest d_head the private accumulator holds.
const MAX_D_HEAD: u32 = 128u;

@compute @workgroup_size(WG)
fn attention_softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let g = gid.x + gid.y * nwg.x * WG;
    if (g >= P.layer.trials * S.samples * S.heads * S.seq) {
        return;
    }
    let i = g % S.seq;
    let h = (g / S.seq) % S.heads;
    let ts = g / (S.seq * S.heads);          // trial_local · samples + sample
    let dh = min(S.d_head, MAX_D_HEAD);
    var keys = min(lengths[ts % S.samples], S.seq);
    if (S.causal != 0u) {
        keys = min(keys, i + 1u);
    }
    let base = ts * S.seq * S.d_model + h * S.d_head;
    let qo = base + i * S.d_model;
    let inv = 1.0 / sqrt(f32(S.d_head));
    var acc: array<f32, MAX_D_HEAD>;
    var m = -3.0e38;
    var l = 0.0;
    for (var j = 0u; j < keys; j = j + 1u) {
        let ko = base + j * S.d_model;
        var s = 0.0;
        for (var c = 0u; c < dh; c = c + 1u) {
            s = s + q[qo + c] * k[ko + c];
        }
        s = s * inv;
        if (s > m) {
            let corr = exp(m - s);
            l = l * corr;
            for (var c = 0u; c < dh; c = c + 1u) {
                acc[c] = acc[c] * corr;
            }
            m = s;
        }
        let p = exp(s - m);
        l = l + p;
        for (var c = 0u; c < dh; c = c + 1u) {
            acc[c] = acc[c] + p * v[ko + c];
        }
    }
    let r = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0u; c < dh; c = c + 1u) {
        out[qo + c] = acc[c] * r;
    }
}
