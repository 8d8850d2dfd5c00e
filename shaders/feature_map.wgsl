// Stage `feature_map`: random features from one chunk's analog projections (kernel-attention spec
// §2; Büchel, Camposampiero et al., Nat. Mach. Intell. 2024; FAVOR+, Choromanski et al., ICLR
// 2021): average the r replicas of projection row j, then φ = s^(−1/2)·h(x)·f(y) per map
// (P.kern.map): 0 RBF [cos y, sin y]; 1 ArcCos0 √2·Θ(y); 2 ArcCos1 √2·max(y, 0); 3 softmax
// positive [exp(y − ‖x‖²/2), exp(−y − ‖x‖²/2)]/√2; 4 softmax trig exp(‖x‖²/2)·[sin y, cos y];
// 5 softmax ReLU exp(−‖x‖²/2)·max(y, 0). The same table as src/kernel/mod.rs. One invocation =
// one (trial, row, projection row j); φ is [trial][row][width], column j and, for pairs, s + j.
// CPU twin: src/engine/cpu/feature_map.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> phi: array<f32>;

override WG: u32 = 64u;

const SQRT2: f32 = 1.4142135623730951;

@compute @workgroup_size(WG)
fn feature_map(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let K = P.kern;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials * K.rows * K.s) {
        return;
    }
    let j = i % K.s;
    let tr = i / K.s;                // trial_local * rows + row
    let row = tr % K.rows;
    let rs = K.replicas * K.s;
    var y = 0.0;
    for (var c = 0u; c < K.replicas; c = c + 1u) {
        y = y + h[tr * rs + c * K.s + j];
    }
    y = y / f32(K.replicas);
    let c0 = 1.0 / sqrt(f32(K.s));
    let half = 0.5 * norms[row];
    var a = 0.0;
    var b = 0.0;
    switch K.map {
        case 0u: {
            a = c0 * cos(y);
            b = c0 * sin(y);
        }
        case 1u: {
            a = select(0.0, c0 * SQRT2, y > 0.0);
        }
        case 2u: {
            a = c0 * SQRT2 * max(y, 0.0);
        }
        case 3u: {
            let c2 = c0 / SQRT2;
            a = c2 * exp(y - half);
            b = c2 * exp(-y - half);
        }
        case 4u: {
            let e = c0 * exp(half);
            a = e * sin(y);
            b = e * cos(y);
        }
        default: {
            a = c0 * exp(-half) * max(y, 0.0);
        }
    }
    let o = tr * K.width;
    phi[o + j] = a;
    if (K.width == 2u * K.s) {
        phi[o + K.s + j] = b;
    }
}
