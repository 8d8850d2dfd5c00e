//! CPU twin of shaders/residual.wgsl: x = activate(x + y) over rows · width_in values (the
//! transformer's residual add, activation none; a residual network's shortcut, He et al. 2016),
//! or, into a convolution's NHWC maps with `conv.add_stride` ≥ 1, He et al.'s zero-padding
//! shortcut: pixel (h, w), channel c adds y's pixel (h·s, w·s), channel c − add_before, or 0.

use super::common::activate;
use crate::engine::layout::StageParams;

pub fn residual(p: &StageParams, y: &[f32], x: &mut [f32]) {
    let n = p.seq.rows as usize * p.seq.width_in as usize;
    let c = &p.conv;
    if c.add_stride == 0 {
        for (a, b) in x[..n].iter_mut().zip(&y[..n]) {
            *a = activate(p.layer.activation, *a + *b);
        }
        return;
    }
    let (width, s) = (p.seq.width_in as usize, c.add_stride as usize);
    let (out_h, out_w) = (c.out_h as usize, c.out_w as usize);
    let (add_c, add_h, add_w, before) = (c.add_c as usize, c.add_h as usize, c.add_w as usize, c.add_before as usize);
    for (pix, row) in x[..n].chunks_exact_mut(width).enumerate() {
        let (ow, oh, img) = (pix % out_w, (pix / out_w) % out_h, pix / (out_w * out_h));
        let src = &y[((img * add_h + oh * s) * add_w + ow * s) * add_c..][..add_c];
        for (ch, a) in row.iter_mut().enumerate() {
            let add = if ch >= before && ch - before < add_c { src[ch - before] } else { 0.0 };
            *a = activate(p.layer.activation, *a + add);
        }
    }
}
