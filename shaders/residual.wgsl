// Stage `residual`: a residual addition, x = activate(x + y), element by element over
// rows · width_in values: the transformer's (no activation) and a residual network's shortcut
// (He et al. 2016, relu(F(x) + x)). One invocation = one value. CPU twin: src/engine/cpu/residual.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.seq.rows * P.seq.width_in) {
        return;
    }
    x[i] = activate(P.layer.activation, x[i] + y[i]);
}
