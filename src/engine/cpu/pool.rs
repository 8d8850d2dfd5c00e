//! CPU twin of shaders/pool.wgsl: digital max or average pooling of a convolution layer's NHWC
//! outputs, with PyTorch's implicit padding (skipped by max, zeros to average). Invocation index
//! i = ((trial_local · samples + sample) · pool_h + py) · pool_w · c + px · c + channel.

use super::common::par_trials;
use crate::engine::layout::StageParams;

pub fn pool(p: &StageParams, h: &[f32], hp: &mut [f32], threads: usize) {
    let c = &p.conv;
    let nc = p.layer.n_out as usize;
    let (ow, pw, ph) = (c.out_w as usize, c.pool_w as usize, c.pool_h as usize);
    let (oh, size, stride) = (c.out_h as usize, c.pool_size as usize, c.pool_stride as usize);
    let (size_w, stride_w) = (c.pool_kw as usize, c.pool_sw as usize);
    let (pad_h, pad_w) = (c.pool_pad_h as usize, c.pool_pad_w as usize);
    let per = c.samples as usize * ph * pw * nc;
    par_trials(threads, p.layer.trials as usize, hp, per, |first, n, out| {
        for (il, o) in out[..n * per].iter_mut().enumerate() {
            let i = first * per + il;
            let ch = i % nc;
            let v = i / nc;
            let px = v % pw;
            let py = (v / pw) % ph;
            let image = v / (pw * ph);
            let mut acc = 0.0f32;
            let mut inside = 0usize;
            for a in 0..size {
                // Padded coordinates: row y − pad_h of the map, skipped outside it.
                let y = py * stride + a;
                if y < pad_h || y - pad_h >= oh {
                    continue;
                }
                for b in 0..size_w {
                    let x = px * stride_w + b;
                    if x < pad_w || x - pad_w >= ow {
                        continue;
                    }
                    let val = h[((image * oh + y - pad_h) * ow + x - pad_w) * nc + ch];
                    if c.pool_kind == 1 {
                        if inside == 0 || val > acc {
                            acc = val;
                        }
                    } else {
                        acc += val;
                    }
                    inside += 1;
                }
            }
            if c.pool_kind == 2 {
                acc /= (if c.pool_count_pad == 1 { size * size_w } else { inside }) as f32;
            }
            *o = acc;
        }
    });
}
