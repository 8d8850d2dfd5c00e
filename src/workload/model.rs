//! The network a classifier (and the single-matrix workloads) runs: PyTorch's `nn.Sequential` of
//! Linear and Conv2d layers with digital activations and pooling between them. Conv2d is mapped as
//! aihwkit's `AnalogConv2d`: the unfolded kernel × in-channels are the crossbar rows, out-channels
//! its columns, one MVM per output pixel. Also the f64 forward pass, the floating-point reference
//! of every noisy run.

use super::io::{Dataset, Linear};
use super::WorkloadError;
use crate::crossbar::{MappedMatrix, Scaling, TileShape};
use crate::engine::layout::ConvParams;
use crate::engine::plan::AnalogLayer;

/// Digital activation between analog layers (the last layer has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    None,
    Relu,
    /// GELU by its tanh approximation (PyTorch `nn.GELU(approximate='tanh')`).
    Gelu,
    Tanh,
    /// GELU by the error function, x·Φ(x) (PyTorch's default `nn.GELU()`, BERT's "gelu").
    GeluExact,
    /// SiLU (swish), x·σ(x) (PyTorch `nn.SiLU()`).
    Silu,
}

impl Activation {
    pub fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
            Activation::Tanh => 3,
            Activation::GeluExact => 4,
            Activation::Silu => 5,
        }
    }

    pub fn apply(self, v: f64) -> f64 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Gelu => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
            Activation::Tanh => v.tanh(),
            Activation::GeluExact => 0.5 * v * (1.0 + statrs::function::erf::erf(v / std::f64::consts::SQRT_2)),
            Activation::Silu => v / (1.0 + (-v).exp()),
        }
    }
}

/// The activation after each of `n` layers: `act` after every layer but the last (an
/// `nn.Sequential` of Linear layers with one activation between them).
pub fn between(n: usize, act: Activation) -> Vec<Activation> {
    (0..n).map(|i| if i + 1 < n { act } else { Activation::None }).collect()
}

/// Pooling after a convolution's activation (PyTorch `MaxPool2d` / `AvgPool2d`, floor mode; the
/// implicit padding of torchvision's ResNet stem, `MaxPool2d(3, 2, padding=1)`); it runs
/// digitally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Pool2d {
    pub kind: PoolKind,
    /// The window's height (and width, unless `size_w`).
    pub size: usize,
    /// The stride down the rows (and across, unless `stride_w`).
    pub stride: usize,
    /// A window width other than its height: a Conv1d's map is one row, pooled 1 × k.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_w: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stride_w: Option<usize>,
    /// Implicit padding down and across (PyTorch's `padding`): max pooling skips it (−∞),
    /// average pooling counts it as zeros.
    #[serde(skip_serializing_if = "is_zero_pair")]
    pub padding: [usize; 2],
    /// Average pooling divides by the window's elements inside the map, not by the whole window
    /// (PyTorch's `count_include_pad=False`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exclude_pad: bool,
}

fn is_zero_pair(p: &[usize; 2]) -> bool {
    *p == [0, 0]
}

impl Pool2d {
    /// The window's width.
    pub fn kw(&self) -> usize {
        self.size_w.unwrap_or(self.size)
    }

    /// The stride across the columns.
    pub fn sw(&self) -> usize {
        self.stride_w.unwrap_or(self.stride)
    }
}

/// A Conv2d layer's geometry, in PyTorch's terms (NCHW images, zero padding, no dilation or
/// groups); the image size comes from the layer before it or `[model] input_shape`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Conv2d {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub pool: Option<Pool2d>,
}

impl Conv2d {
    /// Output pixels (before pooling): ⌊(H + 2p − k) / s⌋ + 1 per dimension.
    pub fn out_hw(&self) -> (usize, usize) {
        ((self.in_h + 2 * self.padding[0] - self.k_h) / self.stride[0] + 1, (self.in_w + 2 * self.padding[1] - self.k_w) / self.stride[1] + 1)
    }

    /// The image it hands on, after pooling: (H, W).
    pub fn pooled_hw(&self) -> (usize, usize) {
        let (h, w) = self.out_hw();
        self.pool.map_or((h, w), |p| ((h + 2 * p.padding[0] - p.size) / p.stride + 1, (w + 2 * p.padding[1] - p.kw()) / p.sw() + 1))
    }

    /// The engine's form (`im2col` and `pool`); `samples` is the plan's.
    pub fn params(&self) -> ConvParams {
        let (out_h, out_w) = self.out_hw();
        let (pool_h, pool_w) = self.pooled_hw();
        ConvParams {
            in_c: self.in_c as u32,
            in_h: self.in_h as u32,
            in_w: self.in_w as u32,
            k_h: self.k_h as u32,
            k_w: self.k_w as u32,
            stride_h: self.stride[0] as u32,
            stride_w: self.stride[1] as u32,
            pad_h: self.padding[0] as u32,
            pad_w: self.padding[1] as u32,
            out_h: out_h as u32,
            out_w: out_w as u32,
            pool_kind: match self.pool.map(|p| p.kind) {
                None => 0,
                Some(PoolKind::Max) => 1,
                Some(PoolKind::Avg) => 2,
            },
            pool_size: self.pool.map_or(0, |p| p.size as u32),
            pool_stride: self.pool.map_or(0, |p| p.stride as u32),
            pool_h: pool_h as u32,
            pool_w: pool_w as u32,
            pool_kw: self.pool.map_or(0, |p| p.kw() as u32),
            pool_sw: self.pool.map_or(0, |p| p.sw() as u32),
            pool_pad_h: self.pool.map_or(0, |p| p.padding[0] as u32),
            pool_pad_w: self.pool.map_or(0, |p| p.padding[1] as u32),
            pool_count_pad: self.pool.map_or(0, |p| u32::from(!p.exclude_pad)),
            ..ConvParams::default()
        }
    }
}

/// How one convolution is applied (`[model] layers` entries): stride, padding, pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSettings {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub pool: Option<Pool2d>,
}

impl Default for ConvSettings {
    fn default() -> Self {
        ConvSettings { stride: [1, 1], padding: [0, 0], pool: None }
    }
}

/// Gives every Conv2d layer its image size, stride, padding and pooling, walking the model from
/// `input` ([C, H, W] of one sample), and checks the chain: channels match, every kernel fits
/// its padded image, a Linear layer after a convolution takes its flattened C · H · W outputs,
/// and the model ends with a Linear layer. `settings[i]` belongs to layer i (default: stride 1,
/// no padding, no pooling, PyTorch's defaults).
pub fn set_geometry(layers: &mut [Linear], input: Option<[usize; 3]>, settings: &[ConvSettings]) -> Result<(), String> {
    // Each layer's output: [C, H, W] after pooling for a convolution, None for a Linear layer.
    let mut outs: Vec<Option<[usize; 3]>> = Vec::with_capacity(layers.len());
    if let Some([c, h, w]) = input.filter(|_| layers.first().is_some_and(|l| l.conv.is_none())) {
        if c * h * w != layers[0].weight.cols {
            return Err(format!(
                "model.input_shape = [{c}, {h}, {w}] is {} values but the first layer ({}) takes {}",
                c * h * w,
                layers[0].name,
                layers[0].weight.cols
            ));
        }
    }
    for i in 0..layers.len() {
        let shape = if i == 0 { input } else { outs[layers[i].links.input.unwrap_or(i - 1)] };
        let l = &mut layers[i];
        let set = settings.get(i).copied().unwrap_or_default();
        match &mut l.conv {
            Some(conv) => {
                let Some([c, h, w]) = shape else {
                    return Err(format!(
                        "layer {} is a Conv2d, so the image size must be known: set [model] input_shape = [C, H, W] (one sample, PyTorch's NCHW order)",
                        l.name
                    ));
                };
                if c != conv.in_c {
                    return Err(format!("layer {} is a Conv2d with {} input channels, but its input has {c} channels", l.name, conv.in_c));
                }
                if set.stride.contains(&0) {
                    return Err(format!("layer {}: stride must be at least 1", l.name));
                }
                *conv = Conv2d { in_h: h, in_w: w, stride: set.stride, padding: set.padding, pool: set.pool, ..*conv };
                if h + 2 * set.padding[0] < conv.k_h || w + 2 * set.padding[1] < conv.k_w {
                    return Err(format!(
                        "layer {}: its {}x{} kernel is larger than its {h}x{w} input padded by {:?}; check [model] input_shape, padding and pooling",
                        l.name, conv.k_h, conv.k_w, set.padding
                    ));
                }
                if let Some(p) = set.pool {
                    let (oh, ow) = conv.out_hw();
                    let [ph, pw] = p.padding;
                    if p.size == 0 || p.stride == 0 || p.kw() == 0 || p.sw() == 0 || p.size > oh + 2 * ph || p.kw() > ow + 2 * pw {
                        return Err(format!(
                            "layer {}: pooling {}x{} (stride {}x{}) does not fit its {oh}x{ow} output; use a window from 1x1 to {oh}x{ow}",
                            l.name,
                            p.size,
                            p.kw(),
                            p.stride,
                            p.sw()
                        ));
                    }
                    if 2 * ph > p.size || 2 * pw > p.kw() {
                        return Err(format!(
                            "layer {}: pooling padding {ph}x{pw} is more than half its {}x{} window; PyTorch allows at most half",
                            l.name,
                            p.size,
                            p.kw()
                        ));
                    }
                }
                let (ph, pw) = conv.pooled_hw();
                outs.push(Some([l.weight.rows, ph, pw]));
            }
            None => {
                if set != ConvSettings::default() {
                    return Err(format!("layer {} is a Linear layer: stride, padding and pool apply to Conv2d layers only", l.name));
                }
                if let Some([c, h, w]) = shape.filter(|_| i > 0) {
                    if c * h * w != l.weight.cols {
                        return Err(format!(
                            "layer {} takes {} inputs but the convolutions before it hand on {c} x {h} x {w} = {} values (Flatten); check the stride, padding, pooling and input_shape",
                            l.name,
                            l.weight.cols,
                            c * h * w
                        ));
                    }
                }
                outs.push(None);
            }
        }
    }
    check_shortcuts(layers, &outs)?;
    if let Some(l) = layers.last().filter(|l| l.conv.is_some()) {
        return Err(format!("the last layer ({}) is a Conv2d; the model must end with Flatten and a Linear layer (the class logits)", l.name));
    }
    Ok(())
}

/// Checks a residual network's additions (`add`: the same channels and image, or the same
/// width, as the layer's own output before pooling) and that every layer's output but the last is
/// read by a later layer; `outs` is each layer's pooled output shape (None: a Linear layer).
fn check_shortcuts(layers: &[Linear], outs: &[Option<[usize; 3]>]) -> Result<(), String> {
    let mut read = vec![false; layers.len()];
    for (i, l) in layers.iter().enumerate().skip(1) {
        read[l.links.input.unwrap_or(i - 1)] = true;
        let Some(j) = l.links.add else { continue };
        read[j] = true;
        let own = l.conv.map(|c| {
            let (h, w) = c.out_hw();
            [l.weight.rows, h, w]
        });
        let describe = |s: Option<[usize; 3]>, width: usize| match s {
            Some([c, h, w]) => format!("{c} x {h} x {w}"),
            None => format!("{width} values"),
        };
        let added = match (l.links.add_pad, outs[j]) {
            (None, maps) => maps,
            (Some(z), Some(maps)) if own.is_some() => Some(z.shape(maps)),
            (Some(_), _) => {
                return Err(format!(
                "layer {} has add_stride or add_pad_channels, which shape the maps one convolution adds to another's, but {} is a Linear layer; leave them out",
                l.name,
                if own.is_none() { &l.name } else { &layers[j].name }
            ))
            }
        };
        let same = match (own, added) {
            (None, None) => l.weight.rows == layers[j].weight.rows,
            (a, b) => a == b,
        };
        if !same {
            let pool = if l.conv.is_some_and(|c| c.pool.is_some()) { " before its pooling" } else { "" };
            let fix = match l.links.add_pad {
                Some(z) => format!(
                    "its zero-padding shortcut (stride {}, channels padded {} + {}) makes {} of them; give add_stride and add_pad_channels that give {}",
                    z.stride,
                    z.before,
                    z.after,
                    describe(added, 0),
                    describe(own, l.weight.rows)
                ),
                None => "a shortcut adds an output of the same shape: a 1x1 convolution with the block's stride in the shortcut, or a zero-padding shortcut (add_stride, add_pad_channels), matches them".to_string(),
            };
            return Err(format!(
                "layer {} adds the output of {} ({}) to its own{pool} ({}); {fix}",
                l.name,
                layers[j].name,
                describe(outs[j], layers[j].weight.rows),
                describe(own, l.weight.rows)
            ));
        }
    }
    if let Some(j) = read.iter().take(layers.len().saturating_sub(1)).position(|r| !r) {
        return Err(format!(
            "the output of layer {} is read by no later layer (neither the next, nor through input or add); only the last layer's output is the model's",
            layers[j].name
        ));
    }
    Ok(())
}

/// Maps every layer onto tiles; `acts[i]` follows layer i (see [`between`]). A Linear layer
/// after a convolution gets its columns permuted from PyTorch's flatten order (c, h, w) to the
/// engine's NHWC order (h, w, c), so it reads the pooled images as they lie in memory; a first
/// convolution reads the data set's NCHW rows as they are.
pub fn analog_layers(layers: &[Linear], acts: &[Activation], shape: TileShape, scaling: Scaling) -> Vec<AnalogLayer> {
    // Each layer's output image ([C, H, W] after pooling; None: a vector).
    let outs: Vec<Option<[usize; 3]>> = layers
        .iter()
        .map(|l| {
            l.conv.map(|c| {
                let (h, wd) = c.pooled_hw();
                [l.weight.rows, h, wd]
            })
        })
        .collect();
    layers
        .iter()
        .zip(acts)
        .enumerate()
        .map(|(i, (l, a))| {
            let w = &l.weight;
            let prev = if i == 0 { None } else { outs[l.links.input.unwrap_or(i - 1)] };
            let data = match (l.conv, prev) {
                (None, Some([c, h, wd])) => {
                    let mut d = vec![0.0f32; w.data.len()];
                    for o in 0..w.rows {
                        for (k, v) in d[o * w.cols..][..w.cols].iter_mut().enumerate() {
                            let (pix, ch) = (k / c, k % c);
                            *v = w.data[o * w.cols + ch * h * wd + pix];
                        }
                    }
                    d
                }
                _ => w.data.clone(),
            };
            let mut mapped = MappedMatrix::new(&data, w.rows as u32, w.cols as u32, shape, scaling);
            if !l.input_range.is_empty() {
                // Checked for every sweep point's tile shape when the experiment was read.
                mapped.set_input_ranges(&l.input_range, &format!("{}.input_range", l.name)).expect("input ranges checked by check_input_ranges");
            }
            AnalogLayer {
                mapped,
                bias: l.bias.clone(),
                activation: a.code(),
                // The first layer reads the data set's rows as PyTorch holds them (NCHW).
                conv: l.conv.map(|c| ConvParams { in_nchw: u32::from(i == 0), ..c.params() }),
                links: l.links,
                batchnorm: l.batchnorm.clone(),
            }
        })
        .collect()
}

/// Checks every layer's input ranges against a tile shape: one value, or one per input tile of
/// the layer (`tiles_in` = ⌈inputs / max_in⌉). A Linear layer after a convolution reads its
/// inputs in the engine's (h, w, c) order, so its input tiles hold other columns than PyTorch's
/// (c, h, w) split would: it takes one range only, unless it fits one tile.
pub fn check_input_ranges<L: std::borrow::Borrow<Linear>>(layers: &[L], shape: TileShape) -> Result<(), String> {
    for (i, l) in layers.iter().map(L::borrow).enumerate() {
        let after_conv = i > 0 && layers[l.links.input.unwrap_or(i - 1)].borrow().conv.is_some();
        let n = l.input_range.len();
        let tiles_in = (l.weight.cols as u32).div_ceil(shape.max_in) as usize;
        if n > 1 && n != tiles_in {
            return Err(format!(
                "{}.input_range has {n} values, but with {}x{} tiles the layer's {} inputs lie on {tiles_in} input tile(s): give one range for the layer or {tiles_in}",
                l.name, shape.max_in, shape.max_out, l.weight.cols
            ));
        }
        if n > 1 && after_conv && l.conv.is_none() {
            return Err(format!(
                "{}.input_range has {n} values, one per input tile, but the layer follows a convolution and aimc's tiles split its inputs in (h, w, c) order, not PyTorch's (c, h, w): give one range for the layer",
                l.name
            ));
        }
    }
    Ok(())
}

/// Checks that the data set fits the model: features = first layer inputs, labels < outputs.
pub fn check_shapes(layers: &[Linear], data: &Dataset) -> Result<(), WorkloadError> {
    let n_in = layers[0].inputs();
    if data.n_features != n_in {
        return Err(WorkloadError::Shape(format!(
            "the data set has {} features per row but the model's first layer ({}.weight) takes {n_in} inputs",
            data.n_features, layers[0].name
        )));
    }
    let n_out = layers.last().unwrap().weight.rows;
    if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= n_out) {
        return Err(WorkloadError::Shape(format!("the data set has label {bad} but the model has only {n_out} outputs (classes 0..{n_out})")));
    }
    Ok(())
}

/// One sample through the model in f64, as PyTorch computes it: NCHW images, direct
/// convolution with zero padding, a digital BatchNorm, a shortcut's output added before the
/// activation, pooling,
/// flatten in (c, h, w) order, every layer's inputs clipped to its input ranges (the noiseless
/// network as it was trained). The floating-point reference of every noisy run (and of the
/// engine's `im2col` mapping in tests).
pub fn forward_f64(layers: &[Linear], acts: &[Activation], x: &[f32]) -> Vec<f64> {
    let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    // Every layer's output, kept while a later layer may read or add it.
    let mut outs: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let h = if i == 0 { &x } else { &outs[l.links.input.unwrap_or(i - 1)] };
        let mut y = pre_activation(l, h);
        if let Some(bn) = &l.batchnorm {
            // Per output channel: CHW for a convolution, one value per channel for a Linear layer.
            let per = y.len() / l.weight.rows;
            for (k, v) in y.iter_mut().enumerate() {
                let c = k / per;
                *v = bn[c] as f64 * *v + bn[l.weight.rows + c] as f64;
            }
        }
        if let Some(j) = l.links.add {
            match (l.links.add_pad, l.conv, layers[j].conv) {
                (Some(z), Some(c), Some(src)) => {
                    // He et al.'s zero-padding shortcut on CHW maps: channel ch reads the added
                    // map's channel ch − before at every stride-th row and column, or adds 0.
                    let (oh, ow) = c.out_hw();
                    let (sh, sw) = src.pooled_hw();
                    let sc = layers[j].weight.rows;
                    for ch in z.before..z.before + sc {
                        for (yy, xx) in (0..oh).flat_map(|yy| (0..ow).map(move |xx| (yy, xx))) {
                            y[(ch * oh + yy) * ow + xx] += outs[j][((ch - z.before) * sh + yy * z.stride) * sw + xx * z.stride];
                        }
                    }
                }
                _ => y.iter_mut().zip(&outs[j]).for_each(|(a, b)| *a += b),
            }
        }
        y.iter_mut().for_each(|v| *v = acts[i].apply(*v));
        let y = match l.conv.and_then(|c| c.pool.map(|p| (c, p))) {
            None => y,
            Some((c, p)) => pool_f64(&y, l.weight.rows, c, p),
        };
        outs.push(y);
    }
    outs.pop().unwrap_or_default()
}

/// A layer's W x + b on its input `h` (C · H · W for a convolution, CHW order), inputs clipped
/// to its ranges; a convolution's outputs in CHW order.
fn pre_activation(l: &Linear, h: &[f64]) -> Vec<f64> {
    let w = &l.weight;
    let Some(c) = l.conv else {
        let h: Vec<f64> = h.iter().enumerate().map(|(k, &v)| l.clip_input(k, v)).collect();
        return (0..w.rows).map(|o| (0..w.cols).map(|k| w.data[o * w.cols + k] as f64 * h[k]).sum::<f64>() + l.bias[o] as f64).collect();
    };
    let (oh, ow) = c.out_hw();
    let mut y = vec![0.0f64; w.rows * oh * ow];
    for o in 0..w.rows {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = l.bias[o] as f64;
                for ch in 0..c.in_c {
                    for ki in 0..c.k_h {
                        for kj in 0..c.k_w {
                            let iy = (oy * c.stride[0] + ki) as isize - c.padding[0] as isize;
                            let ix = (ox * c.stride[1] + kj) as isize - c.padding[1] as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < c.in_h && (ix as usize) < c.in_w {
                                let col = (ch * c.k_h + ki) * c.k_w + kj;
                                let wv = w.data[o * w.cols + col] as f64;
                                acc += wv * l.clip_input(col, h[(ch * c.in_h + iy as usize) * c.in_w + ix as usize]);
                            }
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = acc;
            }
        }
    }
    y
}

/// A convolution's pooling on its `channels` activated maps (CHW order).
fn pool_f64(y: &[f64], channels: usize, c: Conv2d, p: Pool2d) -> Vec<f64> {
    let (oh, ow) = c.out_hw();
    let (ph, pw) = c.pooled_hw();
    let kw = p.kw();
    let mut z = vec![0.0f64; channels * ph * pw];
    for o in 0..channels {
        for py in 0..ph {
            for px in 0..pw {
                // The window in padded coordinates; PyTorch pads max pooling with −∞ and average
                // pooling with zeros.
                let (top, left) = ((py * p.stride) as isize - p.padding[0] as isize, (px * p.sw()) as isize - p.padding[1] as isize);
                let win: Vec<f64> = (0..p.size * kw)
                    .map(|k| (top + (k / kw) as isize, left + (k % kw) as isize))
                    .filter(|&(r, q)| r >= 0 && q >= 0 && (r as usize) < oh && (q as usize) < ow)
                    .map(|(r, q)| y[(o * oh + r as usize) * ow + q as usize])
                    .collect();
                let divisor = if p.exclude_pad { win.len() } else { p.size * kw };
                z[(o * ph + py) * pw + px] = match p.kind {
                    PoolKind::Max => win.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    PoolKind::Avg => win.iter().sum::<f64>() / divisor as f64,
                };
            }
        }
    }
    z
}

/// Floating-point (f64) accuracy of the model: the baseline every noisy run is compared with.
pub fn fp_accuracy(layers: &[Linear], acts: &[Activation], data: &Dataset) -> (u64, u64) {
    let mut correct = 0u64;
    for s in 0..data.len() {
        let h = forward_f64(layers, acts, &data.x[s * data.n_features..(s + 1) * data.n_features]);
        let pred = h.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
        correct += u64::from(pred as u32 == data.labels[s]);
    }
    (correct, data.len() as u64)
}
