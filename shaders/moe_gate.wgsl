// Stage `moe_gate`: a routed feed-forward layer's gates per token (the moe workload's rule,
// Mixtral's convention): the top_k experts by router logit (ties: the lower index), softmax over
// the chosen logits, 0 for the others. `logits` and `gates` are [row][experts] over every
// (trial, sample, token) row of the dispatch. One invocation = one row. CPU twin:
// src/engine/cpu/moe_gate.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> gates: array<f32>;

override WG: u32 = 64u;

// Experts a token's choice mask holds (one bit each).
const MAX_EXPERTS: u32 = 32u;

@compute @workgroup_size(WG)
fn moe_gate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= S.rows) {
        return;
    }
    let e_n = min(S.experts, MAX_EXPERTS);
    let o = r * S.experts;
    var chosen = 0u;
    var top = 0.0;
    for (var k = 0u; k < min(S.top_k, e_n); k = k + 1u) {
        var best = e_n;
        var bv = 0.0;
        for (var e = 0u; e < e_n; e = e + 1u) {
            if (((chosen >> e) & 1u) == 0u && (best == e_n || logits[o + e] > bv)) {
                best = e;
                bv = logits[o + e];
            }
        }
        chosen = chosen | (1u << best);
        if (k == 0u) {
            top = bv;
        }
    }
    var z = 0.0;
    for (var e = 0u; e < e_n; e = e + 1u) {
        if (((chosen >> e) & 1u) != 0u) {
            z = z + exp(logits[o + e] - top);
        }
    }
    for (var e = 0u; e < e_n; e = e + 1u) {
        gates[o + e] = select(0.0, exp(logits[o + e] - top) / z, ((chosen >> e) & 1u) != 0u);
    }
}
