//! Hugging Face MobileBERT state dicts as a [`TransformerNet`] (Sun et al., "MobileBERT: a
//! Compact Task-Agnostic BERT for Resource-Limited Devices", ACL 2020; transformers'
//! `modeling_mobilebert.py`). The names are read by [`super::names`]' table (family
//! `MobileBert`); this file checks the shapes against each other and builds the net:
//!
//! - the embedding table `[vocab, E]` and `embedding_transformation` `[d_model, 3E]` (the trigram
//!   input, 3 taps) or `[d_model, E]` (1 tap, E ≠ d_model); absent, or `[E, E]` (which
//!   transformers builds but does not apply without the trigram input), the table is read as it
//!   is;
//! - per layer, with `bottleneck.input` (`use_bottleneck`): the inner width is its output count;
//!   `bottleneck.attention` (`key_query_shared_bottleneck`) gives Q's and K's input; V's input
//!   width says `use_bottleneck_attention` (inner) or not (d_model; with inner = d_model the
//!   shapes cannot tell, and V reads the layer input, transformers' default); `output.bottleneck`
//!   widens back. Without it every width is d_model;
//! - the stacked pairs `ffn.0 .. ffn.J−1` before the main pair (`num_feedforward_networks − 1`);
//! - the family's norms NoNorm (`transformer.norm = "layer_norm"` overrides it).
//!
//! Errors name the tensor, its shape, the expected shape and where that comes from.

use super::names::{check_shape, head_layers, shape_s, Found};
use super::table::{Slot, Slot::*};
use super::{AttentionKind, Block, Bottleneck, Norm, Positions, TransformerNet, TransformerSettings};
use crate::workload::io::Linear;
use std::collections::BTreeSet;

/// Builds and checks a MobileBERT net from the mapped tensors.
pub(super) fn assemble(f: &Found, s: &TransformerSettings) -> Result<TransformerNet, String> {
    let emb = f.need(Embedding, None)?;
    let e = emb.shape[1];
    let ew = |t: &super::names::Tensor| format!("{} {}", t.name, shape_s(&t.shape));
    let (embed_proj, d) = match f.get(EmbedProjW, None) {
        // transformers builds the projection always but applies it only with the trigram input
        // or a narrower table: a one-tap projection of a d_model-wide table is not read.
        Some(w) if w.shape[1] == e && w.shape[0] == e => (None, e),
        Some(w) => {
            let (d, cols) = (w.shape[0], w.shape[1]);
            let taps = if cols == 3 * e {
                3
            } else if cols == e {
                1
            } else {
                return Err(format!(
                    "tensor {} has {cols} inputs; the embedding projection reads 3 x E = {} (trigram_input) or E = {e} values (E from {})",
                    ew(w),
                    3 * e,
                    ew(emb)
                ));
            };
            let b = f.bias(EmbedProjB, None, 0, d, &format!("d_model = {d} from {}", ew(w)))?;
            (Some((Linear::dense("embedding.proj", w.matrix(), b), taps)), d)
        }
        None => (None, e),
    };
    let dm = match &embed_proj {
        Some(_) => format!("d_model = {d} from {}", ew(f.need(EmbedProjW, None)?)),
        None => format!("d_model = {d} from {}", ew(emb)),
    };
    if s.attention == AttentionKind::Kernel || s.experts > 0 || s.norm_first {
        return Err(
            "a MobileBERT state dict runs post-norm with softmax attention and dense feed-forward pairs; leave transformer.attention, experts and norm_first at their defaults"
                .into(),
        );
    }
    let norm = |w: Slot, b: Slot, n: Option<usize>, j: usize, width: usize, why: &str, required: bool| -> Result<Option<Norm>, String> {
        let Some(gamma) = f.by_slot.get(&(w, n, j)) else {
            if let Some(t) = f.by_slot.get(&(b, n, j)) {
                return Err(format!("tensor {} has no weight beside it: a norm needs its weight", t.name));
            }
            return if required { f.need(w, n).map(|_| None) } else { Ok(None) };
        };
        check_shape(gamma, &[width], why)?;
        let beta = f.bias(b, n, j, width, why)?;
        Ok(Some(Norm { gamma: gamma.data.clone(), beta }))
    };
    let t = f.need(Positions, None)?;
    check_shape(t, &[t.shape[0], d], &format!("{dm}; rows are the positions"))?;
    let positions = Positions::Learned(t.matrix());
    let token_types = match f.get(TokenType, None) {
        Some(t) => {
            check_shape(t, &[t.shape[0], d], &dm)?;
            Some(t.matrix())
        }
        None => None,
    };
    let embed_norm = norm(EmbedNormW, EmbedNormB, None, 0, d, &dm, false)?;

    let layers: BTreeSet<usize> = f.by_slot.keys().filter(|(sl, _, _)| !matches!(sl, HeadW | HeadB)).filter_map(|(_, n, _)| *n).collect();
    if layers.is_empty() {
        return Err(format!("has no encoder layers (no tensor {})", super::names::expected(&f.naming, QW, Some(0))));
    }
    if let Some(missing) = (0..layers.len()).find(|i| !layers.contains(i)) {
        return Err(format!(
            "layer {missing} is missing: the file has layers {}; layers must be numbered 0..L without gaps",
            layers.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut blocks = Vec::with_capacity(layers.len());
    let mut inner0: Option<usize> = None;
    for n in 0..layers.len() {
        let l = Some(n);
        let lin = |w: Slot, b: Slot, j: usize, rows: usize, cols: usize, name: String, why: &str| -> Result<Linear, String> {
            let t = need(f, w, l, j)?;
            check_shape(t, &[rows, cols], why)?;
            Ok(Linear::dense(name, t.matrix(), f.bias(b, l, j, rows, why)?))
        };
        let (bottleneck, inner, qk_in, v_in) = match f.get(BnInW, l) {
            Some(w) => {
                let inner = w.shape[0];
                let why = format!("the inner width {inner} from {}, {dm}", ew(w));
                let input = lin(BnInW, BnInB, 0, inner, d, format!("layers.{n}.bottleneck.input"), &why)?;
                let input_norm = norm(BnInNormW, BnInNormB, l, 0, inner, &why, true)?.expect("required");
                let shared = match f.get(BnShW, l) {
                    Some(_) => Some((
                        lin(BnShW, BnShB, 0, inner, d, format!("layers.{n}.bottleneck.attention"), &why)?,
                        norm(BnShNormW, BnShNormB, l, 0, inner, &why, true)?.expect("required"),
                    )),
                    None => None,
                };
                let output = lin(BnOutW, BnOutB, 0, d, inner, format!("layers.{n}.bottleneck.output"), &why)?;
                let output_norm = norm(BnOutNormW, BnOutNormB, l, 0, d, &why, true)?.expect("required");
                let v = f.need(VW, l)?;
                let inner_attention = v.shape.get(1) == Some(&inner) && inner != d;
                if inner_attention && shared.is_some() {
                    return Err(format!(
                        "tensor {} reads the input bottleneck (use_bottleneck_attention) while layer {n} also has a shared Q/K bottleneck, which that forward does not read; keep one",
                        ew(v)
                    ));
                }
                let qk_in = if inner_attention || shared.is_some() { inner } else { d };
                let v_in = if inner_attention { inner } else { d };
                (Some(Bottleneck { input: (input, input_norm), shared, inner_attention, output: (output, output_norm) }), inner, qk_in, v_in)
            }
            None => {
                for slot in [BnShW, BnOutW] {
                    if let Some(t) = f.get(slot, l) {
                        return Err(format!("tensor {} needs layer {n}'s input bottleneck {}", t.name, super::names::expected(&f.naming, BnInW, l)));
                    }
                }
                (None, d, d, d)
            }
        };
        match inner0 {
            None => inner0 = Some(inner),
            Some(i0) if i0 != inner => {
                return Err(format!("layer {n} has the inner width {inner} but layer 0 has {i0}: every layer needs the same bottleneck"))
            }
            _ => {}
        }
        if s.heads == 0 || !inner.is_multiple_of(s.heads as usize) {
            return Err(format!(
                "transformer.heads = {} does not divide the attention width {inner} (layer {n}); MobileBERT's config gives num_attention_heads",
                s.heads
            ));
        }
        let why = format!("the attention width {inner}, {dm}");
        let q = lin(QW, QB, 0, inner, qk_in, format!("layers.{n}.q"), &why)?;
        let k = lin(KW, KB, 0, inner, qk_in, format!("layers.{n}.k"), &why)?;
        let v = lin(VW, VB, 0, inner, v_in, format!("layers.{n}.v"), &why)?;
        let o = lin(OW, OB, 0, inner, inner, format!("layers.{n}.o"), &why)?;
        let norm1 = norm(Norm1W, Norm1B, l, 0, inner, &why, true)?.expect("required");
        let pair = |w1: Slot, b1: Slot, w2: Slot, b2: Slot, j: usize, tag: &str| -> Result<(Linear, Linear), String> {
            let t1 = need(f, w1, l, j)?;
            let dff = t1.shape[0];
            let ffn1 = lin(w1, b1, j, dff, inner, format!("layers.{n}.{tag}ffn1"), &why)?;
            let ffn2 = lin(w2, b2, j, inner, dff, format!("layers.{n}.{tag}ffn2"), &format!("{why}, d_ff = {dff} from {}", ew(t1)))?;
            Ok((ffn1, ffn2))
        };
        let (ffn1, ffn2) = pair(Ffn1W, Ffn1B, Ffn2W, Ffn2B, 0, "")?;
        let norm2 = norm(Norm2W, Norm2B, l, 0, inner, &why, true)?.expect("required");
        let stacked: BTreeSet<usize> =
            f.by_slot.keys().filter(|(sl, m, _)| *m == l && matches!(sl, XFfn1W | XFfn1B | XFfn2W | XFfn2B | XNormW | XNormB)).map(|k| k.2).collect();
        if let Some(missing) = (0..stacked.len()).find(|j| !stacked.contains(j)) {
            return Err(format!("layer {n}'s stacked feed-forward pair ffn.{missing} is missing; pairs must be numbered 0..J without gaps"));
        }
        let mut extra_ffns = Vec::new();
        for j in 0..stacked.len() {
            let (a, b) = pair(XFfn1W, XFfn1B, XFfn2W, XFfn2B, j, &format!("ffn.{j}."))?;
            let nm = norm(XNormW, XNormB, l, j, inner, &why, false)?
                .ok_or_else(|| format!("layer {n}'s stacked pair ffn.{j} has no norm (ffn.{j}.output.LayerNorm.weight)"))?;
            extra_ffns.push((a, b, nm));
        }
        blocks.push(Block { q, k, v, o, ffn1, ffn2, norm1, norm2, feature_q: None, feature_k: None, bottleneck, extra_ffns });
    }
    let pooler = match f.get(PoolerW, None) {
        Some(t) => {
            check_shape(t, &[d, d], &dm)?;
            Some(Linear::dense("pooler", t.matrix(), f.bias(PoolerB, None, 0, d, &dm)?))
        }
        None => match f.get(PoolerB, None) {
            Some(t) => return Err(format!("tensor {} has no weight {}", t.name, super::names::expected(&f.naming, PoolerW, None))),
            None => None,
        },
    };
    let head = head_layers(f, d, &dm, s)?;
    Ok(TransformerNet {
        embedding: emb.matrix(),
        embed_proj,
        no_norm: true,
        positions,
        token_types,
        embed_norm,
        blocks,
        final_norm: None,
        pooler,
        head,
        shared_feature: None,
    })
}

/// The tensor of `slot` in layer `n`, stacked pair `j` (0 elsewhere), or an error naming it.
fn need(f: &Found, slot: Slot, n: Option<usize>, j: usize) -> Result<&super::names::Tensor, String> {
    match f.by_slot.get(&(slot, n, j)) {
        Some(t) => Ok(t),
        None if matches!(slot, XFfn1W | XFfn2W) => Err(format!(
            "missing tensor {} (the stacked feed-forward pair {j} of layer {}); MobileBERT's pair needs both weights",
            super::names::expected(&f.naming, slot, n).replace("{J}", &j.to_string()),
            n.unwrap_or(0)
        )),
        None => f.need(slot, n),
    }
}
