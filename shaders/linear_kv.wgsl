// Stage `linear_kv`: the key sums of a transformer's linear attention (Katharopoulos et al., ICML
// 2020; kernel-attention spec §3) per (trial, sample, head): S[f][c] = Σ_j φk_jf v_jc and, as
// column c = d_head, z[f] = Σ_j φk_jf, over the non-padding keys j < len. Causal: exclusive
// prefix sums per block of ATTN_BLOCK tokens (slot b: the keys before block b; `linear_out`
// adds the block's own), so no token × token matrix is stored. φk is [trial][sample][token]
// [head][width] (`feature_map` of the per-head slices), v is [trial][sample][token][d_model]; kv
// is [trial][sample][head][block][width][d_head + 1]. One invocation = one (trial, sample, head,
// f, c), summing keys in order. CPU twin: src/engine/cpu/linear_kv.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phik: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> kv: array<f32>;

override WG: u32 = 64u;

const ATTN_BLOCK: u32 = 64u;

@compute @workgroup_size(WG)
fn linear_kv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let cols = S.d_head + 1u;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials * S.samples * S.heads * S.width * cols) {
        return;
    }
    let c = i % cols;
    let f = (i / cols) % S.width;
    let tsh = i / (cols * S.width);          // (trial_local · samples + sample) · heads + head
    let h = tsh % S.heads;
    let ts = tsh / S.heads;
    let len = min(lengths[ts % S.samples], S.seq);
    var acc = 0.0;
    for (var j = 0u; j < S.seq; j = j + 1u) {
        if (S.causal != 0u && j % ATTN_BLOCK == 0u) {
            kv[((tsh * S.blocks + j / ATTN_BLOCK) * S.width + f) * cols + c] = acc;
        }
        if (j < len) {
            var vv = 1.0;
            if (c < S.d_head) {
                vv = v[(ts * S.seq + j) * S.d_model + h * S.d_head + c];
            }
            acc = acc + phik[((ts * S.seq + j) * S.heads + h) * S.width + f] * vv;
        }
    }
    if (S.causal == 0u) {
        kv[(tsh * S.width + f) * cols + c] = acc;
    }
}
