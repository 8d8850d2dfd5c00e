//! Networks as op lists for the edge-NPU cost model ([`super::npu`]): MobileBERT (Sun et al.,
//! "MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited Devices", ACL 2020, Table 1,
//! MobileBERT column, in the layout of its public implementation: Hugging Face
//! `MobileBertModel` with `key_query_shared_bottleneck`, `trigram_input`, `NoNorm` and ReLU) and a
//! plain encoder described by its shapes (the `transformer` workload's networks: Vaswani et al.
//! 2017; kernel attention as FAVOR+, Choromanski et al., ICLR 2021).
//!
//! Matrix names follow the transformer workload's (`layers.N.q`, `head.K`) so the same
//! `model.digital`-style patterns select them.

use super::npu::{Op, UnitKind};
use serde::{Deserialize, Serialize};

/// MobileBERT's shapes (Table 1 of Sun et al., MobileBERT column).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileBert {
    /// Layers (24).
    pub layers: u32,
    /// Inter-block hidden size (512).
    pub hidden: u32,
    /// Intra-block bottleneck (128).
    pub bottleneck: u32,
    /// Attention heads (4).
    pub heads: u32,
    /// Feed-forward intermediate size (512).
    pub intermediate: u32,
    /// Stacked feed-forward networks per layer (4).
    pub ffns: u32,
    /// Embedding size before the 3-token convolution (128).
    pub embedding: u32,
    /// Classes of the classifier on the first token (2: a GLUE pair task).
    pub classes: u32,
    /// The pooler (dense + tanh on the first token, `classifier_activation`) before the classifier.
    #[serde(default)]
    pub pooler: bool,
}

impl MobileBert {
    /// The MobileBERT column of Table 1 (Sun et al., ACL 2020) and a two-class head.
    pub const PAPER: MobileBert =
        MobileBert { layers: 24, hidden: 512, bottleneck: 128, heads: 4, intermediate: 512, ffns: 4, embedding: 128, classes: 2, pooler: false };

    /// The ops of one inference on `n` tokens.
    ///
    /// Per layer (Hugging Face `MobileBertLayer`): two bottleneck projections hidden → bottleneck
    /// (the layer input and the input shared by Q and K), each with NoNorm (an element-wise
    /// multiply-add); Q and K bottleneck → bottleneck on the shared input, V hidden → bottleneck on
    /// the layer's hidden state; the attention products and softmax; the output projection, the
    /// residual and NoNorm; `ffns` feed-forward pairs bottleneck → intermediate (ReLU) →
    /// bottleneck, each with its residual and NoNorm; the output bottleneck → hidden with the
    /// residual from the layer input and NoNorm. The embedding: a table read of `embedding`
    /// values per token, the 3-token convolution as one matrix 3·embedding → hidden, the position
    /// and token-type adds and NoNorm. The classifier reads the first token.
    pub fn ops(&self, n: u64) -> Vec<Op> {
        let (h, b, i, e, heads) = (self.hidden, self.bottleneck, self.intermediate, self.embedding, self.heads as u64);
        let (h64, b64, i64_) = (h as u64, b as u64, i as u64);
        let mut ops = vec![
            Op { name: "embedding.lookup".into(), matrix: None, work: super::npu::Work::Move, values: n * e as u64 + 3 * n * e as u64 },
            Op::mvm("embedding.proj", "embedding.proj", 3 * e, h, n),
            Op::digital("embedding.add", UnitKind::Add, 2 * n * h64, 4 * n * h64),
            Op::digital("embedding.norm", UnitKind::Add, 2 * n * h64, 2 * n * h64),
        ];
        let d_head = b64 / heads.max(1);
        for l in 0..self.layers {
            let p = |s: &str| format!("layers.{l}.{s}");
            let mvm = |ops: &mut Vec<Op>, s: &str, inp: u32, out: u32| ops.push(Op::mvm(p(s), p(s), inp, out, n));
            // NoNorm: h ∘ γ + β, two element ops
            let nonorm = |ops: &mut Vec<Op>, s: &str, w: u64| ops.push(Op::digital(p(s), UnitKind::Add, 2 * n * w, 2 * n * w));
            let residual = |ops: &mut Vec<Op>, s: &str, w: u64| ops.push(Op::digital(p(s), UnitKind::Add, n * w, 3 * n * w));
            mvm(&mut ops, "bottleneck.input", h, b);
            nonorm(&mut ops, "bottleneck.input_norm", b64);
            mvm(&mut ops, "bottleneck.attention", h, b);
            nonorm(&mut ops, "bottleneck.attention_norm", b64);
            mvm(&mut ops, "q", b, b);
            mvm(&mut ops, "k", b, b);
            mvm(&mut ops, "v", h, b);
            attention(&mut ops, &p(""), n, heads, d_head);
            mvm(&mut ops, "o", b, b);
            residual(&mut ops, "attention.residual", b64);
            nonorm(&mut ops, "attention.norm", b64);
            for f in 0..self.ffns {
                mvm(&mut ops, &format!("ffn.{f}.up"), b, i);
                ops.push(Op::digital(p(&format!("ffn.{f}.act")), UnitKind::Activation, n * i64_, 2 * n * i64_));
                mvm(&mut ops, &format!("ffn.{f}.down"), i, b);
                residual(&mut ops, &format!("ffn.{f}.residual"), b64);
                nonorm(&mut ops, &format!("ffn.{f}.norm"), b64);
            }
            mvm(&mut ops, "bottleneck.output", b, h);
            residual(&mut ops, "bottleneck.residual", h64);
            nonorm(&mut ops, "bottleneck.output_norm", h64);
        }
        if self.pooler {
            ops.push(Op::mvm("pooler", "pooler", h, h, 1));
            ops.push(Op::digital("pooler.act", UnitKind::Activation, h64, 2 * h64));
        }
        ops.push(Op::mvm("head", "head", h, self.classes, 1));
        ops
    }

    /// Weights of the static matrices (no embedding table): a check against the paper's 25.3 M
    /// parameters with the embedding table's 30522 × 128 added.
    pub fn matrix_weights(&self) -> u64 {
        self.ops(1)
            .iter()
            .filter_map(|o| match o.work {
                super::npu::Work::Mvm { inputs, outputs, .. } => Some(inputs as u64 * outputs as u64),
                _ => None,
            })
            .sum()
    }
}

/// Softmax attention of one layer on `n` tokens: scores QKᵀ (heads · n² · d_head MACs), softmax
/// over heads · n² scores, context with V (the same MACs). Ops named `{prefix}attention.*`.
fn attention(ops: &mut Vec<Op>, prefix: &str, n: u64, heads: u64, d_head: u64) {
    let width = heads * d_head;
    let scores = heads * n * n;
    ops.push(Op::digital(format!("{prefix}attention.scores"), UnitKind::Mac, scores * d_head, 2 * n * width + scores));
    ops.push(Op::digital(format!("{prefix}attention.softmax"), UnitKind::Softmax, scores, 2 * scores));
    ops.push(Op::digital(format!("{prefix}attention.context"), UnitKind::Mac, scores * d_head, scores + 2 * n * width));
}

/// How an encoder's attention runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EncoderAttention {
    Softmax,
    /// Kernel attention: a static feature projection d_head → `rows` per head and token
    /// (shared by Q and K unless `separate_qk`), `width` features per head and token after the
    /// feature map, then linear attention.
    Kernel {
        rows: u32,
        width: u32,
        separate_qk: bool,
    },
}

/// A plain encoder classifier by its shapes (the transformer workload's networks).
#[derive(Clone, Debug, PartialEq)]
pub struct Encoder {
    pub d_model: u32,
    pub heads: u32,
    pub d_ff: u32,
    /// Stored layers (matrix names `layers.{i}`), applied `repeat` times over (shared weights).
    pub stored_layers: u32,
    pub repeat: u32,
    /// Token embeddings multiplied by a scale before the positions are added.
    pub embed_scale: bool,
    pub embed_norm: bool,
    pub final_norm: bool,
    pub attention: EncoderAttention,
    /// Mean pooling over the tokens (else the first token).
    pub mean_pooling: bool,
    /// BERT's pooler (in, out) on the pooled token.
    pub pooler: Option<(u32, u32)>,
    /// Classifier head layers (in, out), an activation between them.
    pub head: Vec<(u32, u32)>,
    /// A causal language model or a question-answering head: no pooling, the head on every token
    /// (its next-token logits, or its start and end logits).
    pub next_token: bool,
}

impl Encoder {
    /// The ops of one inference on `n` tokens (padding tokens computed like the others).
    pub fn ops(&self, n: u64) -> Vec<Op> {
        let d = self.d_model as u64;
        let heads = self.heads.max(1) as u64;
        let d_head = d / heads;
        let mut ops = vec![Op { name: "embedding.lookup".into(), matrix: None, work: super::npu::Work::Move, values: n * d }];
        if self.embed_scale {
            ops.push(Op::digital("embedding.scale", UnitKind::Add, n * d, 2 * n * d));
        }
        ops.push(Op::digital("embedding.positions", UnitKind::Add, n * d, 3 * n * d));
        if self.embed_norm {
            ops.push(Op::digital("embedding.norm", UnitKind::LayerNorm, n * d, 2 * n * d));
        }
        let mut index = 0;
        for _ in 0..self.repeat.max(1) {
            for s in 0..self.stored_layers {
                let p = |x: &str| format!("layers.{index}.{x}");
                let m = |x: &str| format!("layers.{s}.{x}");
                let norm = |ops: &mut Vec<Op>, x: &str| ops.push(Op::digital(p(x), UnitKind::LayerNorm, n * d, 2 * n * d));
                for x in ["q", "k", "v"] {
                    ops.push(Op::mvm(p(x), m(x), self.d_model, self.d_model, n));
                }
                match self.attention {
                    EncoderAttention::Softmax => attention(&mut ops, &p(""), n, heads, d_head),
                    EncoderAttention::Kernel { rows, width, separate_qk } => {
                        let (rows64, w) = (rows as u64, width as u64);
                        // Q's and K's features: one projection per head and token each
                        let (fq, fk) = (m("feature_q"), if separate_qk { m("feature_k") } else { m("feature_q") });
                        ops.push(Op::mvm(p("feature_q"), fq, d_head as u32, rows, n * heads));
                        ops.push(Op::mvm(p("feature_k"), fk, d_head as u32, rows, n * heads));
                        ops.push(Op::digital(p("attention.features"), UnitKind::Activation, 2 * n * heads * w, 2 * n * heads * (rows64 + w)));
                        // φ(K)ᵀV and its normaliser Σ φ(K), then φ(Q) times both
                        ops.push(Op::digital(p("attention.kv"), UnitKind::Mac, n * heads * w * (d_head + 1), n * heads * w + n * d + heads * w * (d_head + 1)));
                        ops.push(Op::digital(
                            p("attention.context"),
                            UnitKind::Mac,
                            n * heads * w * (d_head + 1),
                            n * heads * w + heads * w * (d_head + 1) + n * d,
                        ));
                        ops.push(Op::digital(p("attention.normalise"), UnitKind::Add, n * d, 2 * n * d));
                    }
                }
                ops.push(Op::mvm(p("o"), m("o"), self.d_model, self.d_model, n));
                ops.push(Op::digital(p("attention.residual"), UnitKind::Add, n * d, 3 * n * d));
                norm(&mut ops, "norm1");
                ops.push(Op::mvm(p("ffn1"), m("ffn1"), self.d_model, self.d_ff, n));
                ops.push(Op::digital(p("ffn.act"), UnitKind::Activation, n * self.d_ff as u64, 2 * n * self.d_ff as u64));
                ops.push(Op::mvm(p("ffn2"), m("ffn2"), self.d_ff, self.d_model, n));
                ops.push(Op::digital(p("ffn.residual"), UnitKind::Add, n * d, 3 * n * d));
                norm(&mut ops, "norm2");
                index += 1;
            }
        }
        if self.final_norm {
            ops.push(Op::digital("final_norm", UnitKind::LayerNorm, n * d, 2 * n * d));
        }
        if self.mean_pooling && !self.next_token {
            ops.push(Op::digital("pooling", UnitKind::Add, n * d, n * d + d));
        }
        let vectors = if self.next_token { n } else { 1 };
        if let Some((i, o)) = self.pooler {
            ops.push(Op::mvm("pooler", "pooler", i, o, 1));
            ops.push(Op::digital("pooler.act", UnitKind::Activation, o as u64, 2 * o as u64));
        }
        for (k, &(i, o)) in self.head.iter().enumerate() {
            ops.push(Op::mvm(format!("head.{k}"), format!("head.{k}"), i, o, vectors));
            if k + 1 < self.head.len() {
                ops.push(Op::digital(format!("head.{k}.act"), UnitKind::Activation, vectors * o as u64, 2 * vectors * o as u64));
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::npu::Work;

    #[test]
    fn mobilebert_counts() {
        let m = MobileBert::PAPER;
        // per layer: 2 × 512·128 + 2 × 128·128 + 512·128 + 128·128 + 4 × 2 × 128·512 + 128·512
        let per_layer: u64 = 2 * 512 * 128 + 2 * 128 * 128 + 512 * 128 + 128 * 128 + 8 * 128 * 512 + 128 * 512;
        assert_eq!(per_layer, 835_584);
        assert_eq!(m.matrix_weights(), 24 * per_layer + 384 * 512 + 512 * 2);
        // the paper's 25.3 M parameters include the 30522 × 128 word embedding, biases and norms
        let params = m.matrix_weights() + 30522 * 128;
        assert!((24_000_000..26_000_000).contains(&params), "{params}");
        let ops = m.ops(128);
        let mvms = ops.iter().filter(|o| matches!(o.work, Work::Mvm { .. })).count();
        assert_eq!(mvms, 1 + 24 * 15 + 1);
    }
}
