// Stage `peak_exp`: the adapter's transcendental throughput (the device state's ceiling: its
// ln, exp, sqrt, sin and cos). One invocation = `batch` iterations of 8 independent vec4 chains
// a ← exp(−a) (32 exponentials each): a contraction toward Ω ≈ 0.567 (|d/da| = a < 1), so the
// chains stay finite and errors do not grow. Invocations: `trials`.
// CPU twin: src/engine/cpu/peak_exp.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn peak_exp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials) {
        return;
    }
    // Starting points in [0, 1): the item's low bits and the chain's index.
    let x = f32(i & 255u) / 256.0;
    var a0 = vec4<f32>(x, 0.0, 0.125, 0.25);
    var a1 = vec4<f32>(x, 0.375, 0.5, 0.625);
    var a2 = vec4<f32>(x, 0.75, 0.875, 0.0625);
    var a3 = vec4<f32>(x, 0.1875, 0.3125, 0.4375);
    var a4 = vec4<f32>(x, 0.5625, 0.6875, 0.8125);
    var a5 = vec4<f32>(x, 0.9375, 0.03125, 0.09375);
    var a6 = vec4<f32>(x, 0.15625, 0.21875, 0.28125);
    var a7 = vec4<f32>(x, 0.34375, 0.40625, 0.46875);
    for (var k = 0u; k < P.layer.batch; k = k + 1u) {
        a0 = exp(-a0);
        a1 = exp(-a1);
        a2 = exp(-a2);
        a3 = exp(-a3);
        a4 = exp(-a4);
        a5 = exp(-a5);
        a6 = exp(-a6);
        a7 = exp(-a7);
    }
    sink[i] = dot(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7, vec4<f32>(1.0));
}
