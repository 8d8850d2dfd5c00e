//! The seeded encoders of `aimc bench` cases (j) and (l) and their one timed pass: a
//! BERT-base-sized encoder (Devlin et al. 2019: 12 layers, hidden 768, 12 heads, FFN 3072) and
//! MobileBERT at its published shapes (Sun et al., ACL 2020, Table 1), built from counter-based
//! seeded weights so every run times the same network; FLOP/s against the floor of
//! [`super::Counts`]' terms (the FLOPs at the FMA peak, the device state and output noise at the
//! Philox and transcendental rates).

use super::*;

/// Seeded analog layers for the encoder cases: uniform weights of scale 1/√fan_in from one
/// counter-based stream per layer, zero biases, default tiles.
struct Seeded {
    mats: Vec<AnalogLayer>,
}

impl Seeded {
    fn scaled(n: usize, fan_in: usize, stream: u64) -> Vec<f32> {
        let s = 1.0 / (fan_in as f32).sqrt();
        crate::rng::uniform_signed(n, 0xB3_27 + stream).into_iter().map(|v| v * s).collect()
    }

    /// A `rows × cols` layer with activation code `act`; its index.
    fn add(&mut self, rows: usize, cols: usize, act: u32) -> usize {
        let i = self.mats.len();
        let w = Self::scaled(rows * cols, cols, i as u64);
        self.mats.push(AnalogLayer {
            mapped: MappedMatrix::new(&w, rows as u32, cols as u32, TileShape::default(), 1.0),
            bias: vec![0.0; rows],
            activation: act,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        });
        i
    }

    /// `layers` dense layers of width `d`: Q, K, V, O and the feed-forward pair `d → dff → d`
    /// (GELU), unit norms.
    fn dense_blocks(&mut self, layers: usize, d: usize, dff: usize) -> Vec<plan::SeqBlock> {
        (0..layers)
            .map(|_| {
                let (q, k, v, o) = (self.add(d, d, 0), self.add(d, d, 0), self.add(d, d, 0), self.add(d, d, 0));
                let (ffn1, ffn2) = (self.add(dff, d, 4), self.add(d, dff, 0));
                plan::SeqBlock::dense(q, k, v, o, ffn1, ffn2, unit_norm(d), unit_norm(d))
            })
            .collect()
    }

    /// The model around `blocks` and a 2-class `head`: a `[vocab][d]` table, zero positions, a
    /// unit embedding norm, post-norm, mean pooling, softmax attention.
    fn model(self, d: usize, heads: u32, seq: usize, vocab: usize, blocks: Vec<plan::SeqBlock>, head: usize) -> plan::SeqModel {
        plan::SeqModel {
            layers: self.mats,
            d_model: d as u32,
            heads,
            seq: seq as u32,
            vocab: vocab as u32,
            embedding: Self::scaled(vocab * d, 1, 99),
            embed_width: d as u32,
            embed_proj: None,
            no_norm: false,
            positions: vec![0.0; seq * d],
            embed_scale: 1.0,
            embed_norm: Some(unit_norm(d)),
            eps: 1e-12,
            blocks,
            norm_first: false,
            final_norm: None,
            pooling: 0,
            head: vec![head],
            attention: plan::SeqAttention::Softmax,
            causal: false,
            next_token: false,
            head_out: false,
            row_counts: false,
            regression: false,
            span: None,
        }
    }
}

/// A norm's parameters γ = 1, β = 0 over `w` features.
fn unit_norm(w: usize) -> Vec<f32> {
    std::iter::repeat_n(1.0, w).chain(std::iter::repeat_n(0.0, w)).collect()
}

/// A seeded encoder of `layers` layers (hidden `d`, `heads` heads, FFN `dff`, GELU), mean pooling
/// and a 2-class head, over `seq`-token sequences: the shape of BERT-base when (12, 768, 12, 3072).
pub fn seeded_encoder(layers: usize, d: usize, heads: u32, dff: usize, seq: usize, vocab: usize) -> plan::SeqModel {
    let mut sd = Seeded { mats: Vec::new() };
    let blocks = sd.dense_blocks(layers, d, dff);
    let head = sd.add(2, d, 0);
    sd.model(d, heads, seq, vocab, blocks, head)
}

/// A seeded causal language model of `layers` pre-LN layers (hidden `d`, `heads` heads, FFN `dff`,
/// GELU, a final norm) with a next-token head `vocab × d` on crossbars at every token: the shape
/// of GPT-2 small (Radford et al. 2019) when (12, 768, 12, 3072, 50257).
pub fn seeded_language_model(layers: usize, d: usize, heads: u32, dff: usize, seq: usize, vocab: usize) -> plan::SeqModel {
    let mut sd = Seeded { mats: Vec::new() };
    let blocks = sd.dense_blocks(layers, d, dff);
    let head = sd.add(vocab, d, 0);
    plan::SeqModel { norm_first: true, final_norm: Some(unit_norm(d)), causal: true, next_token: true, ..sd.model(d, heads, seq, vocab, blocks, head) }
}

/// A seeded MobileBERT (Sun et al., ACL 2020, Table 1 with `layers` layers: hidden 512,
/// bottleneck 128 shared by Q and K, 4 heads, four feed-forward pairs of 512 with ReLU, the
/// trigram embedding of 128, NoNorm) over `seq`-token sequences, CLS pooling and a 2-class head,
/// in the layout Hugging Face's `MobileBertLayer` runs.
pub fn seeded_mobilebert(layers: usize, seq: usize, vocab: usize) -> plan::SeqModel {
    use crate::engine::plan::{SeqBlock, SeqBottleneck, SeqFfn};
    let (h, b, i, e, ffns) = (512usize, 128usize, 512usize, 128usize, 4usize);
    let mut sd = Seeded { mats: Vec::new() };
    let proj = sd.add(h, 3 * e, 0);
    let blocks = (0..layers)
        .map(|_| {
            let (input, shared) = (sd.add(b, h, 0), sd.add(b, h, 0));
            let (q, k, v, o) = (sd.add(b, b, 0), sd.add(b, b, 0), sd.add(b, h, 0), sd.add(b, b, 0));
            let extra_ffns = (1..ffns).map(|_| SeqFfn { ffn1: sd.add(i, b, 1), ffn2: sd.add(b, i, 0), norm: unit_norm(b) }).collect();
            let (ffn1, ffn2) = (sd.add(i, b, 1), sd.add(b, i, 0));
            let output = sd.add(h, b, 0);
            SeqBlock {
                bottleneck: Some(SeqBottleneck {
                    input,
                    input_norm: unit_norm(b),
                    shared: Some((shared, unit_norm(b))),
                    inner_attention: false,
                    output,
                    output_norm: unit_norm(h),
                }),
                extra_ffns,
                ..SeqBlock::dense(q, k, v, o, ffn1, ffn2, unit_norm(b), unit_norm(b))
            }
        })
        .collect();
    let head = sd.add(2, h, 0);
    plan::SeqModel {
        embedding: Seeded::scaled(vocab * e, 1, 99),
        embed_width: e as u32,
        embed_proj: Some((proj, 3)),
        no_norm: true,
        pooling: 1,
        ..sd.model(h, 4, seq, vocab, blocks, head)
    }
}

/// SQuAD v1.1's dev set as BERT reads it: 10,570 questions cut into 10,784 windows of 384 tokens
/// with a document stride of 128 (Hugging Face run_qa's evaluation features, uncased WordPiece).
const SQUAD_DEV_WINDOWS: f64 = 10_784.0;

/// Case (j): one noisy pass of a BERT-base-sized encoder (12 layers, hidden 768, 12 heads, FFN
/// 3072, 384-token sequences, PCM with GDC at one time): sequences per second and FLOP/s against
/// the FMA peak. aihwkit users report 17–21 minutes for SQuAD's dev set on a GPU: its 10,570
/// questions in `SQUAD_DEV_WINDOWS` windows of 384 tokens; the case prints the time this rate
/// gives for them. `--size small`: 2 layers, 2 sequences.
pub(super) fn bert_case(be: &mut dyn Backend, small: bool, ceil: &Ceilings, show_breakdown: bool) -> Result<Case, EngineError> {
    let (layers, seqs) = if small { (2usize, 2usize) } else { (12, 64) };
    let m = seeded_encoder(layers, 768, 12, 3072, 384, 1000);
    let p = encoder_pass(be, &m, seqs, ceil, show_breakdown)?;
    let squad = SQUAD_DEV_WINDOWS * p.seconds / seqs as f64 * (12.0 / layers as f64);
    let note = format!(
        "(j) {layers}-layer encoder: {:.1} GFLOP per sequence, {seqs} sequences in {:.2} s; at this rate SQuAD dev (10,784 windows of 384 tokens, 12 layers) takes {squad:.0} s",
        p.work / seqs as f64 / 1e9,
        p.seconds
    );
    Ok(p.case("(j) BERT-base-sized pass", format!("{layers} layers, 768/12/3072, 384 tokens, {seqs} seqs"), note))
}

/// One timed noisy pass of a seeded transformer over `seqs` full-length sequences.
struct EncoderPass {
    seconds: f64,
    /// FLOPs of the pass ([`plan::SeqModel::flops_per_sequence`]).
    work: f64,
    /// The floor: the FLOPs at the FMA peak, the device state and output noise at the Philox and
    /// transcendental rates.
    floor_seconds: f64,
    profile: Option<crate::engine::profile::Profile>,
}

impl EncoderPass {
    /// The case's row: FLOP/s against the floor.
    fn case(self, name: &'static str, size: String, note: String) -> Case {
        Case {
            name,
            size,
            rate: self.work / self.seconds,
            floor: Some(self.work / self.floor_seconds),
            unit: "FLOP/s",
            target: None,
            profile: self.profile,
            note: Some(note),
        }
    }
}

/// Cases (j), (l) and (m): `m` on `seqs` sequences of its full length (PCM with GDC at one time),
/// after a one-sequence warm-up (pipelines), with the per-stage breakdown when asked.
fn encoder_pass(be: &mut dyn Backend, m: &plan::SeqModel, seqs: usize, ceil: &Ceilings, show_breakdown: bool) -> Result<EncoderPass, EngineError> {
    let (seq, vocab) = (m.seq as usize, m.vocab as usize);
    let tokens: Vec<u32> = (0..seqs * seq).map(|i| (i * 7919 % vocab) as u32).collect();
    let (lengths, labels) = (vec![seq as u32; seqs], vec![0u32; seqs]);
    let c = cfg(1, DeviceModel::pcm(), Gdc::Readout);
    plan::run_transformer(be, m, &tokens[..seq], &lengths[..1], &labels[..1], &c, &mut |_| {})?;
    let start = std::time::Instant::now();
    plan::run_transformer(be, m, &tokens, &lengths, &labels, &c, &mut |_| {})?;
    be.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    let profile = breakdown(be, show_breakdown, &mut |be| plan::run_transformer(be, m, &tokens, &lengths, &labels, &c, &mut |_| {}).map(|_| ()))?;
    let work = m.flops_per_sequence(seq as f64) * seqs as f64;
    let noise_blocks = seqs as f64 * m.noise_blocks_per_sequence();
    // A language model's `token_nll`: one exponential per logit (vocabulary × token).
    let nll_exps = if m.next_token { (seqs * seq * vocab) as f64 } else { 0.0 };
    let floor_seconds = work / ceil.flops
        + (m.weights() as f64 * DEVICE_STATE.philox_blocks + noise_blocks) / ceil.philox
        + (m.weights() as f64 * DEVICE_STATE.transcendentals + noise_blocks * NOISE_BLOCK_TRANSCENDENTALS + nll_exps) / ceil.exps;
    Ok(EncoderPass { seconds, work, floor_seconds, profile })
}

/// Case (m): one noisy pass of a GPT-2-small-sized causal language model (12 pre-LN layers,
/// hidden 768, 12 heads, FFN 3072, the 50,257-token head on crossbars at every one of 128 tokens,
/// PCM with GDC at one time): FLOP/s against the floor, and predicted tokens per second.
/// `--size small`: 2 layers, a vocabulary of 8192, 2 sequences.
pub(super) fn language_model_case(be: &mut dyn Backend, small: bool, ceil: &Ceilings, show_breakdown: bool) -> Result<Case, EngineError> {
    let (layers, vocab, seqs) = if small { (2usize, 8192usize, 2usize) } else { (12, 50_257, 8) };
    let m = seeded_language_model(layers, 768, 12, 3072, 128, vocab);
    let p = encoder_pass(be, &m, seqs, ceil, show_breakdown)?;
    let note = format!(
        "(m) {layers}-layer language model, vocabulary {vocab}: {:.1} GFLOP per sequence (the head {:.0} %), {:.1} M analog weights, {seqs} sequences of 128 tokens in {:.2} s: {:.0} predicted tokens/s",
        p.work / seqs as f64 / 1e9,
        100.0 * 2.0 * 128.0 * 768.0 * vocab as f64 / m.flops_per_sequence(128.0),
        m.weights() as f64 / 1e6,
        p.seconds,
        (seqs * 127) as f64 / p.seconds
    );
    Ok(p.case("(m) language-model pass", format!("{layers} layers, 768/12/3072, vocab {vocab}, 128 tokens, {seqs} seqs"), note))
}

/// Case (l): one noisy pass of MobileBERT at its published shapes (24 layers, 128-token
/// sequences, PCM with GDC at one time): sequences per second and FLOP/s against the floor (the
/// FMA peak for the FLOPs, Philox and transcendentals for the device state and output noise).
/// The note prints the time this rate gives for GLUE's SST-2 dev set (872 sentences) per trial.
/// `--size small`: 2 layers, 2 sequences.
pub(super) fn mobilebert_case(be: &mut dyn Backend, small: bool, ceil: &Ceilings, show_breakdown: bool) -> Result<Case, EngineError> {
    let (layers, seqs) = if small { (2usize, 2usize) } else { (24, 64) };
    let m = seeded_mobilebert(layers, 128, 1000);
    let p = encoder_pass(be, &m, seqs, ceil, show_breakdown)?;
    let sst2 = 872.0 * p.seconds / seqs as f64 * (24.0 / layers as f64);
    let note = format!(
        "(l) {layers}-layer MobileBERT: {:.2} GFLOP per sequence, {:.1} M analog weights, {seqs} sequences in {:.2} s; at this rate one trial of SST-2 dev (872 sentences, 24 layers) takes {sst2:.1} s",
        p.work / seqs as f64 / 1e9,
        m.weights() as f64 / 1e6,
        p.seconds
    );
    Ok(p.case("(l) MobileBERT pass", format!("{layers} layers, 512/128/4x512, 128 tokens, {seqs} seqs"), note))
}
