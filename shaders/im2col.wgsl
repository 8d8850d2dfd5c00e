// Stage `im2col`: unfolds a convolution layer's input images into the vectors its crossbar
// tiles multiply (aihwkit's `AnalogConv2d` mapping: one vector per output pixel, kernel ×
// in-channels long, columns ordered (c, i, j) as PyTorch's `weight.view(out_c, -1)`), so the
// layer then runs as a Linear one with samples · out_h · out_w vectors per trial.
// Input `x`: NHWC images [trial][sample][in_h][in_w][in_c] (one trial when shared by all), or
// with in_nchw the model's input as PyTorch holds it, [sample][in_c][in_h][in_w];
// output `cols`: [trial][sample][out_h][out_w][in_c · k_h · k_w]; zero padding outside the image.
// One invocation = one element of `cols`. CPU twin: src/engine/cpu/im2col.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let C = P.conv;
    let kk = C.in_c * C.k_h * C.k_w;
    let patches = C.out_h * C.out_w;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= P.layer.trials * C.samples * patches * kk) {
        return;
    }
    let k = i % kk;
    let v = i / kk;                   // (trial_local · samples + sample) · patches + pix
    let pix = v % patches;
    let image = v / patches;          // trial_local · samples + sample
    let oy = pix / C.out_w;
    let ox = pix % C.out_w;
    let c = k / (C.k_h * C.k_w);
    let r = k % (C.k_h * C.k_w);
    let iy = i32(oy * C.stride_h + r / C.k_w) - i32(C.pad_h);
    let ix = i32(ox * C.stride_w + r % C.k_w) - i32(C.pad_w);
    var val = 0.0;
    if (iy >= 0 && iy < i32(C.in_h) && ix >= 0 && ix < i32(C.in_w)) {
        if (C.in_nchw != 0u) {
            val = x[((image * C.in_c + c) * C.in_h + u32(iy)) * C.in_w + u32(ix)];
        } else {
            val = x[((image * C.in_h + u32(iy)) * C.in_w + u32(ix)) * C.in_c + c];
        }
    }
    cols[i] = val;
}
