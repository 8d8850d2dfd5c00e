//! Training the shipped transformers: hyper-parameters ([`TransformerTrainConfig`]), the task's
//! data, Adam with warm-up and decay, gradient clipping, and hardware-aware training through the
//! shared noise injector (src/train/injector.rs).

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::*;

/// Hyper-parameters of [`train_transformer`]; [`TransformerTrainConfig::shipped`] gives the
/// shipped models' ones.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerTrainConfig {
    pub task: Task,
    pub attention: Attention,
    pub dims: Dims,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate of Adam (β 0.9, 0.999, ε 1e-8).
    pub lr: f32,
    /// Steps of linear warm-up from 0 to `lr`; then linear decay to 0 at the last step.
    pub warmup: usize,
    /// Largest global gradient norm (larger gradients are scaled down to it).
    pub clip: f32,
    /// Seed of the initialisation and the shuffles (the data have their own seeds).
    pub seed: u64,
    /// The ListOps generator (task `listops`).
    pub listops: ListOpsConfig,
}

impl TransformerTrainConfig {
    /// The configuration of the shipped model of `task` with `attention`.
    pub fn shipped(task: Task, attention: Attention) -> TransformerTrainConfig {
        let listops = ListOpsConfig::default();
        let dims = match task {
            Task::ListOps => Dims::lra(listops::LISTOPS_VOCAB, listops.max_len),
            Task::Digits => Dims::lra(listops::DIGITS_VOCAB, crate::train::DIGITS_FEATURES),
            Task::Cicero => Dims::lra_lm(crate::train::text::TEXT_VOCAB, crate::train::text::TEXT_WIDTH),
            Task::Kvqa => Dims::lra_span(crate::train::kvqa::KVQA_VOCAB, crate::train::kvqa::KVQA_WIDTH),
        };
        let (epochs, batch_size) = match task {
            Task::ListOps => (10, 32),
            Task::Digits => (20, 32),
            Task::Cicero => (CICERO_EPOCHS, 32),
            Task::Kvqa => (KVQA_EPOCHS, 32),
        };
        TransformerTrainConfig { task, attention, dims, epochs, batch_size, lr: 1e-3, warmup: 200, clip: 1.0, seed: 20_261_205, listops }
    }
}

/// Epochs of the shipped character-level language model (chosen on the validation windows: 60
/// epochs give a validation perplexity of 5.82, 30 give 6.59).
const CICERO_EPOCHS: usize = 60;

/// Epochs of the shipped question-answering reader (chosen on the validation rows: 20 epochs
/// answer all 500 exactly, 2 epochs 4 %).
const KVQA_EPOCHS: usize = 20;

/// Where `train-transformer` writes the model of `task` and `attention` by default.
pub fn default_out(task: Task, attention: Attention) -> String {
    match (task, attention) {
        (Task::ListOps, a) => format!("experiments/models/listops_transformer_{}.safetensors", a.name()),
        (Task::Digits, Attention::Softmax) => "experiments/models/digits_seq_transformer.safetensors".into(),
        (Task::Digits, Attention::Kernel) => "experiments/models/digits_seq_transformer_kernel.safetensors".into(),
        (Task::Cicero, a) => format!("experiments/models/cicero_lm_{}.safetensors", a.name()),
        (Task::Kvqa, a) => format!("experiments/models/kvqa_{}.safetensors", a.name()),
    }
}

/// The `training` metadata: the command that rebuilds the model of a shipped configuration, else
/// the whole configuration.
pub fn training_command(cfg: &TransformerTrainConfig) -> String {
    if *cfg == TransformerTrainConfig::shipped(cfg.task, cfg.attention) {
        format!(
            "cargo run --release -- train-transformer --task {} --attention {} --out {}",
            cfg.task.name(),
            cfg.attention.name(),
            default_out(cfg.task, cfg.attention)
        )
    } else {
        format!("src/train/transformer/train.rs train_transformer with {cfg:?}")
    }
}

/// The data of `cfg.task`: (train, test). ListOps is generated from its seeds; the digits come
/// from `digits` (the digits CSV's rows, split as the other trainers split them); Cicero's
/// windows from `text` ([`crate::train::text::splits`]).
pub fn task_data(cfg: &TransformerTrainConfig, digits: Option<&crate::train::Dataset>, text: Option<&str>) -> Result<(SeqData, SeqData), TrainError> {
    match cfg.task {
        Task::Cicero => {
            let text = text.ok_or_else(|| TrainError::Training("the cicero task needs its text (--text)".into()))?;
            crate::train::text::splits(text, cfg.dims.max_len).map(|(train, _, test)| (train, test))
        }
        Task::ListOps => {
            let (train, _, test) = listops::splits(&cfg.listops);
            Ok((train, test))
        }
        Task::Kvqa => {
            let (train, _, test) = crate::train::kvqa::splits();
            Ok((train, test))
        }
        Task::Digits => {
            let d = digits.ok_or_else(|| TrainError::Data("the digits task needs the digits CSV".into()))?;
            let (train, test) = crate::train::split_digits(d);
            Ok((listops::digits_as_sequences(&train), listops::digits_as_sequences(&test)))
        }
    }
}

impl Net<f32> {
    /// Every parameter tensor by its state-dict name (and the kernel's feature projection); the
    /// crossbar matrices (Q/K/V, O, the FFN pair, the classifier and the projection) carry their
    /// shapes. The embedding is a lookup table, not a crossbar. The projection is `fixed`: it gets
    /// no gradient, so it draws weight noise but is never clipped.
    pub fn params_mut(&mut self) -> Vec<Param<'_>> {
        let names = param_names(&self.dims);
        let d = self.dims;
        let mut out: Vec<Param<'_>> = names
            .into_iter()
            .zip(self.params.iter_mut())
            .enumerate()
            .map(|(i, ((name, shape), data))| {
                let matrix = matches!(i, IN_PROJ | OUT_PROJ_W | LINEAR1_W | LINEAR2_W | CLS0_W | CLS2_W).then(|| (shape[0], shape[1]));
                Param { name: name.to_string(), data, matrix, fixed: false }
            })
            .collect();
        if self.attention == Attention::Kernel {
            out.push(Param { name: FEATURE_PROJECTION.into(), data: &mut self.projection, matrix: Some((d.features / 2, d.d_head())), fixed: true });
        }
        out
    }
}

/// Adam's moments and step count.
struct Adam {
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    b1t: f32,
    b2t: f32,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

/// Trains a network on `train` (see the module header). Deterministic.
pub fn train_transformer(train: &SeqData, cfg: &TransformerTrainConfig) -> Net<f32> {
    train_transformer_with(train, cfg, |_, _| {})
}

/// [`train_transformer`], calling `epoch_done(epoch, mean training loss)` after every epoch.
pub fn train_transformer_with(train: &SeqData, cfg: &TransformerTrainConfig, epoch_done: impl FnMut(usize, f64)) -> Net<f32> {
    train_transformer_hwa(train, cfg, &TrainingConfig::default(), epoch_done).expect("a floating-point run reads no file")
}

/// [`train_transformer_with`] with a `[training]` section (see [`crate::train::hwa`]): weight
/// noise on the crossbar matrices (and the feature projection), the DAC on every crossbar input
/// (the feature projection's too) with a straight-through gradient, output noise after every
/// linear layer, clipping of the trained matrices (not the fixed projection) and fine-tuning. A
/// training that diverges (a non-finite mean loss in an epoch) is an error. The default section
/// gives [`train_transformer_with`]'s weights bit for bit.
pub fn train_transformer_hwa(
    train: &SeqData,
    cfg: &TransformerTrainConfig,
    hwa: &TrainingConfig,
    mut epoch_done: impl FnMut(usize, f64),
) -> Result<Net<f32>, TrainError> {
    assert!(!train.is_empty() && cfg.batch_size > 0, "bad training configuration {cfg:?}");
    hwa.refuse_input_range("transformer")?;
    if cfg.attention == Attention::Kernel && hwa.max_in < cfg.dims.d_head() {
        return Err(TrainError::Training(format!(
            "training.max_in = {}: the kernel feature projection reads one head's {} values as one tile; set max_in >= {}",
            hwa.max_in,
            cfg.dims.d_head(),
            cfg.dims.d_head()
        )));
    }
    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    let mut net: Net<f32> = Net::init(cfg.dims, cfg.attention, &mut rng);
    if let Some(path) = &hwa.init {
        load_params(path, net.params_mut())?;
    }
    let mut inj = Injector::new(hwa, cfg.seed);
    let cfg = &TransformerTrainConfig { epochs: hwa.epochs.unwrap_or(cfg.epochs), lr: hwa.lr.unwrap_or(cfg.lr), ..cfg.clone() };
    let mut g = net.zero_grads();
    let mut adam = Adam { m: net.zero_grads(), v: net.zero_grads(), b1t: 1.0, b2t: 1.0 };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let steps = (cfg.epochs * train.len().div_ceil(cfg.batch_size)).max(1);
    let mut k = 0usize;
    for epoch in 0..cfg.epochs {
        crate::train::shuffle(&mut order, &mut rng);
        let mut loss_sum = 0.0f64;
        for batch in order.chunks(cfg.batch_size) {
            for t in g.iter_mut() {
                t.fill(0.0);
            }
            // This batch's noisy weights: the gradient is taken there and applied to the clean ones.
            let noisy_net = inj.perturbs_weights().then(|| {
                let mut c = net.clone();
                inj.perturb(c.params_mut());
                c
            });
            let fwd = noisy_net.as_ref().unwrap_or(&net);
            let prep = fwd.prepare();
            let inv_b = 1.0 / batch.len() as f32;
            for &i in batch {
                let tr = fwd.forward(&prep, train.seq(i), &mut inj);
                loss_sum += fwd.backward(train.seq(i), &tr, train.labels[i] as usize, inv_b, &mut g) as f64;
            }
            let norm = g.iter().flatten().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            let clip = if norm > cfg.clip as f64 { (cfg.clip as f64 / norm) as f32 } else { 1.0 };
            let lr = if k < cfg.warmup {
                cfg.lr * (k + 1) as f32 / cfg.warmup as f32
            } else {
                cfg.lr * (steps - k) as f32 / (steps - cfg.warmup.min(steps - 1)) as f32
            };
            adam.b1t *= BETA1;
            adam.b2t *= BETA2;
            let (c1, c2) = (1.0 - adam.b1t, 1.0 - adam.b2t);
            for ((p, gp), (m, v)) in net.params.iter_mut().zip(&g).zip(adam.m.iter_mut().zip(adam.v.iter_mut())) {
                for (((p, &gr), m), v) in p.iter_mut().zip(gp).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let gr = gr * clip;
                    *m = BETA1 * *m + (1.0 - BETA1) * gr;
                    *v = BETA2 * *v + (1.0 - BETA2) * gr * gr;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + ADAM_EPS);
                }
            }
            // The trained matrices only: the fixed feature projection stays as drawn or loaded.
            inj.clip(net.params_mut());
            k += 1;
        }
        let loss = loss_sum / train.len() as f64;
        epoch_done(epoch, loss);
        if !loss.is_finite() {
            return Err(TrainError::Training(format!(
                "training diverged: the mean training loss of epoch {} is {loss}; nothing written; train with a smaller learning rate (training.lr or --lr, now {})",
                epoch + 1,
                cfg.lr
            )));
        }
    }
    Ok(net)
}
