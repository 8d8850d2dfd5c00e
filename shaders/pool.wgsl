// Stage `pool`: the digital pooling after a convolution layer's activation (PyTorch
// `MaxPool2d` / `AvgPool2d` with kernel_size = (pool_size, pool_kw), stride = (pool_stride,
// pool_sw), padding = (pool_pad_h, pool_pad_w), floor mode; a Conv1d's `MaxPool1d` is 1 × k).
// Input `h`: the layer's NHWC outputs [trial][sample][out_h][out_w][c]; output
// `hp`: [trial][sample][pool_h][pool_w][c], c = the layer's output channels. Max takes the
// first maximum in window order over the window's elements inside the image (PyTorch pads
// with −∞); average sums them in window order and divides by the window size (padding counted
// as zeros, `count_include_pad`) or by their number.
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
    var inside = 0u;
    for (var a = 0u; a < C.pool_size; a = a + 1u) {
        // Padded coordinates: row y − pool_pad_h of the map, skipped outside it.
        let y = py * C.pool_stride + a;
        if (y < C.pool_pad_h || y - C.pool_pad_h >= C.out_h) {
            continue;
        }
        for (var b = 0u; b < C.pool_kw; b = b + 1u) {
            let x = px * C.pool_sw + b;
            if (x < C.pool_pad_w || x - C.pool_pad_w >= C.out_w) {
                continue;
            }
            let val = h[((image * C.out_h + y - C.pool_pad_h) * C.out_w + x - C.pool_pad_w) * nc + c];
            if (C.pool_kind == 1u) {
                if (inside == 0u || val > acc) {
                    acc = val;
                }
            } else {
                acc = acc + val;
            }
            inside = inside + 1u;
        }
    }
    if (C.pool_kind == 2u) {
        acc = acc / f32(select(inside, C.pool_size * C.pool_kw, C.pool_count_pad == 1u));
    }
    hp[i] = acc;
}
