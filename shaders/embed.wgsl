// Stage `embed`: the digital token embedding of a transformer (Vaswani et al. 2017; BERT;
// MobileBERT, Sun et al. ACL 2020), in three modes (`P.seq.mode`):
// 0: x = E[token]·scale + pos[segment][token index], pos holding the position rows with
//    token-type row 0 folded in and, for sentence pairs, a second block with row 1; a token's
//    segment is its id's top bit (set by the host on the tokens after a pair's first separator).
//    Broadcast to every trial of the chunk (later stages give each trial its own activations).
// 1: the token taps, `taps` embeddings of `width_in` values side by side: with 3 taps
//    MobileBERT's trigram input [E[t + 1], E[t], E[t − 1]]·scale over the padded sequence, zero
//    past either end (Hugging Face `MobileBertEmbeddings`); with 1 tap E[t]·scale. Broadcast
//    like mode 0; the analog projection that follows widens it to d_model.
// 2: x = input + pos[segment][token index] on every trial's own rows (after that projection).
// `tokens` and the output cover one sample batch; a token id is clamped to the vocabulary
// (validation refuses out-of-range ids, so the clamp only keeps reads in bounds). One
// invocation = one (trial, sample, token, value). CPU twin: src/engine/cpu/embed.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

override WG: u32 = 64u;

fn token_id(raw: u32) -> u32 {
    return min(raw & 0x7fffffffu, P.seq.vocab - 1u);
}

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    var w = S.d_model;
    if (S.mode == 1u) {
        w = S.taps * S.width_in;
    }
    let per_trial = S.samples * S.seq * w;
    if (i >= P.layer.trials * per_trial) {
        return;
    }
    let c = i % w;
    let tok = (i % per_trial) / w;     // sample · seq + token index
    let t = tok % S.seq;
    if (S.mode == 1u) {
        let e = S.width_in;
        // Tap j reads token t + 1 − j of three (t of one).
        let shift = select(0, 1 - i32(c / e), S.taps == 3u);
        let src = i32(t) + shift;
        if (src < 0 || src >= i32(S.seq)) {
            x[i] = 0.0;
        } else {
            x[i] = table[token_id(tokens[tok - t + u32(src)]) * e + c % e] * S.scale;
        }
        return;
    }
    let raw = tokens[tok];
    let p = pos[((raw >> 31u) * S.seq + t) * S.d_model + c];
    if (S.mode == 2u) {
        x[i] = table[i] + p;
    } else {
        x[i] = table[token_id(raw) * S.d_model + c] * S.scale + p;
    }
}
