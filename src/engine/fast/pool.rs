//! Fast CPU `pool` (the twin is src/engine/cpu/pool.rs): the same max or average pooling of a
//! convolution layer's NHWC outputs, as nested loops over (image, pooled row, pooled column) with
//! the channels innermost and contiguous, so no division per element. Each output visits its
//! window in the twin's order (a, b) with the twin's comparisons and sums, so the result equals the
//! twin's bit for bit.

use crate::engine::cpu::common::par_trials;
use crate::engine::layout::StageParams;

pub fn pool(p: &StageParams, h: &[f32], hp: &mut [f32], threads: usize) {
    let c = &p.conv;
    let nc = p.layer.n_out as usize;
    let (ow, pw, ph) = (c.out_w as usize, c.pool_w as usize, c.pool_h as usize);
    let (oh, size, stride) = (c.out_h as usize, c.pool_size as usize, c.pool_stride as usize);
    let (size_w, stride_w) = (c.pool_kw as usize, c.pool_sw as usize);
    let (pad_h, pad_w) = (c.pool_pad_h as usize, c.pool_pad_w as usize);
    let samples = c.samples as usize;
    let per = samples * ph * pw * nc;
    let (image_in, image_out) = (oh * ow * nc, ph * pw * nc);
    let is_max = c.pool_kind == 1;
    let (avg, count_pad) = (c.pool_kind == 2, c.pool_count_pad == 1);
    par_trials(threads, p.layer.trials as usize, hp, per, |first, n, out| {
        for (il, dst) in out[..n * per].chunks_mut(image_out).enumerate() {
            let src = &h[(first * samples + il) * image_in..][..image_in];
            for py in 0..ph {
                for px in 0..pw {
                    let o = &mut dst[(py * pw + px) * nc..][..nc];
                    // The twin's sum starts at +0.0 (so a window of -0.0 sums to +0.0).
                    o.fill(0.0);
                    // The window's rows and columns inside the map (the padding skipped).
                    let ys = (py * stride).max(pad_h)..(py * stride + size).min(oh + pad_h);
                    let xs = (px * stride_w).max(pad_w)..(px * stride_w + size_w).min(ow + pad_w);
                    let inside = ys.len() * xs.len();
                    for y in ys.clone() {
                        for x in xs.clone() {
                            let row = &src[((y - pad_h) * ow + x - pad_w) * nc..][..nc];
                            if is_max && y == ys.start && x == xs.start {
                                o.copy_from_slice(row);
                            } else if is_max {
                                for (acc, &val) in o.iter_mut().zip(row) {
                                    if val > *acc {
                                        *acc = val;
                                    }
                                }
                            } else {
                                for (acc, &val) in o.iter_mut().zip(row) {
                                    *acc += val;
                                }
                            }
                        }
                    }
                    if avg {
                        let d = (if count_pad { size * size_w } else { inside }) as f32;
                        for acc in o.iter_mut() {
                            *acc /= d;
                        }
                    }
                }
            }
        }
    });
}
