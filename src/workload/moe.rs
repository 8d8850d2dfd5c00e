//! The `moe` workload of experiment files (tiers-energy spec; Büchel et al., "Efficient scaling of
//! large language models with mixture of experts and 3D analog in-memory computing", Nat. Comput.
//! Sci. 5, 13–26 (2025)). Two halves per sweep point:
//! - accuracy: a noisy MoE layer (router Linear(d_model → E), softmax over the top-k logits, experts
//!   FFN1 → activation → FFN2, gate-weighted sum) on a batch of tokens, every matrix programmed
//!   through the engine with the noise of the tiers holding it; per trial the relative output error
//!   ‖Y − Y_fp‖_F / ‖Y_fp‖_F, the routing taken from the trial's own noisy router;
//! - cost: the layer mapped onto T tiles × L tiers (`crate::arch`), each trial one draw of the
//!   token routing scheduled event by event: latency, tier conflicts, utilisation and energy per
//!   token as distributions over trials, and the GPU roofline at several batch sizes beside it.
//!
//! Weights (no model file): router, FFN1 and FFN2 entries are Philox normals scaled by
//! 1/√fan_in (router), √(2/fan_in) (FFN1, He) and 1/√fan_in (FFN2), drawn from `weights_seed`;
//! token inputs are standard normals from the same seed. Every crossbar tile of a matrix gets the
//! noise multipliers of the tier its chunk sits on (per-tile device multipliers in the engine).

use super::{Inputs, Metric, PointRun, SweepPoint, TimeMetrics};
use crate::arch::cost::{GpuTable, TierCostTable};
use crate::arch::mapping::{map_layer, Mapping, MatrixMap, Strategy};
use crate::arch::routing::{sample_tokens, Routing};
use crate::arch::schedule::{schedule, EnergyBreakdown, ScheduleOptions};
use crate::arch::tiers::{Architecture, MoeLayer, TierNoise};
use crate::engine::plan::{self, RunConfig};
use crate::engine::{Backend, EngineError};
use crate::results::{GpuPoint, MoeCost};
use crate::stats::{Histogram, Summary};
use crate::workload::io::{self, Linear, Matrix};
use crate::workload::Activation;
use serde::{Deserialize, Serialize};

/// `[moe]`: the layer, its routing and mapping. Every field except `accuracy` and the tables can
/// be a sweep axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeSettings {
    pub d_model: u32,
    pub d_ff: u32,
    pub experts: u32,
    pub top_k: u32,
    /// Tokens per batch: the accuracy batch and the scheduled batch.
    #[serde(default = "default_tokens")]
    pub tokens: u32,
    #[serde(default = "default_act")]
    pub activation: Activation,
    /// The cost model's token routing: a density (`{ kind = "zipf", s = 1.2 }`, uniform, histogram,
    /// co_selection), or absent: each trial's noisy router (the floating-point router's choices
    /// when `accuracy = false`).
    #[serde(default)]
    pub routing: Option<Routing>,
    /// greedy, experts_separated or co_selection.
    #[serde(default = "default_strategy")]
    pub mapping: Strategy,
    #[serde(default = "one")]
    pub weights_seed: u64,
    /// Run the noisy forward pass (the metric is then its relative output error); false: the cost
    /// model alone (the metric is the batch's mean per-token latency, ns).
    #[serde(default = "yes")]
    pub accuracy: bool,
    /// Batch sizes of the GPU roofline and the AIMC / GPU ratios.
    #[serde(default = "default_batches")]
    pub gpu_batches: Vec<u32>,
    /// Context length of an attention op before the router (0: the MoE layer alone).
    #[serde(default)]
    pub attention_context: u32,
    /// Tier noise gradient when `arch.tier_noise` is empty: tier i of L scales programming, drift
    /// and read noise by 1 + slope · i / (L − 1) (0: uniform).
    #[serde(default)]
    pub tier_noise_slope: f64,
    /// Trained weights instead of the random recipe: a .safetensors state dict with
    /// `router.weight` [E, d_model] and `experts.{e}.w1.weight` [d_ff, d_model],
    /// `experts.{e}.w2.weight` [d_out, d_ff] (biases `.bias` optional), relative to the file.
    #[serde(default)]
    pub model: Option<std::path::PathBuf>,
    /// Output width of the experts (0: d_model). A classifier's class count: with a `[data]`
    /// section the outputs are class logits and the metric is test accuracy.
    #[serde(default)]
    pub d_out: u32,
    /// The tokens: the `[data]` rows (then `tokens` is their count), else Philox normals drawn
    /// from `weights_seed`. Set by validation, not by the file.
    #[serde(skip)]
    pub inputs: Option<std::sync::Arc<[f32]>>,
}

fn default_tokens() -> u32 {
    64
}
fn default_act() -> Activation {
    Activation::Gelu
}
fn default_strategy() -> Strategy {
    Strategy::Greedy
}
fn one() -> u64 {
    1
}
fn yes() -> bool {
    true
}
fn default_batches() -> Vec<u32> {
    vec![1, 8, 64, 512]
}

/// Largest layer (expert weights) the noisy forward pass simulates.
const MAX_ACCURACY_WEIGHTS: u64 = 1 << 26;

/// Largest experts × trials-chunk × tokens × d_model values held for one chunk of trials.
const MAX_CHUNK_VALUES: usize = 1 << 26;

impl MoeSettings {
    pub fn layer(&self) -> MoeLayer {
        MoeLayer { d_model: self.d_model, d_ff: self.d_ff, experts: self.experts, top_k: self.top_k, d_out: self.d_out }
    }

    /// Output width of the experts.
    pub fn out(&self) -> u32 {
        self.layer().out()
    }

    /// The token inputs, tokens × d_model.
    fn token_inputs(&self) -> Vec<f32> {
        match &self.inputs {
            Some(x) => x.to_vec(),
            None => normals(self.tokens as usize * self.d_model as usize, self.weights_seed, 2, 1.0),
        }
    }

    /// Checks the layer, routing and batches, and returns the architecture it maps onto: with
    /// `arch.tiles = 0`, the fewest tiles the mapping fits on (so sweeping `tiers` trades tiles for
    /// tiers, as in the paper's 3D study).
    pub fn resolve(&self, arch: &Architecture) -> Result<Architecture, String> {
        self.layer().validate().map_err(|m| format!("[moe] {m}"))?;
        if self.tokens == 0 {
            return Err("moe.tokens = 0: must be >= 1 (tokens per batch)".into());
        }
        if let Some(r) = &self.routing {
            r.validate(self.experts, self.top_k).map_err(|m| format!("moe.{m}"))?;
        }
        if self.gpu_batches.is_empty() || self.gpu_batches.contains(&0) {
            return Err(format!("moe.gpu_batches = {:?}: give batch sizes >= 1, e.g. [1, 8, 64, 512]", self.gpu_batches));
        }
        let weights = self.experts as u64 * self.layer().expert_weights();
        if self.accuracy && weights > MAX_ACCURACY_WEIGHTS {
            return Err(format!(
                "moe: {weights} expert weights is beyond what the noisy forward pass holds ({MAX_ACCURACY_WEIGHTS}); set moe.accuracy = false for the cost model alone, or scale the layer down"
            ));
        }
        if !(self.tier_noise_slope.is_finite() && self.tier_noise_slope > -1.0) {
            return Err(format!("moe.tier_noise_slope = {}: must be > -1 (multipliers stay positive)", self.tier_noise_slope));
        }
        let cos = self.routing.as_ref().and_then(coselection);
        if arch.tiles != 0 {
            arch.validate().map_err(|m| format!("[arch] {m}"))?;
            map_layer(arch, &self.layer(), self.mapping, cos).map_err(|m| format!("[arch] {m}"))?;
            return Ok(arch.clone());
        }
        let mut a = Architecture { tiles: 1, ..arch.clone() };
        a.validate().map_err(|m| format!("[arch] {m}"))?;
        let total: u64 = self.layer().matrices().iter().map(|m| a.chunks(m.inputs, m.outputs)).sum();
        let first = total.div_ceil(a.tiers as u64).max(1);
        for tiles in first..=total.max(first) {
            a.tiles = tiles as u32;
            if map_layer(&a, &self.layer(), self.mapping, cos).is_ok() {
                return Ok(a);
            }
        }
        Err(format!("[arch] tiles = 0 (auto): no tile count up to {total} fits the {:?} mapping", self.mapping))
    }
}

/// The fewest tiles of `tiers` tiers with `rows` × `cols` crossbars that hold `layer` under
/// `strategy`, and its mapping (the transformer's routed layers; `MoeSettings::resolve` with
/// `arch.tiles = 0` searches the same way).
pub(crate) fn fit_architecture(layer: &MoeLayer, tiers: u32, rows: u32, cols: u32, strategy: Strategy) -> Result<(Architecture, Mapping), String> {
    let mut a = Architecture { tiles: 1, tiers, rows, cols, tier_noise: vec![] };
    a.validate()?;
    layer.validate()?;
    let total: u64 = layer.matrices().iter().map(|m| a.chunks(m.inputs, m.outputs)).sum();
    let first = total.div_ceil(a.tiers as u64).max(1);
    for tiles in first..=total.max(first) {
        a.tiles = tiles as u32;
        if let Ok(m) = map_layer(&a, layer, strategy, None) {
            return Ok((a, m));
        }
    }
    Err(format!("no tile count up to {total} fits the {strategy:?} mapping"))
}

/// The co-selection density a co-selection-aware mapping uses, when the routing gives one.
fn coselection(r: &Routing) -> Option<&[f64]> {
    match r {
        Routing::CoSelection { density } => Some(density),
        _ => None,
    }
}

/// The noise multipliers of tier `tier`: the table's, else the slope's gradient.
pub(crate) fn tier_mult(arch: &Architecture, slope: f64, tier: u32) -> TierNoise {
    if !arch.tier_noise.is_empty() {
        return arch.tier_noise(tier);
    }
    let f = if arch.tiers > 1 { 1.0 + slope * tier as f64 / (arch.tiers - 1) as f64 } else { 1.0 };
    TierNoise { prog: f, drift: f, read: f }
}

/// The tier holding engine tile `t` of a matrix: that of the architecture chunk containing the
/// tile's centre (the engine's balanced tiles and the architecture's aligned crossbar blocks have
/// the same counts when `[tile]` matches the crossbar size, and each centre lies in its block).
pub(crate) fn tier_of(arch: &Architecture, map: &MatrixMap, t: &crate::crossbar::Tile) -> u32 {
    let in_block = ((t.col_start + t.cols / 2) / arch.rows.max(1)).min(map.in_blocks.saturating_sub(1));
    let out_block = ((t.row_start + t.rows / 2) / arch.cols.max(1)).min(map.out_blocks.saturating_sub(1));
    map.chunks.get((in_block * map.out_blocks + out_block) as usize).map_or(0, |c| c.tier)
}

/// Philox normals scaled by `scale`, stream `tag` of `seed`.
fn normals(n: usize, seed: u64, tag: u32, scale: f64) -> Vec<f32> {
    let key = crate::rng::key(seed, 0x4D4F_4500 | tag);
    (0..n.div_ceil(4))
        .flat_map(|b| crate::rng::normal4_f64(crate::rng::philox4x32_10([b as u32, tag, 0x4D, 0], key)))
        .take(n)
        .map(|v| (v * scale) as f32)
        .collect()
}

/// The layer's weights and token inputs (the documented recipe).
pub struct MoeWeights {
    pub router: Linear,
    /// (FFN1, FFN2) of each expert.
    pub experts: Vec<(Linear, Linear)>,
    /// tokens × d_model.
    pub x: Vec<f32>,
}

/// The layer's weights: the state dict of `s.model` (a path already resolved) or the recipe.
pub fn load_weights(s: &MoeSettings) -> Result<MoeWeights, String> {
    let Some(path) = &s.model else { return Ok(weights(s)) };
    let (d, f, e, c) = (s.d_model as usize, s.d_ff as usize, s.experts as usize, s.out() as usize);
    // One read of the file for every tensor.
    let bytes = crate::files::read(path).map_err(|er| format!("moe.model: {}: cannot read it ({er}); check the path", path.display()))?;
    let read = |name: &str, rows: usize, cols: usize| -> Result<Linear, String> {
        let w = io::parse_safetensors_matrix(&bytes, Some(&format!("{name}.weight"))).map_err(|er| format!("moe.model: {}: {er}", path.display()))?;
        if (w.rows, w.cols) != (rows, cols) {
            return Err(format!(
                "moe.model: {}: {name}.weight is {} x {} but [moe] says {rows} x {cols}; fix d_model, d_ff, d_out or experts",
                path.display(),
                w.rows,
                w.cols
            ));
        }
        let bias = match io::parse_safetensors_vector(&bytes, &format!("{name}.bias")).map_err(|er| format!("moe.model: {}: {er}", path.display()))? {
            Some(b) if b.len() == rows => b,
            Some(b) => return Err(format!("moe.model: {}: {name}.bias has {} values, the layer {rows} outputs", path.display(), b.len())),
            None => vec![0.0; rows],
        };
        Ok(Linear::dense(name, w, bias))
    };
    let router = read("router", e, d)?;
    let experts = (0..e).map(|i| Ok((read(&format!("experts.{i}.w1"), f, d)?, read(&format!("experts.{i}.w2"), c, f)?))).collect::<Result<Vec<_>, String>>()?;
    Ok(MoeWeights { router, experts, x: s.token_inputs() })
}

pub fn weights(s: &MoeSettings) -> MoeWeights {
    let (d, f, e, c) = (s.d_model as usize, s.d_ff as usize, s.experts as usize, s.out() as usize);
    let lin = |name: String, rows: usize, cols: usize, tag: u32, scale: f64| {
        Linear::dense(name, Matrix { rows, cols, data: normals(rows * cols, s.weights_seed, tag, scale) }, vec![0.0; rows])
    };
    let router = lin("router".into(), e, d, 1, 1.0 / (d as f64).sqrt());
    let experts = (0..e)
        .map(|i| {
            let t = 16 + 2 * i as u32;
            (lin(format!("experts.{i}.w1"), f, d, t, (2.0 / d as f64).sqrt()), lin(format!("experts.{i}.w2"), c, f, t + 1, 1.0 / (f as f64).sqrt()))
        })
        .collect();
    MoeWeights { router, experts, x: s.token_inputs() }
}

/// y = W x + b for rows of x.
fn linear(l: &Linear, x: &[f32]) -> Vec<f32> {
    let (r, c) = (l.weight.rows, l.weight.cols);
    x.chunks(c).flat_map(|xi| (0..r).map(move |o| l.bias[o] + (0..c).map(|k| l.weight.data[o * c + k] * xi[k]).sum::<f32>())).collect()
}

/// The top-k experts of one token's router logits (ties: lower index) and their gates, the
/// softmax over the chosen logits (Mixtral's convention).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.truncate(k);
    let m = idx.iter().map(|&i| logits[i]).fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = idx.iter().map(|&i| (logits[i] - m).exp()).sum();
    idx.into_iter().map(|i| (i, (logits[i] - m).exp() / z)).collect()
}

/// The layer's output for all tokens from router logits and every expert's outputs.
fn combine(logits: &[f32], outs: &[&[f32]], tokens: usize, e: usize, d: usize, k: usize) -> (Vec<f32>, Vec<Vec<u32>>) {
    let mut y = vec![0f32; tokens * d];
    let mut routes = Vec::with_capacity(tokens);
    for t in 0..tokens {
        let chosen = top_k(&logits[t * e..(t + 1) * e], k);
        for &(i, g) in &chosen {
            for c in 0..d {
                y[t * d + c] += g * outs[i][t * d + c];
            }
        }
        routes.push(chosen.iter().map(|&(i, _)| i as u32).collect());
    }
    (y, routes)
}

/// Floating-point forward: the output and each token's experts.
pub fn fp_forward(s: &MoeSettings, w: &MoeWeights) -> (Vec<f32>, Vec<Vec<u32>>) {
    let logits = linear(&w.router, &w.x);
    let outs: Vec<Vec<f32>> = w
        .experts
        .iter()
        .map(|(a, b)| {
            let mut h = linear(a, &w.x);
            for v in &mut h {
                *v = crate::engine::cpu::common::activate(s.activation.code(), *v);
            }
            linear(b, &h)
        })
        .collect();
    let refs: Vec<&[f32]> = outs.iter().map(|v| v.as_slice()).collect();
    combine(&logits, &refs, s.tokens as usize, s.experts as usize, s.out() as usize, s.top_k as usize)
}

/// One MoE sweep point: per time the metric of every trial, and the cost model.
pub struct MoePoint {
    pub per_time: Vec<Vec<f64>>,
    /// A classifier (`[data]` given): per time each trial's correct predictions out of `tokens`,
    /// and the floating-point accuracy.
    pub correct: Option<(Vec<Vec<u32>>, f64)>,
    pub cost: MoeCost,
}

/// Tokens whose arg-max output (lowest index on ties) equals their label.
fn correct_count(y: &[f32], labels: &[u32], classes: usize) -> u32 {
    y.chunks(classes).zip(labels).filter(|(row, &l)| crate::workload::argmax(row) == l as usize).count() as u32
}

/// The salt of matrix group `g` (0 router, 1 + e expert e) in the RNG key: separate plan runs
/// must not draw the same noise for the same (layer, element, trial) counters.
fn keyed(cfg: &RunConfig, seed: u64, point: u32, g: u32) -> RunConfig {
    let mut c = cfg.clone();
    c.key = crate::rng::key(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(g as u64 + 1)), point);
    c
}

pub fn metric(inputs: &Inputs<'_>, first: &SweepPoint) -> Metric {
    if inputs.data.is_some() {
        Metric { text: "test accuracy (MoE classifier)", column: "moe_test_accuracy", higher_is_better: true }
    } else if first.moe.as_ref().is_some_and(|(m, _)| m.accuracy) {
        Metric { text: "relative MoE output error ‖Y − Y_fp‖_F/‖Y_fp‖_F", column: "moe_output_relative_error", higher_is_better: false }
    } else {
        Metric { text: "mean per-token latency of a batch (ns)", column: "moe_latency_ns", higher_is_better: false }
    }
}

pub fn run(r: &mut PointRun<'_>) -> Result<Vec<TimeMetrics>, EngineError> {
    let mp = run_point(r.be, &r.inputs, r.point, &r.cfg, &mut |n| (r.progress)(n as u64))?;
    let mut cost = Some(mp.cost);
    let tokens = r.point.moe.as_ref().map_or(0, |(m, _)| m.tokens);
    let (mut correct, fp) = match mp.correct {
        Some((c, fp)) => (Some(c.into_iter()), Some(fp)),
        None => (None, None),
    };
    Ok(mp
        .per_time
        .into_iter()
        .map(|per_trial| TimeMetrics {
            per_trial,
            correct: correct.as_mut().and_then(|it| it.next()).map(|c| (c, tokens)),
            fp,
            moe: cost.take(),
            ..TimeMetrics::default()
        })
        .collect())
}

pub fn run_point(be: &mut dyn Backend, exp: &Inputs<'_>, sp: &SweepPoint, cfg: &RunConfig, on_chunk: &mut dyn FnMut(u32)) -> Result<MoePoint, EngineError> {
    let bad = |m: String| EngineError::Invalid(m);
    let (s, arch) = sp.moe.as_ref().ok_or_else(|| bad("the moe workload needs [moe] and [arch]".into()))?;
    let layer = s.layer();
    let mapping = map_layer(arch, &layer, s.mapping, s.routing.as_ref().and_then(coselection)).map_err(bad)?;
    let (tokens, e, d, k) = (s.tokens as usize, s.experts as usize, s.out() as usize, s.top_k as usize);
    let labels = exp.data.map(|ds| &ds.labels[..]);
    // The floating-point router's choices (cheap: E × d_model); the experts only with accuracy.
    let fp_routes = router_routes(s, tokens);
    let nt = exp.times.len();
    let point = if exp.common_random_numbers { 0 } else { sp.index as u32 };
    let mut per_time = vec![Vec::with_capacity(cfg.trials as usize); nt];
    let mut routes_per_trial: Vec<Vec<Vec<u32>>> = Vec::new();
    let mut correct = labels.map(|_| (vec![Vec::with_capacity(cfg.trials as usize); nt], 0.0));
    if s.accuracy {
        let w = load_weights(s).map_err(bad)?;
        let (y_fp, _) = fp_forward(s, &w);
        if let (Some(l), Some(c)) = (labels, correct.as_mut()) {
            c.1 = correct_count(&y_fp, l, d) as f64 / tokens as f64;
        }
        let norm = y_fp.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt().max(1e-30);
        let chunk = (MAX_CHUNK_VALUES / (e.max(1) * tokens * d.max(e).max(s.d_ff as usize) * nt).max(1)).clamp(1, 4096) as u32;
        let mut start = 0;
        while start < cfg.trials {
            let n = chunk.min(cfg.trials - start);
            let sub = |g: u32| {
                let mut c = keyed(cfg, exp.seed, point, g);
                c.trials = n;
                c.first_trial = cfg.first_trial + start;
                c
            };
            // The router, then each expert: [time][trial][token][out] of this chunk. Every engine
            // tile carries the noise multipliers of the tier holding it.
            let run = |be: &mut dyn Backend, ls: &[Linear], maps: &[&MatrixMap], act: Activation, c: &RunConfig, progress: &mut dyn FnMut(u32)| {
                let mut layers = crate::workload::analog_layers(ls, &crate::workload::between(ls.len(), act), sp.tile, (&sp.periphery).into());
                for (l, map) in layers.iter_mut().zip(maps) {
                    l.mapped.set_tile_noise(|t| {
                        let m = tier_mult(arch, s.tier_noise_slope, tier_of(arch, map, t));
                        [m.prog as f32, m.drift as f32, m.read as f32]
                    });
                }
                let mut out = vec![Vec::new(); nt];
                plan::run_outputs_each(be, &layers, &w.x, tokens as u32, c, progress, &mut |ti, _, o| {
                    out[ti].extend_from_slice(o);
                    Ok(())
                })
                .map(|_| out)
            };
            let logits = run(be, std::slice::from_ref(&w.router), &[mapping.router()], Activation::None, &sub(0), on_chunk)?;
            let mut outs = Vec::with_capacity(e);
            for (i, (a, b)) in w.experts.iter().enumerate() {
                let maps = [mapping.ffn1(i as u32), mapping.ffn2(i as u32)];
                outs.push(run(be, &[a.clone(), b.clone()], &maps, s.activation, &sub(1 + i as u32), &mut |_| {})?);
            }
            for ti in 0..nt {
                for t in 0..n as usize {
                    let lg = &logits[ti][t * tokens * e..(t + 1) * tokens * e];
                    let eo: Vec<&[f32]> = outs.iter().map(|o| &o[ti][t * tokens * d..(t + 1) * tokens * d]).collect();
                    let (y, routes) = combine(lg, &eo, tokens, e, d, k);
                    match (labels, correct.as_mut()) {
                        (Some(l), Some(c)) => {
                            let n = correct_count(&y, l, d);
                            c.0[ti].push(n);
                            per_time[ti].push(n as f64 / tokens as f64);
                        }
                        _ => per_time[ti].push(y.iter().zip(&y_fp).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>().sqrt() / norm),
                    }
                    if ti == 0 {
                        routes_per_trial.push(routes);
                    }
                }
            }
            start += n;
        }
    }
    // The cost model: one routing draw per trial.
    let table = exp.moe_tables.map(|t| t.0.clone()).unwrap_or_else(TierCostTable::default_table);
    let gpu = exp.moe_tables.map(|t| t.1.clone()).unwrap_or_else(GpuTable::h100_sxm);
    let opts = ScheduleOptions { attention_context: s.attention_context };
    let clock = std::time::Instant::now();
    let mut results = Vec::with_capacity(cfg.trials as usize);
    for t in 0..cfg.trials {
        let routes = match (&s.routing, routes_per_trial.get(t as usize)) {
            (Some(r), _) => sample_tokens(r, s.experts, s.top_k, exp.seed, cfg.first_trial + t, s.tokens).map_err(bad)?,
            (None, Some(r)) => r.clone(),
            (None, None) => fp_routes.clone(),
        };
        results.push(schedule(&mapping, &table, &routes, &opts).map_err(bad)?);
    }
    let schedule_seconds = clock.elapsed().as_secs_f64();
    if !s.accuracy {
        for pt in per_time.iter_mut() {
            *pt = results.iter().map(|r| r.per_token_latency_ns.iter().sum::<f64>() / r.tokens.max(1) as f64).collect();
        }
    }
    let cost = summarise(s, arch, &mapping, &table, &gpu, &results, schedule_seconds, exp.seed).map_err(bad)?;
    Ok(MoePoint { per_time, correct, cost })
}

/// The cost section of a point from its trials' schedules, and the GPU comparison at each batch.
#[allow(clippy::too_many_arguments)]
fn summarise(
    s: &MoeSettings,
    arch: &Architecture,
    mapping: &Mapping,
    table: &TierCostTable,
    gpu: &GpuTable,
    results: &[crate::arch::schedule::ScheduleResult],
    schedule_seconds: f64,
    seed: u64,
) -> Result<MoeCost, String> {
    let st = |v: Vec<f64>| Summary::from_sample(&v).map_err(|e| e.to_string());
    let n = results.len().max(1) as f64;
    let lat: Vec<f64> = results.iter().flat_map(|r| r.per_token_latency_ns.iter().copied()).collect();
    let (lo, hi) = lat.iter().fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let mut hist = Histogram::new(lo.min(hi), hi.max(lo + 1.0) * 1.0001, 40).map_err(|e| e.to_string())?;
    for &v in &lat {
        hist.push(v);
    }
    let mut e = EnergyBreakdown::default();
    for r in results {
        let per = 1.0 / (r.tokens.max(1) as f64 * n);
        e.mvm_pj += r.energy.mvm_pj * per;
        e.communication_pj += r.energy.communication_pj * per;
        e.digital_pj += r.energy.digital_pj * per;
        e.attention_pj += r.energy.attention_pj * per;
        e.dram_pj += r.energy.dram_pj * per;
        e.passive_pj += r.energy.passive_pj * per;
    }
    e.total_pj = e.mvm_pj + e.communication_pj + e.digital_pj + e.attention_pj + e.dram_pj + e.passive_pj;
    let tiles = arch.tiles as usize;
    let mut heat = vec![vec![0.0; arch.tiers as usize]; tiles];
    let mut util = vec![0.0; tiles];
    for r in results {
        for (ti, row) in r.tier_activations.iter().enumerate() {
            for (li, &c) in row.iter().enumerate() {
                heat[ti][li] += c as f64 / n;
            }
        }
        for (ti, u) in r.tile_utilisation().into_iter().enumerate() {
            util[ti] += u / n;
        }
    }
    // The GPU at each batch size against the AIMC schedule of a batch of that size (routing of
    // trial 0 for that many tokens; the router's choices repeated when there is no density).
    let opts = ScheduleOptions { attention_context: s.attention_context };
    // Each expert's inclusion probability: from the routing density, else from the
    // floating-point router's choices on the batch (so the GPU reads the experts a batch of that
    // size would actually select, not all of them).
    let draws = match &s.routing {
        Some(r) => sample_tokens(r, s.experts, s.top_k, seed, 0, 4096).unwrap_or_default(),
        None => router_routes(s, s.tokens as usize),
    };
    let dens = crate::arch::routing::coselection_density(&draws, s.experts);
    let inclusion = Some((0..s.experts as usize).map(|i| dens[i * s.experts as usize + i]).collect::<Vec<f64>>());
    let mut gpu_points = Vec::new();
    let mut assumptions = Vec::new();
    for &b in &s.gpu_batches {
        let routes = match &s.routing {
            Some(r) => sample_tokens(r, s.experts, s.top_k, seed, u32::MAX, b)?,
            None => fp_like_routes(s, b),
        };
        let a = schedule(mapping, table, &routes, &opts)?;
        let g = crate::arch::roofline::gpu_roofline(gpu, &s.layer(), b, inclusion.as_deref())?;
        let r = crate::arch::roofline::ratios(&a, &g);
        if assumptions.is_empty() {
            assumptions = r.assumptions.clone();
        }
        gpu_points.push(GpuPoint {
            batch: b,
            aimc_tokens_per_s: a.tokens_per_s,
            aimc_energy_per_token_pj: a.energy_per_token_pj,
            gpu_tokens_per_s: g.tokens_per_s,
            gpu_energy_per_token_pj: g.energy_per_token_pj,
            gpu_memory_bound: g.memory_bound,
            throughput_ratio: r.throughput_ratio,
            energy_efficiency_ratio: r.energy_efficiency_ratio,
        });
    }
    let tokens_scheduled = results.iter().map(|r| r.tokens as f64).sum::<f64>();
    Ok(MoeCost {
        strategy: serde_json::to_value(s.mapping).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        tiles: arch.tiles,
        tiers: arch.tiers,
        tiers_used: mapping.tiers_used,
        tiles_used: mapping.tiles_used as u64,
        utilisation: mapping.utilisation,
        mean_fill: mapping.mean_fill,
        tokens: s.tokens,
        latency_ns: st(results.iter().map(|r| r.per_token_latency_ns.iter().sum::<f64>() / r.tokens.max(1) as f64).collect())?,
        tier_conflicts: st(results.iter().map(|r| r.tier_conflicts as f64).collect())?,
        tokens_per_s: st(results.iter().map(|r| r.tokens_per_s).collect())?,
        energy_per_token_pj: st(results.iter().map(|r| r.energy_per_token_pj).collect())?,
        latency_hist: hist,
        energy_per_token: e,
        tier_activations: heat,
        tile_utilisation: util,
        area_mm2: results.first().and_then(|r| r.area_mm2),
        gpu: gpu_points,
        assumptions,
        cost_table: table.name.clone(),
        gpu_table: gpu.name.clone(),
        schedule_seconds,
        tokens_scheduled_per_s: tokens_scheduled / schedule_seconds.max(1e-9),
    })
}

/// Without a routing density, a batch of `b` tokens routed by the floating-point router (the
/// recipe's tokens repeated).
fn fp_like_routes(s: &MoeSettings, b: u32) -> Vec<Vec<u32>> {
    let routes = router_routes(s, s.tokens as usize);
    (0..b as usize).map(|i| routes[i % routes.len()].clone()).collect()
}

/// The floating-point router's top-k for the first `tokens` tokens of the batch.
fn router_routes(s: &MoeSettings, tokens: usize) -> Vec<Vec<u32>> {
    let (d, e) = (s.d_model as usize, s.experts as usize);
    // The file was validated by `load_weights`; one read here for the router's two tensors.
    let bytes = s.model.as_ref().and_then(|p| crate::files::read(p).ok()).unwrap_or_default();
    let from_file = io::parse_safetensors_matrix(&bytes, Some("router.weight")).ok().filter(|w| (w.rows, w.cols) == (e, d));
    let bias =
        io::parse_safetensors_vector(&bytes, "router.bias").ok().flatten().filter(|b| b.len() == e && from_file.is_some()).unwrap_or_else(|| vec![0.0; e]);
    let router = Linear::dense(
        "router",
        from_file.unwrap_or_else(|| Matrix { rows: e, cols: d, data: normals(e * d, s.weights_seed, 1, 1.0 / (d as f64).sqrt()) }),
        bias,
    );
    // The batch's tokens, repeated when more are asked for.
    let inputs = s.token_inputs();
    let x: Vec<f32> = (0..tokens * d).map(|i| inputs[i % inputs.len().max(1)]).collect();
    let logits = linear(&router, &x);
    (0..tokens).map(|t| top_k(&logits[t * e..(t + 1) * e], s.top_k as usize).into_iter().map(|(i, _)| i as u32).collect()).collect()
}
