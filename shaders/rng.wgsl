// Stage `rng`: the raw Philox4x32-10 stream and its Box-Muller normals, for checking the WGSL
// generator against its Rust twin bit for bit (u32) and by distribution (normals).
// One invocation = one block: counter [i, trial_offset, key-independent word2 = layer, 0].
// CPU twin: src/engine/cpu/rng.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read_write> words: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> normals: array<vec4<f32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn rng(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials) {
        return;
    }
    let r = philox4x32_10(vec4<u32>(i, P.layer.trial_offset, P.layer.layer, P.layer.t_index), vec2<u32>(P.layer.key0, P.layer.key1));
    words[i] = r;
    normals[i] = normal4(r);
}
