// Stage `peak_fma`: the adapter's FP32 fused multiply-add throughput (the GEMM ceiling). One
// invocation = `batch` iterations of 16 independent vec4 FMA chains (128 FLOPs each): enough
// independent work per invocation to hide FMA latency, so the probe reaches the FP32 peak (a
// single dependent chain reaches about a third of it). Invocations: `trials`.
// CPU twin: src/engine/cpu/peak_fma.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn peak_fma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials) {
        return;
    }
    let m = vec4<f32>(0.999 + f32(i & 7u) * 1e-6);
    let c = vec4<f32>(P.io.out_noise);
    let x = f32(i);
    var a0 = vec4<f32>(x, 0.0, 1.0, 2.0);
    var a1 = vec4<f32>(x, 4.0, 5.0, 6.0);
    var a2 = vec4<f32>(x, 8.0, 9.0, 10.0);
    var a3 = vec4<f32>(x, 12.0, 13.0, 14.0);
    var a4 = vec4<f32>(x, 16.0, 17.0, 18.0);
    var a5 = vec4<f32>(x, 20.0, 21.0, 22.0);
    var a6 = vec4<f32>(x, 24.0, 25.0, 26.0);
    var a7 = vec4<f32>(x, 28.0, 29.0, 30.0);
    var a8 = vec4<f32>(x, 32.0, 33.0, 34.0);
    var a9 = vec4<f32>(x, 36.0, 37.0, 38.0);
    var a10 = vec4<f32>(x, 40.0, 41.0, 42.0);
    var a11 = vec4<f32>(x, 44.0, 45.0, 46.0);
    var a12 = vec4<f32>(x, 48.0, 49.0, 50.0);
    var a13 = vec4<f32>(x, 52.0, 53.0, 54.0);
    var a14 = vec4<f32>(x, 56.0, 57.0, 58.0);
    var a15 = vec4<f32>(x, 60.0, 61.0, 62.0);
    for (var k = 0u; k < P.layer.batch; k = k + 1u) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
        a8 = fma(a8, m, c);
        a9 = fma(a9, m, c);
        a10 = fma(a10, m, c);
        a11 = fma(a11, m, c);
        a12 = fma(a12, m, c);
        a13 = fma(a13, m, c);
        a14 = fma(a14, m, c);
        a15 = fma(a15, m, c);
    }
    sink[i] = dot(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15, vec4<f32>(1.0));
}
