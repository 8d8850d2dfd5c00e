// Stage `row_correct`: per test row of a classifier, the trials of a chunk that classify it right
// (top-level `row_counts`): argmax over the last layer's outputs (first maximum on ties, as
// `accuracy` picks it) against the row's label, counted over the chunk's trials into slot
// [t_index][sample] of a buffer that holds every time point of a chunk, so the host reads the
// counts back once per chunk and adds chunks, sample batches and shards: which inputs the noise
// breaks first. Integer counts, the same on every backend. One invocation = one sample, looping
// over the trials.
// CPU twin: src/engine/cpu/row_correct.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> rows: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn row_correct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let s = gid.x + gid.y * nwg.x * WG;
    if (s >= L.batch) {
        return;
    }
    var count = 0u;
    for (var t = 0u; t < L.trials; t = t + 1u) {
        let base = (t * L.batch + s) * L.n_out;
        var best = 0u;
        var best_v = h[base];
        for (var o = 1u; o < L.n_out; o = o + 1u) {
            if (h[base + o] > best_v) {
                best_v = h[base + o];
                best = o;
            }
        }
        if (best == labels[s]) {
            count = count + 1u;
        }
    }
    rows[L.t_index * L.batch + s] = count;
}
