//! Learned input ranges in transformer state dicts (aihwkit's `pre_post.input_range`, as
//! `aimc.torch.prepare(..., input_range=True)` saves them): `X.input_range` beside a weight
//! `X.weight` of the name table (docs/transformer-names.md, "Input ranges"), read with the
//! classifier's rules (`workload::io::input_range_values`) and set on the Linear layer that
//! weight built.

use super::names::{head_keys, lookup, Found, Naming, SlotKey, Tensor};
use super::table::Slot;
use super::{Block, TransformerNet};
use Slot::*;

/// An input range `name` (`prefix.input_range`): the weight `prefix.weight` must be a weight
/// matrix of the name table, the range one value or one per input tile, each finite and > 0.
pub(super) fn range_tensor(st: &safetensors::SafeTensors, name: &str, prefix: &str, naming: &Naming) -> Result<(SlotKey, Tensor), String> {
    // `X.weight`, or PyTorch's stacked `X_weight` (`self_attn.in_proj_weight`).
    let weight = format!("{prefix}.weight");
    let found =
        [weight.clone(), format!("{prefix}_weight")].into_iter().find_map(|w| lookup(&w, naming).filter(|(e, _, _)| e.slot != Skip && e.slot.rank() == 2));
    let Some((entry, index, j)) = found else {
        return Err(format!(
            "tensor {name} is an input range, but {weight} is no weight matrix of the {} name table; an input range sits beside its layer's weight",
            naming.family.describe()
        ));
    };
    let view = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
    let data = crate::workload::io::input_range_values(&format!("tensor {name}"), &view)?;
    Ok(((entry.slot, index, j), Tensor { name: name.to_string(), shape: view.shape().to_vec(), data }))
}

/// Sets every input range on the Linear layer its weight built: Q, K, V (all three from a
/// stacked in_proj), O, the feed-forward pair, the pooler and the head's layers, and MobileBERT's
/// embedding projection, bottlenecks and stacked feed-forward pairs.
pub(super) fn attach_ranges(f: &Found, net: &mut TransformerNet) -> Result<(), String> {
    let heads = head_keys(f);
    for (&(slot, n, j), t) in &f.ranges {
        if slot == HeadW && n.is_none() && net.head.is_empty() && t.name.ends_with("lm_head.input_range") {
            // The language-model head tied to the embedding: set when it is built.
            continue;
        }
        if !f.by_slot.contains_key(&(slot, n, j)) {
            return Err(format!(
                "tensor {} has no weight {} in the file: an input range sits beside its layer's weight",
                t.name,
                t.name.replace(".input_range", ".weight")
            ));
        }
        let v = t.data.clone();
        let missing = || format!("tensor {}: the model has no {} for it", t.name, slot.describe());
        let block = |net| block_of(net, n, &t.name);
        match slot {
            QW => block(net)?.q.input_range = v,
            KW => block(net)?.k.input_range = v,
            VW => block(net)?.v.input_range = v,
            OW => block(net)?.o.input_range = v,
            Ffn1W => block(net)?.ffn1.input_range = v,
            Ffn2W => block(net)?.ffn2.input_range = v,
            InProjW => {
                let b = block(net)?;
                (b.q.input_range, b.k.input_range, b.v.input_range) = (v.clone(), v.clone(), v);
            }
            BnInW => block(net)?.bottleneck.as_mut().ok_or_else(missing)?.input.0.input_range = v,
            BnShW => block(net)?.bottleneck.as_mut().and_then(|bn| bn.shared.as_mut()).ok_or_else(missing)?.0.input_range = v,
            BnOutW => block(net)?.bottleneck.as_mut().ok_or_else(missing)?.output.0.input_range = v,
            XFfn1W => block(net)?.extra_ffns.get_mut(j).ok_or_else(missing)?.0.input_range = v,
            XFfn2W => block(net)?.extra_ffns.get_mut(j).ok_or_else(missing)?.1.input_range = v,
            // Left out of the net when transformers would not apply it (a table as wide as the layers).
            EmbedProjW => match net.embed_proj.as_mut() {
                Some((l, _)) => l.input_range = v,
                None => {
                    return Err(format!(
                        "tensor {}: the model applies no embedding projection (its embedding table is as wide as its layers), so it has no input to clip; leave it out of the file",
                        t.name
                    ))
                }
            },
            PoolerW => net.pooler.as_mut().ok_or_else(|| format!("tensor {}: the model has no pooler", t.name))?.input_range = v,
            HeadW => {
                let at = heads.iter().position(|k| *k == n).filter(|&i| i < net.head.len()).ok_or_else(|| format!("tensor {}: no such head layer", t.name))?;
                net.head[at].input_range = v;
            }
            other => {
                return Err(format!(
                    "tensor {}: aimc reads the input ranges of Q, K, V, O, the feed-forward pairs, MobileBERT's embedding projection and bottlenecks, the pooler and the head, not of {}; leave it out of the file",
                    t.name,
                    other.describe()
                ))
            }
        }
    }
    Ok(())
}

/// The encoder layer `n` a range tensor `name` belongs to.
fn block_of<'a>(net: &'a mut TransformerNet, n: Option<usize>, name: &str) -> Result<&'a mut Block, String> {
    let i = n.ok_or_else(|| format!("tensor {name}: no layer index"))?;
    net.blocks.get_mut(i).ok_or_else(|| format!("tensor {name}: no layer {i}"))
}
