//! Fast CPU `im2col` (the twin is src/engine/cpu/im2col.rs): the same unfolding as one gather per
//! unfolded value through a table of source offsets, built once per dispatch for every image
//! (the geometry is the same for all): NHWC input, or NCHW for the model's own input
//! (`in_nchw`), padding as zeros. A gather of f32 values, so the result equals the twin's bit for
//! bit.

use crate::engine::cpu::common::par_trials;
use crate::engine::layout::{ConvParams, StageParams};

/// The table's mark of a padded position (a zero in the unfolded patch).
const PAD: u32 = u32::MAX;

pub fn im2col(p: &StageParams, x: &[f32], cols: &mut [f32], threads: usize) {
    let c = &p.conv;
    let (samples, image_len) = (c.samples as usize, (c.in_c * c.in_h * c.in_w) as usize);
    let per_image = (c.out_h * c.out_w * c.in_c * c.k_h * c.k_w) as usize;
    let table = offsets(c);
    par_trials(threads, p.layer.trials as usize, cols, samples * per_image, |first, n, out| {
        for (s_local, dst_image) in out[..n * samples * per_image].chunks_mut(per_image).enumerate() {
            let image = &x[(first * samples + s_local) * image_len..][..image_len];
            for (o, &s) in dst_image.iter_mut().zip(&table) {
                *o = if s == PAD { 0.0 } else { image[s as usize] };
            }
        }
    });
}

/// For every unfolded value of one image, in the twin's order (output pixel, then channel,
/// kernel row, kernel column), its offset in the image, or `PAD`.
fn offsets(c: &ConvParams) -> Vec<u32> {
    let (in_c, in_h, in_w) = (c.in_c as usize, c.in_h as isize, c.in_w as isize);
    let (k_h, k_w) = (c.k_h as usize, c.k_w as usize);
    let mut table = Vec::with_capacity((c.out_h * c.out_w) as usize * in_c * k_h * k_w);
    for oy in 0..c.out_h as isize {
        for ox in 0..c.out_w as isize {
            for ch in 0..in_c {
                for i in 0..k_h {
                    let iy = oy * c.stride_h as isize + i as isize - c.pad_h as isize;
                    for j in 0..k_w {
                        let ix = ox * c.stride_w as isize + j as isize - c.pad_w as isize;
                        if iy < 0 || iy >= in_h || ix < 0 || ix >= in_w {
                            table.push(PAD);
                            continue;
                        }
                        let (iy, ix, w) = (iy as usize, ix as usize, in_w as usize);
                        let at = if c.in_nchw != 0 { (ch * in_h as usize + iy) * w + ix } else { (iy * w + ix) * in_c + ch };
                        table.push(at as u32);
                    }
                }
            }
        }
    }
    table
}
