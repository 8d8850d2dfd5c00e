// Stage `embed`: the digital token embedding of a transformer (Vaswani et al. 2017; BERT):
// x = E[token]·scale + pos[segment][token index], pos holding the position rows with token-type
// row 0 folded in and, for sentence pairs, a second block with row 1; a token's segment is its
// id's top bit (set by the host on the tokens after a pair's first separator). Broadcast to
// every trial of the chunk (later stages give each trial its own activations). `tokens` and the
// output cover one sample batch; a token id is clamped to the vocabulary (validation refuses
// out-of-range ids, so the clamp only keeps reads in bounds). One invocation = one (trial,
// sample, token, feature). CPU twin: src/engine/cpu/embed.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    let per_trial = S.samples * S.seq * S.d_model;
    if (i >= P.layer.trials * per_trial) {
        return;
    }
    let c = i % S.d_model;
    let tok = (i % per_trial) / S.d_model;     // sample · seq + token index
    let raw = tokens[tok];
    let id = min(raw & 0x7fffffffu, S.vocab - 1u);
    let segment = raw >> 31u;
    x[i] = table[id * S.d_model + c] * S.scale + pos[(segment * S.seq + tok % S.seq) * S.d_model + c];
}
