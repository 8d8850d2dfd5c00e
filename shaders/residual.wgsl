// Stage `residual`: a residual addition, x = activate(x + y), element by element over
// rows · width_in values: the transformer's (no activation) and a residual network's shortcut
// (He et al. 2016, relu(F(x) + x)). Into a convolution's NHWC maps with `conv.add_stride` ≥ 1,
// y is He et al.'s zero-padding shortcut (their option A, as CIFAR ResNets write it,
// `F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, before, after))`): output pixel (h, w), channel c adds
// the added map's pixel (h·s, w·s), channel c − add_before, and 0 for a channel outside
// [add_before, add_before + add_c). One invocation = one value. CPU twin:
// src/engine/cpu/residual.rs.

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
    let C = P.conv;
    var add = 0.0;
    if (C.add_stride == 0u) {
        add = y[i];
    } else {
        // rows are (trial, sample, h, w) pixels of width_in channels.
        let c = i % P.seq.width_in;
        let pix = i / P.seq.width_in;
        let ow = pix % C.out_w;
        let oh = (pix / C.out_w) % C.out_h;
        let img = pix / (C.out_w * C.out_h);
        if (c >= C.add_before && c - C.add_before < C.add_c) {
            add = y[((img * C.add_h + oh * C.add_stride) * C.add_w + ow * C.add_stride) * C.add_c + c - C.add_before];
        }
    }
    x[i] = activate(P.layer.activation, x[i] + add);
}
