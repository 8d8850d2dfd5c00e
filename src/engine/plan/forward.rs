//! The inference plan (`forward`: program, drift and run a batch through every layer) and the
//! workloads on it that read the last layer: classifier counts and raw outputs.

use super::*;

/// Classifier result for one time point: correct predictions per trial (exact integers).
#[derive(Clone, Debug)]
pub struct ClassifierPoint {
    pub t_inf: f64,
    /// Per trial: correct predictions (a language model's next tokens predicted first-best).
    pub correct: Vec<u32>,
    /// What is scored: samples, or a language model's predicted tokens.
    pub n_samples: u32,
    /// A language model's summed next-token negative log-likelihood (nats) per trial; empty for
    /// classifiers.
    pub nll: Vec<f64>,
    /// A language model's loss per trial and sequence, `[trial][sequence]` (each sequence's block
    /// sums added in f64; the test-set interval's units); empty for classifiers.
    pub seq_nll: Vec<f64>,
    /// A language model's first-best next tokens per trial and sequence, `[trial][sequence]`.
    pub seq_correct: Vec<u32>,
    /// Question answering, per trial and sequence `[trial][sequence]`: the predicted answer's
    /// overlap with the labelled answer it matches best, its length and that answer's length,
    /// in tokens (`answer_span`'s slots).
    pub seq_overlap: Vec<u32>,
    pub seq_predicted: Vec<u32>,
    pub seq_labelled: Vec<u32>,
    /// Question answering, per trial and sequence: the predicted span (first token, last token)
    /// and its start + end logit, None without a context (SQuAD's official metrics read it).
    pub seq_answer: Vec<Option<(u32, u32, f32)>>,
    /// Question answering, per trial and sequence: the null score, position 0's start + end
    /// logit (SQuAD 2.0's "no answer").
    pub seq_null: Vec<f32>,
    /// A pooled head's outputs per trial, sequence and output, `[trial][sequence][output]`
    /// (`head_out`; GLUE's per-sequence metrics).
    pub seq_out: Vec<f32>,
    /// A classifier's rows with `row_counts`: per sample, the trials that classify it right
    /// (`row_correct`), added over the run's chunks; empty without.
    pub row_correct: Vec<u32>,
}

impl ClassifierPoint {
    /// The point at `t_inf` before any trial, scoring `n_samples` per trial.
    pub fn new(t_inf: f64, n_samples: u32) -> ClassifierPoint {
        ClassifierPoint {
            t_inf,
            correct: vec![],
            n_samples,
            nll: vec![],
            seq_nll: vec![],
            seq_correct: vec![],
            seq_overlap: vec![],
            seq_predicted: vec![],
            seq_labelled: vec![],
            seq_answer: vec![],
            seq_null: vec![],
            seq_out: vec![],
            row_correct: vec![],
        }
    }
}

/// Program an MLP `trials` times and classify the data set at every time.
/// `x` is row-major [batch][n_in of the first layer], `labels` has `batch` entries.
pub fn run_classifier(be: &mut dyn Backend, layers: &[AnalogLayer], x: &[f32], labels: &[u32], cfg: &RunConfig) -> Result<Vec<ClassifierPoint>, EngineError> {
    run_classifier_progress(be, layers, x, labels, cfg, &mut |_| {})
}

/// Samples per batch of a classifier's data set: all of them when one trial's activations take
/// at most 1/16 of a buffer binding (so a chunk holds 16 trials or more) and `mvm` can dispatch
/// its MVMs; else the largest batch that does. A CNN on a real test set (10 000 images of
/// 32 × 32 pixels: 10 M MVMs per trial for its first convolution) runs in batches.
pub fn sample_batch(be: &dyn Backend, layers: &[AnalogLayer], samples: u32) -> u32 {
    let per_sample = layers
        .iter()
        .map(|l| {
            let m = &l.mapped;
            l.vectors_per_sample() as u64 * (m.tiles_in as u64 * m.n_out as u64).max(m.n_in.max(m.n_out) as u64) * 4
        })
        .max()
        .unwrap_or(4);
    let by_bytes = be.max_binding_bytes().min(CHUNK_BUDGET_BYTES) / 16 / per_sample.max(1);
    let by_groups = MAX_GROUPS as u64 * MVM_MIN_BM as u64 / layers.iter().map(|l| l.vectors_per_sample() as u64).max().unwrap_or(1);
    samples.min(by_bytes.min(by_groups).min(u32::MAX as u64) as u32).max(1)
}

/// One trial's largest buffer binding of one layer in `forward` (bytes): its tiles' partial
/// outputs or its inputs and outputs for `vectors` MVMs, or its programmed state. Trial chunks
/// are sized by it, and one trial above the adapter's binding limit is refused; `aimc check`
/// asks the same function before a run.
pub fn layer_trial_bytes(n_in: u32, n_out: u32, tiles_in: u32, vectors: u32, device: &crate::device::DeviceModel) -> u64 {
    let acts = (tiles_in as u64 * vectors as u64 * n_out as u64).max(vectors as u64 * n_in.max(n_out) as u64) * 4;
    // The programmed state of the out × in matrix (MappedMatrix holds it row-major, unpadded).
    acts.max(n_in as u64 * n_out as u64 * 4 * state_words(device))
}

/// As [`run_classifier`], telling `on_chunk` how many trials each finished chunk held. The data
/// set runs in [`sample_batch`]es where it is large.
pub fn run_classifier_progress(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<ClassifierPoint>, EngineError> {
    let per = sample_batch(be, layers, labels.len() as u32);
    single(run_classifier_group_batches(be, layers, x, labels, std::slice::from_ref(cfg), per, false, on_chunk))
}

/// Several configurations of one network as one plan (sweep points or noise-budget
/// configurations that differ only in noise scales, converter or drift-compensation settings; see `forward`):
/// per configuration, what [`run_classifier`] gives for it alone, bit for bit. `on_chunk` gets
/// each finished chunk's trial count (of every configuration). With `rows`, each point also
/// counts per sample the trials that classify it right (`ClassifierPoint::row_correct`).
pub fn run_classifier_group(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfgs: &[RunConfig],
    rows: bool,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<ClassifierPoint>>, EngineError> {
    let per = sample_batch(be, layers, labels.len() as u32);
    run_classifier_group_batches(be, layers, x, labels, cfgs, per, rows, on_chunk)
}

/// The only configuration's result.
fn single(r: Result<Vec<Vec<ClassifierPoint>>, EngineError>) -> Result<Vec<ClassifierPoint>, EngineError> {
    r.map(|mut v| v.pop().expect("one configuration, one result"))
}

/// As [`run_classifier_progress`] with `per` samples per batch. Each batch of each block of
/// trials programs the same device states (counters are global trial indices) and draws its
/// periphery noise by global vector index, so the counts equal one whole-set run's exactly,
/// whatever `per`; a batch costs one more programming and drift of the weights.
pub fn run_classifier_batches(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfg: &RunConfig,
    per: u32,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<ClassifierPoint>, EngineError> {
    single(run_classifier_group_batches(be, layers, x, labels, std::slice::from_ref(cfg), per, false, on_chunk))
}

/// [`run_classifier_batches`] of several configurations as one plan ([`run_classifier_group`]),
/// with `rows` each sample's right trials.
#[allow(clippy::too_many_arguments)]
pub fn run_classifier_group_batches(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfgs: &[RunConfig],
    per: u32,
    rows: bool,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<ClassifierPoint>>, EngineError> {
    let matrices: Vec<&MappedMatrix> = layers.iter().map(|l| &l.mapped).collect();
    run_distinct(cfgs, &matrices, |cfgs| classifier_batches(be, layers, x, labels, cfgs, per, rows, on_chunk))
}

/// [`run_classifier_group_batches`] of configurations that all differ.
#[allow(clippy::too_many_arguments)]
fn classifier_batches(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    cfgs: &[RunConfig],
    per: u32,
    rows: bool,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<ClassifierPoint>>, EngineError> {
    let batch = labels.len() as u32;
    if per >= batch {
        return classify(be, layers, x, labels, 0, cfgs, rows, on_chunk);
    }
    let cfg = group_lead(cfgs)?;
    let width = layers.first().map_or(0, |l| l.inputs_per_sample()) as usize;
    let points = || cfg.times.iter().map(|&t| ClassifierPoint::new(t, batch)).collect::<Vec<_>>();
    let mut out: Vec<Vec<ClassifierPoint>> = cfgs.iter().map(|_| points()).collect();
    // Blocks of trials, every sample batch of a block, then the next block: progress advances
    // per block and memory stays one batch.
    let block = cfg.max_chunk.clamp(1, 64);
    let mut t0 = 0;
    while t0 < cfg.trials {
        let n = block.min(cfg.trials - t0);
        let subs: Vec<RunConfig> = cfgs.iter().map(|c| RunConfig { trials: n, first_trial: c.first_trial + t0, ..c.clone() }).collect();
        let mut counts = vec![vec![vec![0u32; n as usize]; cfg.times.len()]; cfgs.len()];
        for s0 in (0..batch).step_by(per as usize) {
            let len = per.min(batch - s0) as usize;
            let s0u = s0 as usize;
            let got = classify(be, layers, &x[s0u * width..(s0u + len) * width], &labels[s0u..s0u + len], s0, &subs, rows, &mut |_| {})?;
            for ((cc, gc), oc) in counts.iter_mut().zip(got).zip(out.iter_mut()) {
                for ((c, g), pt) in cc.iter_mut().zip(gc).zip(oc.iter_mut()) {
                    for (a, b) in c.iter_mut().zip(g.correct) {
                        *a += b;
                    }
                    // The batch's rows at their place in the data set.
                    if rows {
                        pt.row_correct.resize(batch as usize, 0);
                        pt.row_correct[s0u..s0u + len].iter_mut().zip(g.row_correct).for_each(|(a, b)| *a += b);
                    }
                }
            }
        }
        for (oc, cc) in out.iter_mut().zip(counts) {
            for (pt, c) in oc.iter_mut().zip(cc) {
                pt.correct.extend(c);
            }
        }
        on_chunk(n);
        t0 += n;
    }
    Ok(out)
}

/// One sample batch (the first at global sample `sample_offset`) of a classifier run, per
/// configuration; with `rows`, each sample's right trials too.
#[allow(clippy::too_many_arguments)]
pub(super) fn classify(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    labels: &[u32],
    sample_offset: u32,
    cfgs: &[RunConfig],
    rows: bool,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<ClassifierPoint>>, EngineError> {
    let batch = labels.len() as u32;
    let lab = be.create("labels", labels.len().max(1));
    be.upload(lab, labels);
    let cfg = group_lead(cfgs)?;
    let (nt, nc) = (cfg.times.len(), cfgs.len());
    let mut out: Vec<Vec<ClassifierPoint>> = cfgs.iter().map(|_| cfg.times.iter().map(|&t| ClassifierPoint::new(t, batch)).collect()).collect();
    // Counts of every configuration and time point of a chunk, [config][t_index][trial]: read
    // back once per chunk, cleared before its first count.
    let correct = std::cell::Cell::new(None::<Buf>);
    // With `rows`, each sample's right trials, [config][t_index][sample]: counted as `correct`,
    // cleared before a chunk's first count and read back with it.
    let row_slots = std::cell::Cell::new(None::<Buf>);
    let fresh = std::cell::Cell::new(true);
    let res = forward(
        be,
        layers,
        x,
        batch,
        sample_offset,
        cfgs,
        on_chunk,
        &mut |be, h, p, ci, ti| {
            let c = correct.get().unwrap_or_else(|| be.create("correct", nc * nt * p.layer.trials as usize));
            correct.set(Some(c));
            let r = rows.then(|| row_slots.get().unwrap_or_else(|| be.create("row correct", nc * nt * batch as usize)));
            row_slots.set(r);
            if fresh.replace(false) {
                be.clear(c);
                r.into_iter().for_each(|r| be.clear(r));
            }
            // The shader's slot is [t_index][trial]: configuration ci's slots follow ci · nt.
            let mut pa = *p;
            pa.layer.t_index = (ci * nt + ti) as u32;
            let wg = be.wg();
            be.dispatch(Stage::Accuracy, &pa, &[h, lab, c], grid(p.layer.trials as u64 * batch as u64, wg));
            if let Some(r) = r {
                // The whole batch in one dispatch: slots [t_index][sample].
                pa.seq.samples = batch;
                pa.seq.sample_offset = 0;
                be.dispatch(Stage::RowCorrect, &pa, &[h, lab, r], grid(p.layer.trials as u64 * batch as u64, wg));
            }
            Ok(())
        },
        &mut |be, n| {
            // The shader's slot stride is this chunk's trial count.
            let n = n as usize;
            let got = be.download(correct.get().expect("a chunk dispatched its counts"))?;
            let got_rows = match row_slots.get() {
                Some(r) => Some(be.download(r)?),
                None => None,
            };
            fresh.set(true);
            for (ci, pts) in out.iter_mut().enumerate() {
                for (ti, pt) in pts.iter_mut().enumerate() {
                    let at = (ci * nt + ti) * n;
                    pt.correct.extend_from_slice(&got[at..at + n]);
                    if let Some(r) = &got_rows {
                        let at = (ci * nt + ti) * batch as usize;
                        pt.row_correct.resize(batch as usize, 0);
                        pt.row_correct.iter_mut().zip(&r[at..at + batch as usize]).for_each(|(a, &b)| *a += b);
                    }
                }
            }
            Ok(())
        },
        None,
    );
    be.free(lab);
    for b in [correct.get(), row_slots.get()].into_iter().flatten() {
        be.free(b);
    }
    res.map(|_| out)
}

/// The last layer's outputs of every trial at every time: `[time][trial][batch][n_out]`
/// (for MVM-error statistics; everything is read back, so keep sizes modest).
pub fn run_outputs(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<f32>>, EngineError> {
    let mut out = vec![Vec::new(); cfg.times.len()];
    run_outputs_each(be, layers, x, batch, cfg, on_chunk, &mut |ti, _, got| {
        out[ti].extend_from_slice(got);
        Ok(())
    })?;
    Ok(out)
}

/// [`run_outputs`] of several configurations as one plan (see `forward`): per configuration,
/// `[time][trial][batch][n_out]`, what [`run_outputs`] gives for it alone, bit for bit.
pub fn run_outputs_group(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfgs: &[RunConfig],
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
    let matrices: Vec<&MappedMatrix> = layers.iter().map(|l| &l.mapped).collect();
    run_distinct(cfgs, &matrices, |cfgs| outputs(be, layers, x, batch, cfgs, on_chunk))
}

/// [`run_outputs_group`] of configurations that all differ.
fn outputs(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfgs: &[RunConfig],
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
    let n_out = layers.last().map(|l| l.mapped.n_out).unwrap_or(0) as usize;
    let mut out: Vec<Vec<Vec<f32>>> = cfgs.iter().map(|c| vec![Vec::new(); c.times.len()]).collect();
    forward(
        be,
        layers,
        x,
        batch,
        0,
        cfgs,
        on_chunk,
        &mut |be, h, p, ci, ti| {
            let got: Vec<f32> = bytemuck::cast_vec(be.download(h)?);
            out[ci][ti].extend_from_slice(&got[..p.layer.trials as usize * batch as usize * n_out]);
            Ok(())
        },
        &mut |_, _| Ok(()),
        None,
    )?;
    Ok(out)
}

/// What [`run_outputs_each`] hands each chunk's outputs to: (time index, trials, outputs).
pub type OutputSink<'a> = dyn FnMut(usize, u32, &[f32]) -> Result<(), EngineError> + 'a;

/// As [`run_outputs`], handing each chunk's outputs to `each(time index, trials, outputs)` as
/// they are read back (`[trial][batch][n_out]` of that chunk, trials in order), so memory stays
/// one chunk whatever the trial count.
pub fn run_outputs_each(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
    each: &mut OutputSink,
) -> Result<(), EngineError> {
    let n_out = layers.last().map(|l| l.mapped.n_out).unwrap_or(0) as usize;
    forward(
        be,
        layers,
        x,
        batch,
        0,
        std::slice::from_ref(cfg),
        on_chunk,
        &mut |be, h, p, _, ti| {
            let got: Vec<f32> = bytemuck::cast_vec(be.download(h)?);
            each(ti, p.layer.trials, &got[..p.layer.trials as usize * batch as usize * n_out])
        },
        &mut |_, _| Ok(()),
        None,
    )
}

/// The inference plan shared by the classifier and output workloads: per chunk, program every
/// layer; per time, drift every layer and run the batch through all layers; then `finish` gets
/// the final activations buffer, the last layer's params, the configuration's index in `cfgs` and
/// the time index; after the last time `chunk_end` gets the chunk's trial count (one readback per
/// chunk).
///
/// Several configurations (`cfgs`: sweep points or noise-budget configurations of one network
/// that differ only in noise scales, converter or drift-compensation settings) run as one plan:
/// one set of buffers, every configuration's outputs per chunk, and each layer's `program` and
/// `drift` dispatched only when the state it would write is not the state its buffers already
/// hold (`StateTags`).
/// The configurations run ordered by their device states, so those that share one program and
/// drift it once per chunk and time. Every number is the one a run of that configuration alone
/// gives: a skipped dispatch would have written the same values, bit for bit.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(super) fn forward(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    batch: u32,
    sample_offset: u32,
    cfgs: &[RunConfig],
    on_chunk: &mut dyn FnMut(u32),
    finish: &mut dyn FnMut(&mut dyn Backend, Buf, &StageParams, usize, usize) -> Result<(), EngineError>,
    chunk_end: &mut dyn FnMut(&mut dyn Backend, u32) -> Result<(), EngineError>,
    mut after_layer: Option<&mut LayerHook>,
) -> Result<(), EngineError> {
    let cfg = group_lead(cfgs)?;
    if after_layer.is_some() && cfgs.len() > 1 {
        return Err(EngineError::Invalid("per-layer diagnostics run one configuration at a time".into()));
    }
    if layers.is_empty() || batch == 0 {
        return Err(EngineError::Invalid("the model needs at least one layer and the data set at least one row".into()));
    }
    check_layer_times(layers.len(), cfg.times.len())?;
    for (i, l) in layers.iter().enumerate() {
        check_indices(&l.mapped, i)?;
        if let Some(c) = l.conv {
            if c.in_c * c.k_h * c.k_w != l.mapped.n_in || c.out_h == 0 || c.out_w == 0 {
                return Err(EngineError::Invalid(format!("layer {i}: a convolution's crossbar rows must be in_c · k_h · k_w and its output non-empty")));
            }
        }
    }
    check_links(layers)?;
    if let Some((i, l)) = layers.iter().enumerate().find(|(_, l)| l.batchnorm.as_ref().is_some_and(|b| b.len() != 2 * l.mapped.n_out as usize)) {
        return Err(EngineError::Invalid(format!(
            "layer {i}: a BatchNorm holds a scale and a shift per output ({}), not {}",
            2 * l.mapped.n_out,
            l.batchnorm.as_ref().map_or(0, Vec::len)
        )));
    }
    if layers.last().is_some_and(|l| l.conv.is_some()) {
        return Err(EngineError::Invalid("the last layer must be a Linear layer (flatten, then Linear): its outputs are the per-sample results".into()));
    }
    if x.len() != batch as usize * layers[0].inputs_per_sample() as usize {
        return Err(EngineError::Invalid(format!("the input holds {} values, not {batch} samples of {}", x.len(), layers[0].inputs_per_sample())));
    }
    // MVMs per trial of each layer: samples, times output pixels for a convolution. The GEMM
    // stages dispatch blocks of at least MVM_MIN_BM of them along y.
    let vectors: Vec<u32> = layers.iter().map(|l| batch.saturating_mul(l.vectors_per_sample())).collect();
    if let Some(&v) = vectors.iter().max().filter(|&&v| v.div_ceil(MVM_MIN_BM) > MAX_GROUPS) {
        return Err(EngineError::Invalid(format!(
            "a layer runs {v} MVMs per trial (samples x output pixels), more than one dispatch holds ({}); use fewer rows of the data set per run ([data] rows)",
            MAX_GROUPS as u64 * MVM_MIN_BM as u64
        )));
    }
    let per_trial_bytes =
        layers.iter().zip(&vectors).map(|(l, &v)| layer_trial_bytes(l.mapped.n_in, l.mapped.n_out, l.mapped.tiles_in, v, &cfg.device)).max().unwrap();
    // `mvm` dispatches trials x tiles workgroups along z.
    let max_tiles = layers.iter().map(|l| l.mapped.n_tiles()).max().unwrap();
    // Outputs a later layer reads or adds through a shortcut stay in buffers of their own.
    let kept: Vec<bool> = (0..layers.len()).map(|j| layers.iter().any(|l| l.links.input == Some(j) || l.links.add == Some(j))).collect();
    // Every per-trial buffer of the chunk together stays within CHUNK_BUDGET_BYTES: chunks as
    // large as memory allows (few dispatches for a small model on a big GPU), on any GPU.
    let all_bytes: u64 = layers
        .iter()
        .map(|l| {
            let m = &l.mapped;
            m.len() as u64 * 4 + state_bytes(m, &cfg.device) + 8 * m.n_tiles() as u64 * 4 * 4
        })
        .sum::<u64>()
        + 5 * per_trial_bytes
        + u64::from(layers.iter().any(|l| l.batchnorm.is_some())) * per_trial_bytes
        + kept.iter().zip(layers).filter(|(k, _)| **k).map(|(_, l)| batch as u64 * l.outputs_per_sample() as u64 * 4).sum::<u64>();
    let budget = (CHUNK_BUDGET_BYTES / all_bytes.max(1)).max(1) as u32;
    let chunk = chunk_size(be, cfg, per_trial_bytes, "one trial's weights or activations")?.min((MAX_GROUPS / max_tiles).max(1)).min(budget);
    let mats: Vec<MatrixBufs> = layers.iter().map(|l| MatrixBufs::new(be, &l.mapped, chunk, cfg)).collect();
    let x0 = be.create("x", x.len());
    be.upload(x0, bytemuck::cast_slice(x));
    let scratch = MvmBufs::new(be, chunk, &layers.iter().zip(&vectors).map(|(l, &v)| (v, &l.mapped)).collect::<Vec<_>>());
    let words = |f: &dyn Fn(&AnalogLayer, u32) -> u32| chunk as usize * layers.iter().zip(&vectors).map(|(l, &v)| f(l, v) as usize).max().unwrap();
    let hlen = words(&|l, v| v * l.mapped.n_out);
    let h = [be.create("h0", hlen), be.create("h1", hlen)];
    // A convolution's unfolded input, and its pooled output (the next layer's input).
    let convs = layers.iter().any(|l| l.conv.is_some());
    let cols = be.create("cols", if convs { words(&|l, v| if l.conv.is_some() { v * l.mapped.n_in } else { 0 }) } else { 1 });
    let pooled = be.create("pooled", if convs { words(&|l, _| if l.conv.is_some() { batch * l.outputs_per_sample() } else { 0 }) } else { 1 });
    // A digital BatchNorm's input (the MVM's outputs), and every such layer's γ then β.
    let norms = layers.iter().any(|l| l.batchnorm.is_some());
    let pre_norm = be.create("pre-norm", if norms { hlen } else { 1 });
    let norm_params: Vec<Option<Buf>> = layers
        .iter()
        .map(|l| {
            l.batchnorm.as_ref().map(|gb| {
                let b = be.create("batchnorm", gb.len());
                be.upload(b, bytemuck::cast_slice(gb));
                b
            })
        })
        .collect();
    let keep: Vec<Option<Buf>> =
        layers.iter().zip(&kept).map(|(l, &k)| k.then(|| be.create("kept", chunk as usize * batch as usize * l.outputs_per_sample() as usize))).collect();
    let biases: Vec<Buf> = layers
        .iter()
        .map(|l| {
            let bb = be.create("bias", l.bias.len());
            be.upload(bb, bytemuck::cast_slice(&l.bias));
            bb
        })
        .collect();
    let wg = be.wg();
    // One layer's params at one time, as its `drift` and MVMs read them.
    let layer_params = |c: &RunConfig, li: usize, n: u32, offset: u32, ti: usize| {
        let l = &layers[li];
        let mut p = params(c, li as u32, &l.mapped, n, offset, vectors[li], ti as u32, cfg.times[ti]);
        p.layer.x_per_trial = u32::from(li > 0);
        p.layer.activation = l.mvm_activation();
        p.layer.vector_offset = sample_offset * l.vectors_per_sample();
        if let Some(cv) = l.conv {
            p.conv = ConvParams { samples: batch, ..cv };
        }
        p
    };
    let program_params = |c: &RunConfig, li: usize, n: u32, offset: u32| params(c, li as u32, &layers[li].mapped, n, offset, vectors[li], 0, 0.0);
    // Configurations that drift alike run side by side at each time (drift once, then each
    // one's MVMs); a run of its own is the single group.
    let n0 = chunk.min(cfg.trials);
    let groups = sharing_groups(cfgs, |c| {
        let prog = (0..layers.len()).flat_map(|li| program_tag(&program_params(c, li, n0, 0))).collect();
        let drift = (0..layers.len()).flat_map(|li| drift_tag(&layer_params(c, li, n0, 0, 0))).collect();
        (prog, drift)
    });
    let mut tags = StateTags::new(layers.len());
    let mut offset = 0;
    while offset < cfg.trials {
        let n = chunk.min(cfg.trials - offset);
        tags.forget();
        for group in &groups {
            for li in 0..layers.len() {
                let p = program_params(&cfgs[group[0]], li, n, offset);
                if tags.program(li, &p) {
                    record_program(be, &p, &layers[li].mapped, &mats[li]);
                }
            }
            for ti in 0..cfg.times.len() {
                for &ci in group {
                    let c = &cfgs[ci];
                    let mut input = x0;
                    let mut last = None;
                    for (li, l) in layers.iter().enumerate() {
                        if let Some(j) = l.links.input {
                            input = keep[j].expect("a linked layer's output is kept");
                        }
                        let m = &l.mapped;
                        let b = &mats[li];
                        let p = layer_params(c, li, n, offset, ti);
                        match tags.drift(li, &p) {
                            Drift::Held => {}
                            Drift::Record => record_drift(be, &p, m, b),
                            Drift::BaselineFirst => {
                                // Another configuration's drift replaced this one's GDC baseline:
                                // the first time point again (it writes the baseline), then this one.
                                record_drift(be, &layer_params(c, li, n, offset, 0), m, b);
                                record_drift(be, &p, m, b);
                            }
                        }
                        // A convolution multiplies its unfolded input (once for a shared first input).
                        let mvm_in = if l.conv.is_some() {
                            let mut pc = p;
                            if li == 0 {
                                pc.layer.trials = 1;
                            }
                            be.dispatch(Stage::Im2col, &pc, &[input, cols], grid(pc.layer.trials as u64 * vectors[li] as u64 * m.n_in as u64, wg));
                            cols
                        } else {
                            input
                        };
                        let pools = p.conv.pool_kind != 0;
                        let hout = keep[li].filter(|_| !pools).unwrap_or(h[li % 2]);
                        let mvm_out = if norm_params[li].is_some() { pre_norm } else { hout };
                        record_layer(be, &p, m, b, &scratch, mvm_in, biases[li], mvm_out);
                        if let Some(hook) = after_layer.as_mut() {
                            hook(be, LayerBufs { layer: li, input: mvm_in, output: mvm_out, y: scratch.y, bm_level: scratch.bm_level }, &p, ti)?;
                        }
                        if let Some(gb) = norm_params[li] {
                            // The BatchNorm per channel (NHWC rows of n_out), then the activation
                            // unless an addition comes first.
                            let mut pn = p;
                            pn.layer.activation = if l.links.add.is_some() { 0 } else { l.activation };
                            pn.seq.rows = n * vectors[li];
                            pn.seq.width_in = m.n_out;
                            pn.seq.mode = 1;
                            be.dispatch(Stage::Layernorm, &pn, &[pre_norm, gb, hout], grid(pn.seq.rows as u64, wg));
                        }
                        if let Some(j) = l.links.add {
                            // The shortcut's output added, then the layer's activation.
                            let mut pr = p;
                            pr.layer.activation = l.activation;
                            pr.seq.rows = n * vectors[li];
                            pr.seq.width_in = m.n_out;
                            if let (Some(z), Some([c, h, w])) = (l.links.add_pad, layers[j].output_maps()) {
                                pr.conv.add_stride = z.stride as u32;
                                (pr.conv.add_c, pr.conv.add_h, pr.conv.add_w, pr.conv.add_before) = (c as u32, h as u32, w as u32, z.before as u32);
                            }
                            let shortcut = keep[j].expect("an added layer's output is kept");
                            be.dispatch(Stage::Residual, &pr, &[shortcut, hout], grid(n as u64 * vectors[li] as u64 * m.n_out as u64, wg));
                        }
                        input = hout;
                        if pools {
                            let items = n as u64 * batch as u64 * (p.conv.pool_h * p.conv.pool_w * m.n_out) as u64;
                            let dest = keep[li].unwrap_or(pooled);
                            be.dispatch(Stage::Pool, &p, &[hout, dest], grid(items, wg));
                            input = dest;
                        }
                        last = Some(p);
                    }
                    finish(be, input, &last.unwrap(), ci, ti)?;
                }
            }
        }
        chunk_end(be, n)?;
        offset += n;
        on_chunk(n);
    }
    for m in &mats {
        m.free(be);
    }
    scratch.free(be);
    for bb in [x0, h[0], h[1], cols, pooled, pre_norm].into_iter().chain(biases).chain(keep.into_iter().flatten()).chain(norm_params.into_iter().flatten()) {
        be.free(bb);
    }
    Ok(())
}

/// Checks a model's shortcuts ([`Links`]) and that every layer reads what its source hands on:
/// links point back to earlier layers, the first layer reads the data set, an added output has
/// the shape of the layer's own output before pooling (the same channels and image for a
/// convolution), and every output but the last is read by a later layer.
pub fn check_links(layers: &[AnalogLayer]) -> Result<(), EngineError> {
    let bad = |s: String| Err(EngineError::Invalid(s));
    let mut read = vec![false; layers.len()];
    for (i, l) in layers.iter().enumerate() {
        for (what, j) in [("reads", l.links.input), ("adds", l.links.add)] {
            match j {
                Some(_) if i == 0 => return bad(format!("layer 0 {what} another layer's output; the first layer reads the data set and adds nothing")),
                Some(j) if j >= i => return bad(format!("layer {i} {what} layer {j}'s output; a shortcut comes from an earlier layer")),
                _ => {}
            }
        }
        if l.links.add_pad.is_some() && (l.links.add.is_none() || l.conv.is_none()) {
            return bad(format!(
                "layer {i} has a zero-padding shortcut but {}; it shapes the maps a convolution adds",
                if l.conv.is_none() { "is no convolution" } else { "adds nothing" }
            ));
        }
        if i == 0 {
            continue;
        }
        let src = l.links.input.unwrap_or(i - 1);
        read[src] = true;
        if layers[src].outputs_per_sample() != l.inputs_per_sample() {
            return bad(format!("layer {src} hands on {} values per sample but layer {i} reads {}", layers[src].outputs_per_sample(), l.inputs_per_sample()));
        }
        if let Some(j) = l.links.add {
            read[j] = true;
            let s = &layers[j];
            let own = l.conv.map(|c| [l.mapped.n_out as usize, c.out_h as usize, c.out_w as usize]);
            let added = match (l.links.add_pad, s.output_maps()) {
                (Some(z), _) if z.stride == 0 => return bad(format!("layer {i}'s zero-padding shortcut has stride 0; give 1 or more")),
                (Some(z), Some(maps)) => Some(z.shape(maps)),
                (_, maps) => maps,
            };
            let same = match (own, added) {
                (None, None) => l.mapped.n_out == s.mapped.n_out,
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            if !same {
                let describe = |maps: Option<[usize; 3]>, width: u32| maps.map_or(format!("{width} values"), |[c, h, w]| format!("{c} x {h} x {w} maps"));
                let padded = if l.links.add_pad.is_some() { " through its zero-padding shortcut" } else { "" };
                return bad(format!(
                    "layer {i} adds layer {j}'s output{padded}, {}, to its own, {}; a shortcut adds an output of the same shape",
                    describe(added, s.mapped.n_out),
                    describe(own, l.mapped.n_out),
                ));
            }
        }
    }
    if let Some(j) = read.iter().take(layers.len().saturating_sub(1)).position(|r| !r) {
        return bad(format!("layer {j}'s output is read by no later layer; only the last layer's output is the model's"));
    }
    Ok(())
}
