// Stage `peak_philox`: the adapter's Philox4x32-10 throughput, the ceiling every RNG-bound stage is
// measured against. One invocation = `batch` dependent-free Philox blocks XOR-folded into one word
// (the fold keeps the work live). Invocations: `trials`. CPU twin: src/engine/cpu/peak_philox.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn peak_philox(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials) {
        return;
    }
    var acc = 0u;
    for (var k = 0u; k < P.layer.batch; k = k + 1u) {
        let r = philox4x32_10(vec4<u32>(k, i, 0u, 0u), vec2<u32>(P.layer.key0, P.layer.key1));
        acc = acc ^ r.x ^ r.y ^ r.z ^ r.w;
    }
    sink[i] = acc;
}
