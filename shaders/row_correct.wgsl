// Stage `row_correct`: per test row of a classifier, the trials of a chunk that classify it right
// (top-level `row_counts`, or a transformer classifier's `transformer.row_counts`): argmax over
// the last layer's outputs (first maximum on ties, common/argmax.wgsl, as `accuracy` picks it)
// against the row's label, counted with an integer atomic into slot
// [t_index][sample_offset + sample] (stride `batch`, the rows of the data set) of a buffer that
// holds every time point of a chunk (cleared before the chunk's first count), so the counts are
// exact whatever the dispatch shape and the host reads them back once per chunk, adding chunks,
// sample batches and shards: which inputs the noise breaks first. One invocation = one (trial,
// sample) of the dispatch's `seq.samples`, as `accuracy`; labels are the dispatch's own.
// CPU twin: src/engine/cpu/row_correct.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> rows: array<atomic<u32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn row_correct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * S.samples) {
        return;
    }
    let sample = i % S.samples;
    if (first_argmax(i * L.n_out, L.n_out) == labels[sample]) {
        atomicAdd(&rows[L.t_index * L.batch + S.sample_offset + sample], 1u);
    }
}
