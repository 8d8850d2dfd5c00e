// Stage `kernel_error`: the numerator of the relative kernel error ‖K − ΦΦᵀ‖_F / ‖K‖_F
// (kernel-attention spec §3) per trial: for each row i of the point set, Σ_j (K_ij − φ_i·φ_j)²,
// into slot [t_index][trial][row] of `partial`; the host sums the rows of a trial in f64. One
// workgroup of KE_WG = one (trial, row i): invocation l takes the rows j ≡ l (mod KE_WG) in
// order, then a fixed-shape tree sums the invocations. Never more than the chunk's Φ and one
// n × n K (shared by all trials) in memory. CPU twin: src/engine/cpu/kernel_error.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> phi: array<f32>;
@group(0) @binding(2) var<storage, read> kmat: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

const KE_WG: u32 = 256u;
var<workgroup> acc: array<f32, KE_WG>;

@compute @workgroup_size(KE_WG)
fn kernel_error(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let K = P.kern;
    let g = wid.x + wid.y * nwg.x;   // uniform over the workgroup
    if (g >= P.layer.trials * K.rows) {
        return;
    }
    let i = g % K.rows;
    let t = g / K.rows;
    let pi = g * K.width;
    var sum = 0.0;
    for (var j = lid; j < K.rows; j = j + KE_WG) {
        let pj = (t * K.rows + j) * K.width;
        var dot = 0.0;
        for (var f = 0u; f < K.width; f = f + 1u) {
            dot = dot + phi[pi + f] * phi[pj + f];
        }
        let e = kmat[i * K.rows + j] - dot;
        sum = sum + e * e;
    }
    acc[lid] = sum;
    workgroupBarrier();
    for (var half = KE_WG / 2u; half > 0u; half = half >> 1u) {
        if (lid < half) {
            acc[lid] = acc[lid] + acc[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        partial[(P.layer.t_index * P.layer.trials + t) * K.rows + i] = acc[0];
    }
}
