//! Reading a transformer's state dict: the family detected from its names, every tensor looked
//! up in the name table ([`TABLE`], src/workload/transformer/table.rs, which maps the tensor
//! names of a `.safetensors` state dict onto the fields of [`TransformerNet`] for four families;
//! docs/transformer-names.md lists the same table with examples) and the net assembled. A Hugging Face GPT-2
//! file is first rewritten under the PyTorch names ([`super::gpt2`]).
//!
//! 1. **PyTorch `nn.TransformerEncoder`** (and aimc's own models, which wrap one). `{P}` is the
//!    encoder's module path (`encoder.`, `transformer_encoder.`, or nothing for a bare encoder):
//!    `{P}layers.N.self_attn.in_proj_weight` `[3d, d]` holds Q, K and V stacked (rows Q, then K,
//!    then V), `in_proj_bias` `[3d]` likewise; `q_proj_weight`/`k_proj_weight`/`v_proj_weight`
//!    are the separate form (`nn.MultiheadAttention` with kdim/vdim); `self_attn.out_proj`,
//!    `linear1`, `linear2`, `norm1`, `norm2`; `self_attn.feature_projection.weight`
//!    `[rows, d_head]` (and `feature_projection_k.weight`) is a layer's kernel-attention
//!    projection; `{P}norm` is the final LayerNorm. Around the encoder (aimc's names, under `{O}`,
//!    the module path that holds the encoder: `{P}` less its last part): the token embedding
//!    (`embedding`, `embed`, `tok_embedding`, `token_embedding`), `pos_embedding` (learned
//!    positions; absent: sinusoidal), `embed_norm`, a model-level `feature_projection` (shared by
//!    every layer), `pooler.dense`.
//! 2. **Hugging Face BERT family** under `{P}` (`bert.` in `BertFor*` models, nothing in
//!    `BertModel`): `embeddings.word_embeddings`, `embeddings.position_embeddings`,
//!    `embeddings.token_type_embeddings` (row 0 is added to every token; row 1 after the
//!    separator with `segment_sep`), `embeddings.LayerNorm`,
//!    `encoder.layer.N.attention.self.query/key/value`, `attention.output.dense` (O),
//!    `attention.output.LayerNorm` (norm1), `intermediate.dense` (FFN1), `output.dense` (FFN2),
//!    `output.LayerNorm` (norm2), `pooler.dense`; LayerNorms as `weight/bias` or, in older
//!    checkpoints, `gamma/beta`. The buffer `embeddings.position_ids` (int64) is skipped by name.
//! 3. **Hugging Face MobileBERT** under `{P}` (`mobilebert.` in `MobileBertFor*` models): BERT's
//!    layer names at the bottleneck's inner width, plus `embeddings.embedding_transformation`,
//!    `encoder.layer.N.bottleneck.input|attention`, `output.bottleneck` and the stacked pairs
//!    `ffn.J.*`; shapes are checked and the net built by [`super::mobilebert`].
//! 4. **The classifier head**, shared by all: `{O}classifier`, `{O}head` or `{O}fc`, either one
//!    Linear (`classifier.weight`) or the Linear layers of an `nn.Sequential`
//!    (`classifier.0.weight`, `classifier.2.weight`, ... in index order; activations and dropout
//!    hold no tensors).
//!
//! The family is the first whose characteristic names appear (PyTorch's
//! `{P}layers.N.self_attn|linear1|linear2|norm1|norm2.*`, then MobileBERT's own, then BERT's
//! `{P}embeddings.word_embeddings.weight` or `{P}encoder.layer.N.*`). Rules: every tensor maps
//! to exactly one field or is a named skip; the first tensor in file order that maps to nothing
//! is named in the error, never dropped; missing required tensors are named by the name the table
//! expects; a missing bias is zeros (PyTorch `bias=False`); layers are numbered 0..L without
//! gaps; shapes are checked against d_model (the embedding's width), `transformer.heads` and each
//! other, every error naming the tensor, its shape, the expected shape and the fix; F32, F64, F16
//! and BF16 tensors are accepted and converted to f32 (F64 rounds, F16/BF16 are exact); NaN or
//! infinity anywhere is refused with the tensor's name and the first such index. The layers of
//! the net get family-independent names (`layers.N.q`, `k`, `v`, `o`, `ffn1`, `ffn2`, `pooler`,
//! `head.I`), so the same weights under any family load to the same net.

use super::table::{Entry, Family, Family::*, Slot, Slot::*, FAMILIES_HINT, TABLE};
use super::{AttentionKind, Block, FeatureSource, Norm, Positions, TransformerNet, TransformerSettings};
use crate::features::SoftmaxFeatures;
use crate::workload::io::{Linear, Matrix};
use std::collections::BTreeMap;
use std::path::Path;

/// Reads a .safetensors state dict into the network.
pub fn read(path: &Path, s: &TransformerSettings) -> Result<TransformerNet, String> {
    let bytes = crate::files::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes, s).map_err(|m| format!("{}: {m}", path.display()))
}

/// A tensor as loaded: its name, shape and values (f32).
#[derive(Clone, Debug)]
pub(super) struct Tensor {
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    pub(super) data: Vec<f32>,
}

impl Tensor {
    pub(super) fn matrix(&self) -> Matrix {
        Matrix { rows: self.shape[0], cols: self.shape[1], data: self.data.clone() }
    }
}

/// A state dict's family and the prefixes its names carry.
#[derive(Clone, Debug)]
pub(super) struct Naming {
    pub(super) family: Family,
    /// `{P}`.
    pub(super) prefix: String,
    /// `{O}`.
    outer: String,
}

/// `{P}` less its last part (`model.encoder.` -> `model.`, `encoder.` -> ``).
fn outer_of(prefix: &str) -> String {
    let trimmed = prefix.strip_suffix('.').unwrap_or(prefix);
    match trimmed.rfind('.') {
        Some(i) => trimmed[..=i].to_string(),
        None => String::new(),
    }
}

/// The first family whose characteristic names appear (names in file order).
fn detect(names: &[String]) -> Option<Naming> {
    const TORCH_PARTS: [&str; 5] = ["self_attn", "linear1", "linear2", "norm1", "norm2"];
    for n in names {
        let parts: Vec<&str> = n.split('.').collect();
        for i in 0..parts.len().saturating_sub(3) {
            if parts[i] == "layers" && is_index(parts[i + 1]) && TORCH_PARTS.contains(&parts[i + 2]) {
                let prefix: String = parts[..i].iter().map(|p| format!("{p}.")).collect();
                return Some(Naming { family: Torch, outer: outer_of(&prefix), prefix });
            }
        }
    }
    // MobileBERT: BERT's names plus its own (the embedding projection, bottlenecks, stacked pairs).
    for n in names {
        let parts: Vec<&str> = n.split('.').collect();
        let found = parts.windows(2).position(|w| w == ["embeddings", "embedding_transformation"]).or_else(|| {
            (0..parts.len().saturating_sub(4)).find(|&i| {
                parts[i] == "encoder"
                    && parts[i + 1] == "layer"
                    && is_index(parts[i + 2])
                    && (matches!(parts[i + 3], "bottleneck" | "ffn") || parts[i + 3..].starts_with(&["output", "bottleneck"]))
            })
        });
        if let Some(i) = found {
            let prefix: String = parts[..i].iter().map(|p| format!("{p}.")).collect();
            return Some(Naming { family: MobileBert, outer: outer_of(&prefix), prefix });
        }
    }
    for n in names {
        let parts: Vec<&str> = n.split('.').collect();
        let found = parts
            .windows(3)
            .position(|w| w == ["embeddings", "word_embeddings", "weight"])
            .filter(|&i| i + 3 == parts.len())
            .or_else(|| (0..parts.len().saturating_sub(3)).find(|&i| parts[i] == "encoder" && parts[i + 1] == "layer" && is_index(parts[i + 2])));
        if let Some(i) = found {
            let prefix: String = parts[..i].iter().map(|p| format!("{p}.")).collect();
            return Some(Naming { family: Bert, outer: outer_of(&prefix), prefix });
        }
    }
    None
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// The row of the table `name` matches, with its `{N}` or `{K}` index and its `{J}` index (0
/// where the row has none).
pub(super) fn lookup(name: &str, naming: &Naming) -> Option<(&'static Entry, Option<usize>, usize)> {
    let parts: Vec<&str> = name.split('.').collect();
    'rows: for entry in TABLE.iter().filter(|e| e.family == naming.family || e.family == Any) {
        let pattern = entry.pattern.replace("{P}", &naming.prefix).replace("{O}", &naming.outer);
        let pat: Vec<&str> = pattern.split('.').collect();
        if pat.len() != parts.len() {
            continue;
        }
        let (mut index, mut j) = (None, 0);
        for (p, n) in pat.iter().zip(&parts) {
            if *p == "{J}" {
                match n.parse() {
                    Ok(v) if is_index(n) => j = v,
                    _ => continue 'rows,
                }
            } else if *p == "{N}" || *p == "{K}" {
                if !is_index(n) {
                    continue 'rows;
                }
                index = n.parse().ok();
                if index.is_none() {
                    continue 'rows;
                }
            } else if p != n {
                continue 'rows;
            }
        }
        return Some((entry, index, j));
    }
    None
}

/// The name the table expects for `slot` (index `n`, a stacked pair's `{J}` left as it is), for
/// "missing" errors.
pub(super) fn expected(naming: &Naming, slot: Slot, n: Option<usize>) -> String {
    let entry = TABLE.iter().find(|e| (e.family == naming.family || e.family == Any) && e.slot == slot).expect("every slot has a row");
    let idx = n.map(|v| v.to_string()).unwrap_or_default();
    entry.pattern.replace("{P}", &naming.prefix).replace("{O}", &naming.outer).replace("{N}", &idx).replace("{K}", &idx)
}

/// `[i, j, ...]` of flat index `i` in `shape`.
fn index_of(mut i: usize, shape: &[usize]) -> String {
    let mut idx = vec![0; shape.len()];
    for (k, &dim) in shape.iter().enumerate().rev() {
        if dim > 0 {
            idx[k] = i % dim;
            i /= dim;
        }
    }
    format!("[{}]", idx.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
}

/// A tensor's place: its slot, layer (or head) index and stacked-pair index (0 elsewhere).
pub(super) type SlotKey = (Slot, Option<usize>, usize);

/// The loaded tensors by slot and layer (or head) index.
pub(super) struct Found {
    pub(super) naming: Naming,
    /// Keyed by slot, layer (or head) index and stacked-pair index (0 elsewhere).
    pub(super) by_slot: BTreeMap<SlotKey, Tensor>,
    /// The head's module name (`classifier`, `head`, `fc`) and whether it is indexed.
    pub(super) head_root: Option<(String, bool)>,
    /// Input ranges (`X.input_range` beside a weight `X.weight`, aihwkit's learned
    /// `pre_post.input_range`), keyed as the weight.
    pub(super) ranges: BTreeMap<SlotKey, Tensor>,
}

impl Found {
    pub(super) fn get(&self, slot: Slot, n: Option<usize>) -> Option<&Tensor> {
        self.by_slot.get(&(slot, n, 0))
    }

    /// The bias of `slot` in layer `n`, stacked pair `j` (0 elsewhere), checked to be `[len]`
    /// (`why` says where len comes from); zeros when absent (PyTorch `bias=False`).
    pub(super) fn bias(&self, slot: Slot, n: Option<usize>, j: usize, len: usize, why: &str) -> Result<Vec<f32>, String> {
        match self.by_slot.get(&(slot, n, j)) {
            Some(t) => check_shape(t, &[len], why).map(|_| t.data.clone()),
            None => Ok(vec![0.0; len]),
        }
    }

    pub(super) fn need(&self, slot: Slot, n: Option<usize>) -> Result<&Tensor, String> {
        self.get(slot, n).ok_or_else(|| {
            format!(
                "missing tensor {} ({}{}); the {} name table requires it (see docs/transformer-names.md)",
                expected(&self.naming, slot, n),
                slot.describe(),
                n.map(|v| format!(" of layer {v}")).unwrap_or_default(),
                self.naming.family.describe()
            )
        })
    }
}

pub(super) fn shape_s(shape: &[usize]) -> String {
    format!("[{}]", shape.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
}

/// Checks `t`'s shape; `why` says where the expected shape comes from and what to fix.
pub(super) fn check_shape(t: &Tensor, want: &[usize], why: &str) -> Result<(), String> {
    if t.shape != want {
        return Err(format!("tensor {} has shape {} but needs {} ({why})", t.name, shape_s(&t.shape), shape_s(want)));
    }
    Ok(())
}

/// Parses a .safetensors state dict into the network (see the module header for the table).
pub fn parse(bytes: &[u8], s: &TransformerSettings) -> Result<TransformerNet, String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    // File order, so that "the first tensor that maps to nothing" is well defined.
    let names = meta.offset_keys();
    if names.is_empty() {
        return Err(format!("holds no tensors; save model.state_dict() of a transformer ({FAMILIES_HINT})"));
    }
    if super::gpt2::is_gpt2(&names) {
        return parse(&super::gpt2::to_torch_names(&st, &names, s)?, s);
    }
    let naming = detect(&names).ok_or_else(|| format!("no transformer names found (first tensor: {}); {FAMILIES_HINT}", names[0]))?;
    let mut found = Found { naming: naming.clone(), by_slot: BTreeMap::new(), head_root: None, ranges: BTreeMap::new() };
    for name in &names {
        if let Some(prefix) = name.strip_suffix(".input_range") {
            let t = super::ranges::range_tensor(&st, name, prefix, &naming)?;
            found.ranges.insert(t.0, t.1);
            continue;
        }
        let Some((entry, index, j)) = lookup(name, &naming) else {
            // RoBERTa's and ELECTRA's layers have BERT's names, but their heads (and RoBERTa's positions) differ.
            let roberta = if naming.prefix.contains("roberta") {
                "; a RoBERTa or XLM-R classifier (positions offset by pad_token_id + 1, a dense-tanh-out_proj head) is mapped by Python's aimc.from_torch"
            } else if naming.prefix.contains("electra") {
                "; an ELECTRA classifier (a dense-GELU-out_proj head) is mapped by Python's aimc.from_torch"
            } else {
                ""
            };
            return Err(format!(
                "tensor {name} maps to nothing in the {} name table (prefix {:?}){roberta}; rename it or leave it out of the file. {FAMILIES_HINT}",
                naming.family.describe(),
                naming.prefix
            ));
        };
        if entry.slot == Skip {
            continue;
        }
        let view = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
        let shape = view.shape().to_vec();
        if shape.len() != entry.slot.rank() {
            let what = if entry.slot.rank() == 2 { "a 2-D weight [rows, cols]" } else { "a 1-D vector" };
            return Err(format!("tensor {name} has shape {}; {} ({}) is {what}", shape_s(&shape), entry.slot.describe(), entry.pattern));
        }
        if shape.contains(&0) {
            return Err(format!("tensor {name} has shape {}: it is empty", shape_s(&shape)));
        }
        let data = crate::workload::io::tensor_f32(&view).map_err(|m| format!("tensor {name}: {m}"))?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "tensor {name}{} = {}: weights must be finite (NaN or infinity); retrain or repair the checkpoint",
                index_of(i, &shape),
                data[i]
            ));
        }
        if matches!(entry.slot, HeadW | HeadB) {
            let root = entry.pattern.trim_start_matches("{O}").split('.').next().unwrap_or("").to_string();
            let key = (root, index.is_some());
            match &found.head_root {
                Some(k) if *k != key => {
                    return Err(format!(
                        "tensor {name} is a second classifier head beside {}{}: keep one head (one Linear or one nn.Sequential)",
                        k.0,
                        if k.1 { ".K.weight" } else { ".weight" }
                    ))
                }
                _ => found.head_root = Some(key),
            }
        }
        let t = Tensor { name: name.clone(), shape, data };
        if let Some(prev) = found.by_slot.get(&(entry.slot, index, j)) {
            return Err(format!("tensors {} and {name} both name {}; keep one", prev.name, entry.slot.describe()));
        }
        found.by_slot.insert((entry.slot, index, j), t);
    }
    let mut net = if naming.family == MobileBert { super::mobilebert::assemble(&found, s)? } else { assemble(&found, s)? };
    super::ranges::attach_ranges(&found, &mut net)?;
    if net.head.is_empty() {
        let mut tied = net.tied_head()?;
        if let Some(t) = found.ranges.get(&(HeadW, None, 0)) {
            tied.input_range = t.data.clone();
        }
        net.head = vec![tied];
    }
    Ok(net)
}

/// Builds and checks the net from the mapped tensors.
fn assemble(f: &Found, s: &TransformerSettings) -> Result<TransformerNet, String> {
    let emb = f.need(Embedding, None)?;
    let d = emb.shape[1];
    let dm = format!("d_model = {d} from {} {}", emb.name, shape_s(&emb.shape));
    if s.heads == 0 {
        return Err("transformer.heads = 0: a transformer needs at least one attention head".into());
    }
    if d % s.heads as usize != 0 {
        let divisors: Vec<String> = (1..=d.min(64)).filter(|h| d % h == 0).map(|h| h.to_string()).collect();
        return Err(format!(
            "transformer.heads = {} does not divide d_model = {d} ({} {}); choose a divisor of {d} ({}{})",
            s.heads,
            emb.name,
            shape_s(&emb.shape),
            divisors.join(", "),
            if d > 64 { ", ..." } else { "" }
        ));
    }
    let d_head = d / s.heads as usize;
    let norm = |w: Slot, b: Slot, n: Option<usize>, required: bool| -> Result<Option<Norm>, String> {
        let gamma = match f.get(w, n) {
            Some(t) => t,
            None if !required && f.get(b, n).is_none() => return Ok(None),
            None => return f.need(w, n).map(|_| None),
        };
        check_shape(gamma, &[d], &dm)?;
        let beta = match f.get(b, n) {
            Some(t) => {
                check_shape(t, &[d], &dm)?;
                t.data.clone()
            }
            None => vec![0.0; d],
        };
        Ok(Some(Norm { gamma: gamma.data.clone(), beta }))
    };
    let bias = |slot: Slot, n: Option<usize>, len: usize, why: &str| f.bias(slot, n, 0, len, why);

    let positions = match f.get(Positions, None) {
        Some(t) => {
            check_shape(t, &[t.shape[0], d], &format!("{dm}; rows are the positions"))?;
            Positions::Learned(t.matrix())
        }
        None => Positions::Sinusoidal,
    };
    let token_types = match f.get(TokenType, None) {
        Some(t) => {
            check_shape(t, &[t.shape[0], d], &dm)?;
            Some(t.matrix())
        }
        None => None,
    };
    let embed_norm = norm(EmbedNormW, EmbedNormB, None, false)?;

    // Layers: every index any layer tensor names; 0..L without gaps.
    let layer_slots = [InProjW, InProjB, QW, QB, KW, KB, VW, VB, OW, OB, Ffn1W, Ffn1B, Ffn2W, Ffn2B, Norm1W, Norm1B, Norm2W, Norm2B, FeatureQ, FeatureK];
    let mut layers: BTreeMap<usize, &str> = BTreeMap::new();
    for ((slot, n, _), t) in &f.by_slot {
        if let (true, Some(n)) = (layer_slots.contains(slot), n) {
            layers.entry(*n).or_insert(&t.name);
        }
    }
    if layers.is_empty() {
        return Err(format!("has no encoder layers (no tensor {}); {FAMILIES_HINT}", expected(&f.naming, Ffn1W, Some(0))));
    }
    if let Some(missing) = (0..layers.len()).find(|i| !layers.contains_key(i)) {
        let listed: Vec<String> = layers.keys().map(|k| k.to_string()).collect();
        let (after, name) = layers.range(missing..).next().map(|(k, v)| (*k, *v)).unwrap_or((0, ""));
        return Err(format!(
            "layer {missing} is missing: the file has layers {} ({name} is layer {after}); layers must be numbered 0..L without gaps (expected {})",
            listed.join(", "),
            expected(&f.naming, Ffn1W, Some(missing))
        ));
    }
    let kernel_model = s.attention == AttentionKind::Kernel && s.projection == FeatureSource::Model;
    if s.attention == AttentionKind::Kernel {
        if s.features == 0 {
            return Err("transformer.features = 0: kernel attention needs at least one feature per head".into());
        }
        if s.features % 2 == 1 && matches!(s.feature_map, SoftmaxFeatures::Positive | SoftmaxFeatures::Trig) {
            return Err(format!(
                "transformer.features = {} is odd, but {:?} features come in pairs (m/2 projection rows, two features each); use an even count such as {}",
                s.features,
                s.feature_map,
                s.features + 1
            ));
        }
    }
    let rows = s.projection_rows() as usize;
    let check_feature = |t: &Tensor| -> Result<(), String> {
        if kernel_model {
            let why = format!(
                "kernel attention with transformer.features = {} ({:?} features: {rows} projection rows) and d_head = d_model / heads = {d} / {} = {d_head}; \
                 set transformer.features to match the file, or projection = \"orf\" to draw one",
                s.features, s.feature_map, s.heads
            );
            check_shape(t, &[rows, d_head], &why)?;
        }
        Ok(())
    };

    let mut blocks = Vec::with_capacity(layers.len());
    let mut d_ff0: Option<(usize, String)> = None;
    for n in 0..layers.len() {
        let l = Some(n);
        let sq = |t: &Tensor| check_shape(t, &[d, d], &dm).map(|_| t.matrix());
        let (q, k, v) = match f.get(InProjW, l) {
            Some(w) => {
                if let Some(sep) = [QW, KW, VW].iter().find_map(|&sl| f.get(sl, l)) {
                    return Err(format!("tensors {} and {} both give layer {n}'s Q/K/V; keep one form", w.name, sep.name));
                }
                check_shape(w, &[3 * d, d], &format!("Q, K and V stacked, {dm}"))?;
                let b = bias(InProjB, l, 3 * d, &format!("Q, K and V biases stacked, {dm}"))?;
                let part = |i: usize, tag: &str| {
                    Linear::dense(
                        format!("layers.{n}.{tag}"),
                        Matrix { rows: d, cols: d, data: w.data[i * d * d..(i + 1) * d * d].to_vec() },
                        b[i * d..(i + 1) * d].to_vec(),
                    )
                };
                (part(0, "q"), part(1, "k"), part(2, "v"))
            }
            None => {
                let inb = match f.get(InProjB, l) {
                    Some(_) => Some(bias(InProjB, l, 3 * d, &format!("Q, K and V biases stacked, {dm}"))?),
                    None => None,
                };
                let one = |ws: Slot, bs: Slot, i: usize, tag: &str| -> Result<Linear, String> {
                    let w = sq(f.need(ws, l)?)?;
                    let b = match &inb {
                        Some(all) => {
                            if let Some(t) = f.get(bs, l) {
                                return Err(format!("tensor {} duplicates the in_proj_bias of layer {n}; keep one", t.name));
                            }
                            all[i * d..(i + 1) * d].to_vec()
                        }
                        None => bias(bs, l, d, &dm)?,
                    };
                    Ok(Linear::dense(format!("layers.{n}.{tag}"), w, b))
                };
                (one(QW, QB, 0, "q")?, one(KW, KB, 1, "k")?, one(VW, VB, 2, "v")?)
            }
        };
        let o = Linear::dense(format!("layers.{n}.o"), sq(f.need(OW, l)?)?, bias(OB, l, d, &dm)?);
        let w1 = f.need(Ffn1W, l)?;
        let d_ff = w1.shape[0];
        match &d_ff0 {
            None => d_ff0 = Some((d_ff, w1.name.clone())),
            Some((ff, first)) if *ff != d_ff => {
                return Err(format!(
                    "tensor {} has shape {} but {first} has d_ff = {ff}: every layer needs the same feed-forward width",
                    w1.name,
                    shape_s(&w1.shape)
                ))
            }
            _ => {}
        }
        check_shape(w1, &[d_ff, d], &format!("[d_ff, d_model], {dm}"))?;
        let ffn1 = Linear::dense(format!("layers.{n}.ffn1"), w1.matrix(), bias(Ffn1B, l, d_ff, &format!("d_ff = {d_ff} from {}", w1.name))?);
        let w2 = f.need(Ffn2W, l)?;
        check_shape(w2, &[d, d_ff], &format!("[d_model, d_ff], {dm}, d_ff = {d_ff} from {}", w1.name))?;
        let ffn2 = Linear::dense(format!("layers.{n}.ffn2"), w2.matrix(), bias(Ffn2B, l, d, &dm)?);
        let norm1 = norm(Norm1W, Norm1B, l, true)?.expect("required");
        let norm2 = norm(Norm2W, Norm2B, l, true)?.expect("required");
        let feature_q = f.get(FeatureQ, l);
        let feature_k = f.get(FeatureK, l);
        if let (None, Some(t)) = (feature_q, feature_k) {
            return Err(format!("tensor {} has no partner {}: a separate K map needs the Q map", t.name, expected(&f.naming, FeatureQ, l)));
        }
        for t in feature_q.iter().chain(feature_k.iter()) {
            check_feature(t)?;
        }
        blocks.push(Block {
            q,
            k,
            v,
            o,
            ffn1,
            ffn2,
            norm1,
            norm2,
            feature_q: feature_q.map(Tensor::matrix),
            feature_k: feature_k.map(Tensor::matrix),
            bottleneck: None,
            extra_ffns: vec![],
        });
    }

    // A trained projection in some layers only would mix trained and drawn maps silently.
    let with: Vec<usize> = (0..blocks.len()).filter(|&n| blocks[n].feature_q.is_some()).collect();
    if let Some(&without) = (!with.is_empty()).then(|| (0..blocks.len()).find(|n| !with.contains(n))).flatten().as_ref() {
        return Err(format!(
            "layer {} has a feature projection ({}) but layer {without} has none ({}); give every layer one, or one shared {}",
            with[0],
            expected(&f.naming, FeatureQ, Some(with[0])),
            expected(&f.naming, FeatureQ, Some(without)),
            expected(&f.naming, SharedFeature, None)
        ));
    }
    let shared_feature = match f.get(SharedFeature, None) {
        Some(t) => {
            if let Some(per) = f.by_slot.iter().find(|((sl, _, _), _)| *sl == FeatureQ).map(|(_, t)| t) {
                return Err(format!("tensors {} and {} both give kernel attention's projection; keep the shared one or the per-layer ones", t.name, per.name));
            }
            check_feature(t)?;
            Some(t.matrix())
        }
        None => None,
    };
    let final_norm = norm(FinalNormW, FinalNormB, None, false)?;
    let pooler = match f.get(PoolerW, None) {
        Some(t) => Some(Linear::dense("pooler", check_shape(t, &[d, d], &dm).map(|_| t.matrix())?, bias(PoolerB, None, d, &dm)?)),
        None => {
            f.get(PoolerB, None).map_or(Ok(()), |t| Err(format!("tensor {} has no weight {}", t.name, expected(&f.naming, PoolerW, None))))?;
            None
        }
    };

    let head = head_layers(f, d, &dm, s)?;
    Ok(TransformerNet {
        embedding: emb.matrix(),
        embed_proj: None,
        no_norm: false,
        positions,
        token_types,
        embed_norm,
        blocks,
        final_norm,
        pooler,
        head,
        shared_feature,
    })
}

/// The classifier head: one Linear, or an nn.Sequential's Linear layers in index order, chained
/// from the pooled vector's `d` values (`dm` says where d comes from).
/// A language model's file may leave the head out (none: the caller ties it to the embedding).
/// The head's layer indices in order (None: one Linear), as `head_layers` builds them.
pub(super) fn head_keys(f: &Found) -> Vec<Option<usize>> {
    let mut k: Vec<Option<usize>> = f.by_slot.keys().filter(|(sl, _, _)| matches!(sl, HeadW | HeadB)).map(|(_, i, _)| *i).collect();
    k.sort();
    k.dedup();
    k
}

pub(super) fn head_layers(f: &Found, d: usize, dm: &str, s: &TransformerSettings) -> Result<Vec<Linear>, String> {
    let bias = |slot: Slot, n: Option<usize>, len: usize, why: &str| f.bias(slot, n, 0, len, why);
    let Some((root, _)) = &f.head_root else {
        if s.task.next_token() {
            return Ok(Vec::new());
        }
        return Err(format!(
            "a classifier head is required: the file has none of {O}classifier.weight, {O}classifier.K.weight, {O}head.weight, {O}head.K.weight, {O}fc.weight, {O}fc.K.weight (K an nn.Sequential index); a language model's is {O}lm_head.weight, or none with transformer.task = \"next_token\" (tied to the embedding); a question-answering model's is {O}qa_outputs.weight",
            O = f.naming.outer
        ));
    };
    let keys = head_keys(f);
    let mut head = Vec::new();
    let mut width = (d, format!("{dm} (the pooled vector)"));
    for key in keys {
        let name = |w: bool| format!("{}{root}{}.{}", f.naming.outer, key.map(|v| format!(".{v}")).unwrap_or_default(), if w { "weight" } else { "bias" });
        let w = f
            .get(HeadW, key)
            .ok_or_else(|| format!("tensor {} has no weight {}: a head layer is a Linear (weight and optional bias)", name(false), name(true)))?;
        if w.shape[1] != width.0 {
            return Err(format!(
                "tensor {} has shape {} but its input must be {} wide ({}); the head's layers must chain",
                w.name,
                shape_s(&w.shape),
                width.0,
                width.1
            ));
        }
        let b = bias(HeadB, key, w.shape[0], &format!("outputs of {}", w.name))?;
        head.push(Linear::dense(format!("head.{}", head.len()), w.matrix(), b));
        width = (w.shape[0], format!("the outputs of {}", w.name));
    }
    Ok(head)
}
