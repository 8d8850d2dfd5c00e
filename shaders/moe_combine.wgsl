// Stage `moe_combine`: adds expert `expert`'s outputs, weighted by its gate, into a routed
// feed-forward layer's output: y = gate_e · y_e (the first expert) or y + gate_e · y_e. `gates` is
// [row][experts], y_e and y are [row][width_in]. One invocation = one value. CPU twin:
// src/engine/cpu/moe_combine.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> ye: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn moe_combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= S.rows * S.width_in) {
        return;
    }
    let g = gates[(i / S.width_in) * S.experts + S.expert];
    y[i] = select(y[i], 0.0, S.expert == 0u) + g * ye[i];
}
