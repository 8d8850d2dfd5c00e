// Stage `accuracy`: per-trial correct count of a classifier: argmax over the last layer's
// outputs (first maximum on ties: common/argmax.wgsl) against the label, counted with an integer atomic, so counts
// are exact whatever the dispatch shape. Counts go to slot [t_index][trial] of a buffer that holds
// every time point of a chunk, so the host reads them back once per chunk, not once per time.
// One invocation = one (trial, sample).
// CPU twin: src/engine/cpu/accuracy.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> correct: array<atomic<u32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn accuracy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * L.batch) {
        return;
    }
    if (first_argmax(i * L.n_out, L.n_out) == labels[i % L.batch]) {
        atomicAdd(&correct[L.t_index * L.trials + i / L.batch], 1u);
    }
}
