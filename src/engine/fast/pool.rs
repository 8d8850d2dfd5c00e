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
    let samples = c.samples as usize;
    let per = samples * ph * pw * nc;
    let (image_in, image_out) = (oh * ow * nc, ph * pw * nc);
    let is_max = c.pool_kind == 1;
    let avg_divisor = (c.pool_kind == 2).then_some((size * size_w) as f32);
    par_trials(threads, p.layer.trials as usize, hp, per, |first, n, out| {
        for (il, dst) in out[..n * per].chunks_mut(image_out).enumerate() {
            let src = &h[(first * samples + il) * image_in..][..image_in];
            for py in 0..ph {
                for px in 0..pw {
                    let o = &mut dst[(py * pw + px) * nc..][..nc];
                    // The twin's sum starts at +0.0 (so a window of -0.0 sums to +0.0).
                    o.fill(0.0);
                    for a in 0..size {
                        for b in 0..size_w {
                            let row = &src[((py * stride + a) * ow + px * stride_w + b) * nc..][..nc];
                            if is_max && a == 0 && b == 0 {
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
                    if let Some(d) = avg_divisor {
                        for acc in o.iter_mut() {
                            *acc /= d;
                        }
                    }
                }
            }
        }
    });
}
