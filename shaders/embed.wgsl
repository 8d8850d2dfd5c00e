// Stage `embed`: the digital token embedding of a transformer (Vaswani et al. 2017; BERT):
// x = E[token]·scale + pos[token index], pos holding the position rows with any token-type row
// folded in. Broadcast to every trial of the chunk (later stages give each trial its own
// activations). `tokens` and the output cover one sample batch; a token id is clamped to the
// vocabulary (validation refuses out-of-range ids, so the clamp only keeps reads in bounds).
// One invocation = one (trial, sample, token, feature). CPU twin: src/engine/cpu/embed.rs.

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
    let id = min(tokens[tok], S.vocab - 1u);
    x[i] = table[id * S.d_model + c] * S.scale + pos[(tok % S.seq) * S.d_model + c];
}
