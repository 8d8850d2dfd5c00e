// Stage `peak_fma`: the adapter's FP32 fused multiply-add throughput (the GEMM ceiling). One
// invocation = `batch` iterations of 8 independent FMA chains (16 FLOPs each); invocations:
// `trials`. CPU twin: src/engine/cpu/peak_fma.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn peak_fma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials) {
        return;
    }
    let m = 0.999 + f32(i & 7u) * 1e-6;
    let c = P.io.out_noise;
    var a = vec4<f32>(f32(i), 1.0, 2.0, 3.0);
    var b = vec4<f32>(4.0, 5.0, 6.0, 7.0);
    for (var k = 0u; k < P.layer.batch; k = k + 1u) {
        a = fma(a, vec4<f32>(m), vec4<f32>(c));
        b = fma(b, vec4<f32>(m), vec4<f32>(c));
    }
    sink[i] = dot(a, b);
}
