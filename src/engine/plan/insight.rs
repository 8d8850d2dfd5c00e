//! The per-layer insight plan: each layer's error against its noise-free reference, read after
//! `combine` through a [`LayerHook`].

use super::*;

/// One layer's buffers right after `combine`, for [`LayerHook`]s.
#[derive(Clone, Copy)]
pub struct LayerBufs {
    pub layer: usize,
    /// The layer's input: `[batch][n_in]` shared by all trials (layer 0), else `[trial][batch][n_in]`.
    pub input: Buf,
    /// Its outputs after the activation, `[trial][batch][n_out]`.
    pub output: Buf,
    /// The ADC outputs of every input tile, `[trial][tile_in][batch][n_out]` (clamped to the bound).
    pub y: Buf,
    /// Per (trial, sample, tile) vector: the bound-management level `bound` ended at.
    pub bm_level: Buf,
}

/// Called after every layer of every time of every chunk (with the layer's params and the time
/// index): inspection plans read the layer's buffers here.
pub type LayerHook<'a> = dyn FnMut(&mut dyn Backend, LayerBufs, &StageParams, usize) -> Result<(), EngineError> + 'a;

/// What one layer's MVMs did in one trial at one time (see [`run_layer_insight`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerTrial {
    /// Σ (h − h_ref)² and Σ h_ref² over the batch, where h is the layer's output and h_ref =
    /// act(W x + b) in f64 on the layer's actual (noisy) input x: the error this layer adds
    /// (for a layer that adds a shortcut, W x + b before the addition and the activation).
    pub sq_err: f64,
    pub sq_ref: f64,
    /// (sample, tile) MVMs, and those bound management redid with a reduced input (their ADC
    /// saturated at the full input scale).
    pub vectors: u64,
    pub bm_repeated: u64,
    /// ADC conversions (outputs of every input tile), and those at the rail (clipped) in the
    /// final result.
    pub conversions: u64,
    pub clipped: u64,
}

impl std::ops::AddAssign for LayerTrial {
    /// Sums over sample batches of one trial.
    fn add_assign(&mut self, o: LayerTrial) {
        self.sq_err += o.sq_err;
        self.sq_ref += o.sq_ref;
        self.vectors += o.vectors;
        self.bm_repeated += o.bm_repeated;
        self.conversions += o.conversions;
        self.clipped += o.clipped;
    }
}

/// Per time, per layer, per trial: [`LayerTrial`]. Every layer's input and output come back to
/// the host, so this is meant for a few trials (a classifier's `layer_insight_trials`); the
/// trials, their device states and noise are those of [`run_classifier`] with the same config.
/// Large data sets run in [`sample_batch`]es, whose sums add up to the whole set's.
pub fn run_layer_insight(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
) -> Result<Vec<Vec<Vec<LayerTrial>>>, EngineError> {
    let per = sample_batch(be, layers, batch);
    run_layer_insight_batches(be, layers, x, batch, cfg, per)
}

/// As [`run_layer_insight`] with `per` samples per batch.
pub fn run_layer_insight_batches(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
    per: u32,
) -> Result<Vec<Vec<Vec<LayerTrial>>>, EngineError> {
    if per >= batch {
        return insight_batch(be, layers, x, batch, 0, cfg);
    }
    let width = layers.first().map_or(0, |l| l.inputs_per_sample()) as usize;
    let mut out: Option<Vec<Vec<Vec<LayerTrial>>>> = None;
    for s0 in (0..batch).step_by(per as usize) {
        let len = per.min(batch - s0);
        let got = insight_batch(be, layers, &x[s0 as usize * width..(s0 + len) as usize * width], len, s0, cfg)?;
        match out.as_mut() {
            None => out = Some(got),
            Some(o) => {
                for (a, b) in o.iter_mut().flatten().flatten().zip(got.iter().flatten().flatten()) {
                    *a += *b;
                }
            }
        }
    }
    Ok(out.unwrap_or_default())
}

/// [`run_layer_insight`] on one sample batch (the first at global sample `sample_offset`).
pub(super) fn insight_batch(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    sample_offset: u32,
    cfg: &RunConfig,
) -> Result<Vec<Vec<Vec<LayerTrial>>>, EngineError> {
    let nt = cfg.times.len();
    let mut out = vec![vec![Vec::with_capacity(cfg.trials as usize); layers.len()]; nt];
    // act(W x + b) of the first layer, whose input is the same for every trial and time.
    let mut first_ref: Option<Vec<f64>> = None;
    let mut hook = |be: &mut dyn Backend, b: LayerBufs, p: &StageParams, ti: usize| -> Result<(), EngineError> {
        let l = &layers[b.layer];
        let m = &l.mapped;
        // Vectors per trial: samples, times output pixels for a convolution (whose input is
        // the unfolded one and whose output is before pooling).
        let (n, bt, ni, no) = (p.layer.trials as usize, p.layer.batch as usize, m.n_in as usize, m.n_out as usize);
        let (ntiles, tin) = (m.n_tiles() as usize, m.tiles_in as usize);
        let shared = p.layer.x_per_trial == 0;
        let input: Vec<f32> = if shared && first_ref.is_some() { Vec::new() } else { bytemuck::cast_vec(be.download(b.input)?) };
        let h: Vec<f32> = bytemuck::cast_vec(be.download(b.output)?);
        let y: Vec<f32> = bytemuck::cast_vec(be.download(b.y)?);
        let level: Vec<u32> = bytemuck::cast_vec(be.download(b.bm_level)?);
        let bound = p.io.out_bound;
        let reference = |xin: &[f32]| -> Vec<f64> {
            (0..no)
                .map(|o| {
                    let pre = l.bias[o] as f64 + m.w[o * ni..][..ni].iter().zip(xin).map(|(&w, &v)| w as f64 * v as f64).sum::<f64>();
                    crate::engine::cpu::common::activate(l.mvm_activation(), pre as f32) as f64
                })
                .collect()
        };
        if shared && first_ref.is_none() {
            first_ref = Some((0..bt).flat_map(|s| reference(&input[s * ni..][..ni])).collect());
        }
        for z in 0..n {
            let mut r = LayerTrial { vectors: (bt * ntiles) as u64, conversions: (tin * bt * no) as u64, ..LayerTrial::default() };
            for s in 0..bt {
                let own;
                let want: &[f64] = if shared {
                    &first_ref.as_ref().expect("computed above")[s * no..][..no]
                } else {
                    own = reference(&input[(z * bt + s) * ni..][..ni]);
                    &own
                };
                for (o, &w) in want.iter().enumerate() {
                    r.sq_err += (h[(z * bt + s) * no + o] as f64 - w).powi(2);
                    r.sq_ref += w * w;
                }
                r.bm_repeated += level[(z * bt + s) * ntiles..][..ntiles].iter().filter(|&&v| v > 0).count() as u64;
            }
            if bound > 0.0 {
                r.clipped = y[z * tin * bt * no..][..tin * bt * no].iter().filter(|v| v.abs() >= bound).count() as u64;
            }
            out[ti][b.layer].push(r);
        }
        Ok(())
    };
    forward(be, layers, x, batch, sample_offset, std::slice::from_ref(cfg), &mut |_| {}, &mut |_, _, _, _, _| Ok(()), &mut |_, _| Ok(()), Some(&mut hook))?;
    Ok(out)
}
