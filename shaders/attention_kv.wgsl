// Stage `attention_kv`: the sums of linear attention (Katharopoulos et al., ICML 2020;
// kernel-attention spec §3) per trial and head: S[f][c] = Σ_j K′_jf V_jc and, as column c = dv,
// z[f] = Σ_j K′_jf. Non-causal: over all tokens, one slot. Causal: exclusive prefix sums per block
// of ATTN_BLOCK tokens, slot b holding the sums over the tokens before block b (`attention_out`
// adds the block's own tokens), so no n × n matrix and no per-token state is ever stored.
// Layout kv[trial][head][block][f][dv + 1]; Φ rows are every head's Q, then every head's K
// ([trial][2·heads·seq][width]); V is [head][seq][dv]. One invocation = one (trial, head, f, c),
// summing tokens in order. CPU twin: src/engine/cpu/attention_kv.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phi: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> kv: array<f32>;

const ATTN_BLOCK: u32 = 64u;
const KV_WG: u32 = 64u;

@compute @workgroup_size(KV_WG)
fn attention_kv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let K = P.kern;
    let cols = K.dv + 1u;
    let i = gid.x + gid.y * nwg.x * KV_WG;
    if (i >= P.layer.trials * K.heads * K.width * cols) {
        return;
    }
    let c = i % cols;
    let f = (i / cols) % K.width;
    let th = i / (cols * K.width);   // trial_local * heads + head
    let hd = th % K.heads;
    let t = th / K.heads;
    let krow0 = t * K.rows + K.heads * K.seq + hd * K.seq;
    var acc = 0.0;
    for (var j = 0u; j < K.seq; j = j + 1u) {
        if (K.causal != 0u && j % ATTN_BLOCK == 0u) {
            kv[((th * K.blocks + j / ATTN_BLOCK) * K.width + f) * cols + c] = acc;
        }
        var vv = 1.0;
        if (c < K.dv) {
            vv = v[(hd * K.seq + j) * K.dv + c];
        }
        acc = acc + phi[(krow0 + j) * K.width + f] * vv;
    }
    if (K.causal == 0u) {
        kv[(th * K.width + f) * cols + c] = acc;
    }
}
