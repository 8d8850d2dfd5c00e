//! The transformer workload's name table, [`TABLE`]: every tensor name of the four families'
//! state dicts (PyTorch `nn.TransformerEncoder` with aimc's names around it, Hugging Face BERT,
//! Hugging Face MobileBERT, the classifier heads) with the [`Slot`] of [`super::TransformerNet`]
//! it fills and the shape it must have. docs/transformer-names.md lists the same table with
//! examples; src/workload/transformer/names.rs detects the family, looks names up here and
//! assembles the net.

/// The naming conventions recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// PyTorch `nn.TransformerEncoder` with aimc's names around it.
    Torch,
    /// Hugging Face BERT family.
    Bert,
    /// Hugging Face MobileBERT (`MobileBertModel`, `MobileBertFor*`).
    MobileBert,
    /// Every family (the classifier head).
    Any,
}

impl Family {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Family::Torch => "PyTorch nn.TransformerEncoder",
            Family::Bert => "Hugging Face BERT",
            Family::MobileBert => "Hugging Face MobileBERT",
            Family::Any => "any",
        }
    }
}

/// The net's field a tensor fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    Embedding,
    Positions,
    TokenType,
    EmbedNormW,
    EmbedNormB,
    /// Q, K and V stacked `[3d, d]`.
    InProjW,
    InProjB,
    QW,
    QB,
    KW,
    KB,
    VW,
    VB,
    OW,
    OB,
    Ffn1W,
    Ffn1B,
    Ffn2W,
    Ffn2B,
    Norm1W,
    Norm1B,
    Norm2W,
    Norm2B,
    FeatureQ,
    FeatureK,
    FinalNormW,
    FinalNormB,
    SharedFeature,
    PoolerW,
    PoolerB,
    HeadW,
    HeadB,
    /// MobileBERT's `embedding_transformation`.
    EmbedProjW,
    EmbedProjB,
    /// MobileBERT's bottleneck: input, shared Q/K (`bottleneck.attention`), output, each a
    /// Linear and a norm.
    BnInW,
    BnInB,
    BnInNormW,
    BnInNormB,
    BnShW,
    BnShB,
    BnShNormW,
    BnShNormB,
    BnOutW,
    BnOutB,
    BnOutNormW,
    BnOutNormB,
    /// MobileBERT's stacked feed-forward pairs `ffn.J` (indexed by layer and J).
    XFfn1W,
    XFfn1B,
    XFfn2W,
    XFfn2B,
    XNormW,
    XNormB,
    /// A known buffer that holds no weights (skipped by name).
    Skip,
}

impl Slot {
    /// Tensor rank the slot takes (0: any, for skipped buffers).
    pub(super) fn rank(self) -> usize {
        use Slot::*;
        match self {
            Embedding | Positions | TokenType | InProjW | QW | KW | VW | OW | Ffn1W | Ffn2W | FeatureQ | FeatureK | SharedFeature | PoolerW | HeadW
            | EmbedProjW | BnInW | BnShW | BnOutW | XFfn1W | XFfn2W => 2,
            Skip => 0,
            _ => 1,
        }
    }

    pub(super) fn describe(self) -> &'static str {
        use Slot::*;
        match self {
            Embedding => "the token embedding",
            Positions => "the learned positions",
            TokenType => "the token-type embedding",
            EmbedNormW | EmbedNormB => "the embedding LayerNorm",
            InProjW | InProjB => "the stacked Q, K, V projection",
            QW | QB => "the Q projection",
            KW | KB => "the K projection",
            VW | VB => "the V projection",
            OW | OB => "the attention output projection",
            Ffn1W | Ffn1B => "the first feed-forward layer",
            Ffn2W | Ffn2B => "the second feed-forward layer",
            Norm1W | Norm1B => "the attention LayerNorm (norm1)",
            Norm2W | Norm2B => "the feed-forward LayerNorm (norm2)",
            FeatureQ => "the kernel-attention feature projection",
            FeatureK => "the kernel-attention feature projection of K",
            FinalNormW | FinalNormB => "the final LayerNorm",
            SharedFeature => "the shared kernel-attention feature projection",
            PoolerW | PoolerB => "the pooler",
            HeadW | HeadB => "the classifier head",
            EmbedProjW | EmbedProjB => "the embedding projection",
            BnInW | BnInB => "the input bottleneck",
            BnInNormW | BnInNormB => "the input bottleneck's norm",
            BnShW | BnShB => "the shared Q/K bottleneck",
            BnShNormW | BnShNormB => "the shared Q/K bottleneck's norm",
            BnOutW | BnOutB => "the output bottleneck",
            BnOutNormW | BnOutNormB => "the output bottleneck's norm",
            XFfn1W | XFfn1B => "a stacked feed-forward pair's first layer",
            XFfn2W | XFfn2B => "a stacked feed-forward pair's second layer",
            XNormW | XNormB => "a stacked feed-forward pair's norm",
            Skip => "a skipped buffer",
        }
    }
}

/// One row of the name table. Placeholders: `{P}` the family's prefix (the encoder's module path
/// for PyTorch names, the `BertModel` path for BERT names; empty or ending in `.`), `{O}` the
/// path that holds it (`{P}` less its last part), `{N}` a layer index, `{K}` an `nn.Sequential`
/// index of the head, `{J}` a MobileBERT layer's stacked feed-forward pair.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub family: Family,
    pub pattern: &'static str,
    pub slot: Slot,
    pub note: &'static str,
}

const fn e(family: Family, pattern: &'static str, slot: Slot, note: &'static str) -> Entry {
    Entry { family, pattern, slot, note }
}

use Family::{Any, Bert, MobileBert, Torch};
use Slot::*;

/// The name table (the order of rows is the order of the documentation; the first matching row
/// wins, and no name matches two rows).
pub const TABLE: &[Entry] = &[
    // PyTorch nn.TransformerEncoder and aimc's names around it.
    e(Torch, "{O}embedding.weight", Embedding, "[vocab, d_model] nn.Embedding; required (one spelling)"),
    e(Torch, "{O}embed.weight", Embedding, "alternative spelling"),
    e(Torch, "{O}tok_embedding.weight", Embedding, "alternative spelling"),
    e(Torch, "{O}token_embedding.weight", Embedding, "alternative spelling"),
    e(Torch, "{O}pos_embedding.weight", Positions, "[max_positions, d_model] learned positions; absent: sinusoidal"),
    e(Torch, "{O}embed_norm.weight", EmbedNormW, "[d_model] LayerNorm after the embedding sum; optional"),
    e(Torch, "{O}embed_norm.bias", EmbedNormB, "[d_model]"),
    e(Torch, "{P}layers.{N}.self_attn.in_proj_weight", InProjW, "[3 d_model, d_model]: rows Q, then K, then V"),
    e(Torch, "{P}layers.{N}.self_attn.in_proj_bias", InProjB, "[3 d_model]: Q, K, V biases; absent: zeros"),
    e(Torch, "{P}layers.{N}.self_attn.q_proj_weight", QW, "[d_model, d_model] (separate form, kdim/vdim set)"),
    e(Torch, "{P}layers.{N}.self_attn.k_proj_weight", KW, "[d_model, d_model]"),
    e(Torch, "{P}layers.{N}.self_attn.v_proj_weight", VW, "[d_model, d_model]"),
    e(Torch, "{P}layers.{N}.self_attn.out_proj.weight", OW, "[d_model, d_model]"),
    e(Torch, "{P}layers.{N}.self_attn.out_proj.bias", OB, "[d_model]"),
    e(Torch, "{P}layers.{N}.self_attn.feature_projection.weight", FeatureQ, "[m/2 or m, d_head] kernel attention, Q (and K)"),
    e(Torch, "{P}layers.{N}.self_attn.feature_projection_k.weight", FeatureK, "[m/2 or m, d_head] a separate map for K"),
    e(Torch, "{P}layers.{N}.linear1.weight", Ffn1W, "[d_ff, d_model]"),
    e(Torch, "{P}layers.{N}.linear1.bias", Ffn1B, "[d_ff]"),
    e(Torch, "{P}layers.{N}.linear2.weight", Ffn2W, "[d_model, d_ff]"),
    e(Torch, "{P}layers.{N}.linear2.bias", Ffn2B, "[d_model]"),
    e(Torch, "{P}layers.{N}.norm1.weight", Norm1W, "[d_model] around attention"),
    e(Torch, "{P}layers.{N}.norm1.bias", Norm1B, "[d_model]"),
    e(Torch, "{P}layers.{N}.norm2.weight", Norm2W, "[d_model] around the feed-forward pair"),
    e(Torch, "{P}layers.{N}.norm2.bias", Norm2B, "[d_model]"),
    e(Torch, "{P}norm.weight", FinalNormW, "[d_model] the encoder's final LayerNorm; optional"),
    e(Torch, "{P}norm.bias", FinalNormB, "[d_model]"),
    e(Torch, "{O}feature_projection.weight", SharedFeature, "[m/2 or m, d_head] one projection for every layer"),
    e(Torch, "{O}pooler.dense.weight", PoolerW, "[d_model, d_model] dense + tanh; optional"),
    e(Torch, "{O}pooler.dense.bias", PoolerB, "[d_model]"),
    // Hugging Face BERT family.
    e(Bert, "{P}embeddings.word_embeddings.weight", Embedding, "[vocab, d_model]; required"),
    e(Bert, "{P}embeddings.position_embeddings.weight", Positions, "[max_positions, d_model] learned positions"),
    e(
        Bert,
        "{P}embeddings.token_type_embeddings.weight",
        TokenType,
        "[types, d_model]: row 0 is added to every token, row 1 after the separator with `segment_sep`",
    ),
    e(Bert, "{P}embeddings.LayerNorm.weight", EmbedNormW, "[d_model]"),
    e(Bert, "{P}embeddings.LayerNorm.bias", EmbedNormB, "[d_model]"),
    e(Bert, "{P}embeddings.LayerNorm.gamma", EmbedNormW, "older checkpoints"),
    e(Bert, "{P}embeddings.LayerNorm.beta", EmbedNormB, "older checkpoints"),
    e(Bert, "{P}embeddings.position_ids", Skip, "int64 buffer of position indices, not a weight"),
    e(Bert, "{P}encoder.layer.{N}.attention.self.query.weight", QW, "[d_model, d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.self.query.bias", QB, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.self.key.weight", KW, "[d_model, d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.self.key.bias", KB, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.self.value.weight", VW, "[d_model, d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.self.value.bias", VB, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.output.dense.weight", OW, "[d_model, d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.output.dense.bias", OB, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.output.LayerNorm.weight", Norm1W, "[d_model] (norm1)"),
    e(Bert, "{P}encoder.layer.{N}.attention.output.LayerNorm.bias", Norm1B, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.attention.output.LayerNorm.gamma", Norm1W, "older checkpoints"),
    e(Bert, "{P}encoder.layer.{N}.attention.output.LayerNorm.beta", Norm1B, "older checkpoints"),
    e(Bert, "{P}encoder.layer.{N}.intermediate.dense.weight", Ffn1W, "[d_ff, d_model]"),
    e(Bert, "{P}encoder.layer.{N}.intermediate.dense.bias", Ffn1B, "[d_ff]"),
    e(Bert, "{P}encoder.layer.{N}.output.dense.weight", Ffn2W, "[d_model, d_ff]"),
    e(Bert, "{P}encoder.layer.{N}.output.dense.bias", Ffn2B, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.output.LayerNorm.weight", Norm2W, "[d_model] (norm2)"),
    e(Bert, "{P}encoder.layer.{N}.output.LayerNorm.bias", Norm2B, "[d_model]"),
    e(Bert, "{P}encoder.layer.{N}.output.LayerNorm.gamma", Norm2W, "older checkpoints"),
    e(Bert, "{P}encoder.layer.{N}.output.LayerNorm.beta", Norm2B, "older checkpoints"),
    e(Bert, "{P}pooler.dense.weight", PoolerW, "[d_model, d_model] dense + tanh on the CLS token"),
    e(Bert, "{P}pooler.dense.bias", PoolerB, "[d_model]"),
    // Hugging Face MobileBERT: BERT's attention and feed-forward names at the bottleneck's inner
    // width, plus its embedding projection, bottlenecks and stacked feed-forward pairs.
    e(MobileBert, "{P}embeddings.word_embeddings.weight", Embedding, "[vocab, E]; required"),
    e(MobileBert, "{P}embeddings.embedding_transformation.weight", EmbedProjW, "[d_model, 3 E] (trigram input) or [d_model, E]"),
    e(MobileBert, "{P}embeddings.embedding_transformation.bias", EmbedProjB, "[d_model]"),
    e(MobileBert, "{P}embeddings.position_embeddings.weight", Positions, "[max_positions, d_model]"),
    e(MobileBert, "{P}embeddings.token_type_embeddings.weight", TokenType, "[types, d_model], as BERT's"),
    e(MobileBert, "{P}embeddings.LayerNorm.weight", EmbedNormW, "[d_model] NoNorm or LayerNorm (transformer.norm)"),
    e(MobileBert, "{P}embeddings.LayerNorm.bias", EmbedNormB, "[d_model]"),
    e(MobileBert, "{P}embeddings.position_ids", Skip, "int64 buffer of position indices, not a weight"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.self.query.weight", QW, "[inner, inner], or [inner, d_model] without a bottleneck"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.self.query.bias", QB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.self.key.weight", KW, "as query"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.self.key.bias", KB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.self.value.weight", VW, "[inner, d_model], or [inner, inner] with use_bottleneck_attention"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.self.value.bias", VB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.output.dense.weight", OW, "[inner, inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.output.dense.bias", OB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.output.LayerNorm.weight", Norm1W, "[inner] (norm1)"),
    e(MobileBert, "{P}encoder.layer.{N}.attention.output.LayerNorm.bias", Norm1B, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.intermediate.dense.weight", Ffn1W, "[d_ff, inner] the main pair"),
    e(MobileBert, "{P}encoder.layer.{N}.intermediate.dense.bias", Ffn1B, "[d_ff]"),
    e(MobileBert, "{P}encoder.layer.{N}.output.dense.weight", Ffn2W, "[inner, d_ff]"),
    e(MobileBert, "{P}encoder.layer.{N}.output.dense.bias", Ffn2B, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.output.LayerNorm.weight", Norm2W, "[inner] (norm2)"),
    e(MobileBert, "{P}encoder.layer.{N}.output.LayerNorm.bias", Norm2B, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.output.bottleneck.dense.weight", BnOutW, "[d_model, inner]: the block input as residual"),
    e(MobileBert, "{P}encoder.layer.{N}.output.bottleneck.dense.bias", BnOutB, "[d_model]"),
    e(MobileBert, "{P}encoder.layer.{N}.output.bottleneck.LayerNorm.weight", BnOutNormW, "[d_model]"),
    e(MobileBert, "{P}encoder.layer.{N}.output.bottleneck.LayerNorm.bias", BnOutNormB, "[d_model]"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.input.dense.weight", BnInW, "[inner, d_model]: the attention residual"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.input.dense.bias", BnInB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.input.LayerNorm.weight", BnInNormW, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.input.LayerNorm.bias", BnInNormB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.attention.dense.weight", BnShW, "[inner, d_model]: Q's and K's input (key_query_shared_bottleneck)"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.attention.dense.bias", BnShB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.attention.LayerNorm.weight", BnShNormW, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.bottleneck.attention.LayerNorm.bias", BnShNormB, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.ffn.{J}.intermediate.dense.weight", XFfn1W, "[d_ff, inner] stacked pair J, before the main one"),
    e(MobileBert, "{P}encoder.layer.{N}.ffn.{J}.intermediate.dense.bias", XFfn1B, "[d_ff]"),
    e(MobileBert, "{P}encoder.layer.{N}.ffn.{J}.output.dense.weight", XFfn2W, "[inner, d_ff]"),
    e(MobileBert, "{P}encoder.layer.{N}.ffn.{J}.output.dense.bias", XFfn2B, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.ffn.{J}.output.LayerNorm.weight", XNormW, "[inner]"),
    e(MobileBert, "{P}encoder.layer.{N}.ffn.{J}.output.LayerNorm.bias", XNormB, "[inner]"),
    e(MobileBert, "{P}pooler.dense.weight", PoolerW, "[d_model, d_model] dense + tanh (classifier_activation); absent: the first token as it is"),
    e(MobileBert, "{P}pooler.dense.bias", PoolerB, "[d_model]"),
    // The classifier head (both families): one Linear, or an nn.Sequential's Linear layers.
    e(Any, "{O}classifier.weight", HeadW, "[classes, d_model] a single Linear"),
    e(Any, "{O}classifier.bias", HeadB, "[classes]"),
    e(Any, "{O}classifier.{K}.weight", HeadW, "nn.Sequential: Linear layers in index order"),
    e(Any, "{O}classifier.{K}.bias", HeadB, ""),
    e(Any, "{O}head.weight", HeadW, "alternative spelling"),
    e(Any, "{O}head.bias", HeadB, ""),
    e(Any, "{O}head.{K}.weight", HeadW, ""),
    e(Any, "{O}head.{K}.bias", HeadB, ""),
    e(Any, "{O}fc.weight", HeadW, "alternative spelling"),
    e(Any, "{O}fc.bias", HeadB, ""),
    e(Any, "{O}fc.{K}.weight", HeadW, ""),
    e(Any, "{O}fc.{K}.bias", HeadB, ""),
    e(Any, "{O}lm_head.weight", HeadW, "[vocab, d_model] a language model's head (`task = \"next_token\"`); absent: tied to the embedding"),
    e(Any, "{O}lm_head.bias", HeadB, "[vocab]"),
    e(
        Any,
        "{O}qa_outputs.weight",
        HeadW,
        "[2, d_model] a question-answering head, start and end logits per token (`task = \"qa_f1\"` or `\"qa_exact_match\"`)",
    ),
    e(Any, "{O}qa_outputs.bias", HeadB, "[2]"),
];

/// What the families are recognised by (for error messages).
pub(super) const FAMILIES_HINT: &str =
    "recognised: PyTorch nn.TransformerEncoder names ([PREFIX.]layers.N.self_attn.in_proj_weight, linear1, linear2, norm1, norm2, with \
     embedding.weight and classifier.weight around it) and Hugging Face BERT names ([bert.]embeddings.word_embeddings.weight, \
     encoder.layer.N.attention.self.query.weight, ...) and Hugging Face MobileBERT names ([mobilebert.]embeddings.embedding_transformation.weight, \
     encoder.layer.N.bottleneck.input.dense.weight, ...); docs/transformer-names.md lists every name";
