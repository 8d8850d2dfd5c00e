// Stage `row_norms`: scale · ‖x_r‖² of each row of width width_in; kernel attention's ‖x̃‖² of
// every (trial, token, head) slice, x̃ = x·d_head^(−1/4) (scale 1/√d_head), which the positive,
// trig and ReLU feature maps of `feature_map` read (kernel-attention spec §2). One invocation =
// one row. CPU twin: src/engine/cpu/row_norms.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> norms: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn row_norms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= S.rows) {
        return;
    }
    var sq = 0.0;
    for (var c = 0u; c < S.width_in; c = c + 1u) {
        let e = x[r * S.width_in + c];
        sq = sq + e * e;
    }
    norms[r] = S.scale * sq;
}
