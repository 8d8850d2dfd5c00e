// Stage `pool`: the digital pooling after a convolution layer's activation (PyTorch
// `MaxPool2d` / `AvgPool2d` with kernel_size = (pool_size, pool_kw), stride = (pool_stride,
// pool_sw), no padding, floor mode; a Conv1d's `MaxPool1d` is 1 × k). Input `h`: the layer's NHWC outputs [trial][sample][out_h][out_w][c]; output
// `hp`: [trial][sample][pool_h][pool_w][c], c = the layer's output channels. Max takes the
// first maximum in window order; average sums in window order and divides by the window size.
// One invocation = one element of `hp`. CPU twin: src/engine/cpu/pool.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read_write> hp: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let C = P.conv;
    let nc = P.layer.n_out;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials * C.samples * C.pool_h * C.pool_w * nc) {
        return;
    }
    let c = i % nc;
    let v = i / nc;
    let px = v % C.pool_w;
    let py = (v / C.pool_w) % C.pool_h;
    let image = v / (C.pool_w * C.pool_h);
    var acc = 0.0;
    for (var a = 0u; a < C.pool_size; a = a + 1u) {
        for (var b = 0u; b < C.pool_kw; b = b + 1u) {
            let val = h[((image * C.out_h + py * C.pool_stride + a) * C.out_w + px * C.pool_sw + b) * nc + c];
            if (C.pool_kind == 1u) {
                if ((a == 0u && b == 0u) || val > acc) {
                    acc = val;
                }
            } else {
                acc = acc + val;
            }
        }
    }
    if (C.pool_kind == 2u) {
        acc = acc / f32(C.pool_size * C.pool_kw);
    }
    hp[i] = acc;
}
