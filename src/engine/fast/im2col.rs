//! Fast CPU `im2col` (the twin is src/engine/cpu/im2col.rs): the same unfolding, as nested loops
//! over (image, output pixel, channel, kernel row) that copy whole kernel rows, with no division
//! per element; NHWC input, or NCHW for the model's own input (`in_nchw`). A gather of f32
//! values, so the result equals the twin's bit for bit.

use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;

pub fn im2col(p: &StageParams, x: &[f32], cols: &mut [f32], threads: usize) {
    let c = &p.conv;
    let (in_c, in_h, in_w) = (c.in_c as usize, c.in_h as isize, c.in_w as usize);
    let (k_h, k_w, samples) = (c.k_h as usize, c.k_w as usize, c.samples as usize);
    let (out_h, out_w) = (c.out_h as usize, c.out_w as usize);
    let kk = in_c * k_h * k_w;
    let image_len = in_h as usize * in_w * in_c;
    let per = samples * out_h * out_w * kk;
    par_trials(threads, p.layer.trials as usize, cols, per, |first, n, out| {
        for (s_local, dst_image) in out[..n * per].chunks_mut(out_h * out_w * kk).enumerate() {
            let image = &x[(first * samples + s_local) * image_len..][..image_len];
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let v = &mut dst_image[(oy * out_w + ox) * kk..][..kk];
                    let x0 = (ox * c.stride_w as usize) as isize - c.pad_w as isize;
                    for ch in 0..in_c {
                        for i in 0..k_h {
                            let iy = (oy * c.stride_h as usize + i) as isize - c.pad_h as isize;
                            let row = &mut v[(ch * k_h + i) * k_w..][..k_w];
                            if iy < 0 || iy >= in_h {
                                row.fill(0.0);
                                continue;
                            }
                            // Image row iy of channel ch: pixel ix at base + ix · step.
                            let (base, step) =
                                if c.in_nchw != 0 { ((ch * in_h as usize + iy as usize) * in_w, 1) } else { (iy as usize * in_w * in_c + ch, in_c) };
                            for (j, o) in row.iter_mut().enumerate() {
                                let ix = x0 + j as isize;
                                *o = if ix >= 0 && (ix as usize) < in_w { image[base + ix as usize * step] } else { 0.0 };
                            }
                        }
                    }
                }
            }
        }
    });
}
