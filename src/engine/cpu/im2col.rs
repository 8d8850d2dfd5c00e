//! CPU twin of shaders/im2col.wgsl: a convolution layer's input images unfolded into one
//! vector per output pixel, columns ordered (c, i, j) as PyTorch's `weight.view(out_c, -1)`;
//! NHWC input, or NCHW for the model's own input (`in_nchw`).
//! Invocation index i = ((trial_local · samples + sample) · patches + patch) · kk + k.

use super::common::par_trials;
use crate::engine::layout::StageParams;

pub fn im2col(p: &StageParams, x: &[f32], cols: &mut [f32], threads: usize) {
    let c = &p.conv;
    let kk = (c.in_c * c.k_h * c.k_w) as usize;
    let patches = (c.out_h * c.out_w) as usize;
    let per = c.samples as usize * patches * kk;
    par_trials(threads, p.layer.trials as usize, cols, per, |first, n, out| {
        for (il, o) in out[..n * per].iter_mut().enumerate() {
            let i = first * per + il;
            let k = i % kk;
            let v = i / kk;
            let patch = v % patches;
            let image = v / patches;
            let (oy, ox) = ((patch / c.out_w as usize) as u32, (patch % c.out_w as usize) as u32);
            let ch = (k / (c.k_h * c.k_w) as usize) as u32;
            let r = (k % (c.k_h * c.k_w) as usize) as u32;
            let iy = (oy * c.stride_h + r / c.k_w) as i32 - c.pad_h as i32;
            let ix = (ox * c.stride_w + r % c.k_w) as i32 - c.pad_w as i32;
            *o = if iy >= 0 && iy < c.in_h as i32 && ix >= 0 && ix < c.in_w as i32 {
                let (iy, ix, ch) = (iy as usize, ix as usize, ch as usize);
                if c.in_nchw != 0 {
                    x[((image * c.in_c as usize + ch) * c.in_h as usize + iy) * c.in_w as usize + ix]
                } else {
                    x[((image * c.in_h as usize + iy) * c.in_w as usize + ix) * c.in_c as usize + ch]
                }
            } else {
                0.0
            };
        }
    });
}
