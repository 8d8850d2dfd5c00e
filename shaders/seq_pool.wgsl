// Stage `seq_pool`: a sequence's vector for the classifier head: the mean over its non-padding
// tokens j < len (IBM's LRA models; 0 for an empty sequence), its first token (BERT's CLS) or its
// last non-padding token len − 1 (`pool` 2: a causal model's, GPT-2's sequence classifier; 0 for
// an empty sequence).
// x is [trial][sample][token][d_model], out [trial][sample][d_model]. One invocation = one
// (trial, sample, feature). CPU twin: src/engine/cpu/seq_pool.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn seq_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials * S.samples * S.d_model) {
        return;
    }
    let c = i % S.d_model;
    let ts = i / S.d_model;
    let base = ts * S.seq * S.d_model + c;
    if (S.pool == 1u) {
        out[i] = x[base];
        return;
    }
    let len = min(lengths[ts % S.samples], S.seq);
    if (S.pool == 2u) {
        var last = 0.0;
        if (len > 0u) {
            last = x[base + (len - 1u) * S.d_model];
        }
        out[i] = last;
        return;
    }
    var acc = 0.0;
    for (var j = 0u; j < len; j = j + 1u) {
        acc = acc + x[base + j * S.d_model];
    }
    out[i] = select(0.0, acc / f32(len), len > 0u);
}
