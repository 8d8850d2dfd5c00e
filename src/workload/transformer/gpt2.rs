//! A Hugging Face GPT-2 state dict (`GPT2LMHeadModel`, `GPT2ForSequenceClassification` or
//! `GPT2Model` as `save_pretrained` writes it; Radford et al., "Language models are unsupervised
//! multitask learners", 2019) read under PyTorch's `nn.TransformerEncoder` names, so the one name
//! table ([`super::names`]) and the one forward run it: `wte` and `wpe` are the token and learned
//! position tables; block N's `ln_1`, `attn.c_attn` (Q, K, V stacked, with biases), `attn.c_proj`,
//! `ln_2`, `mlp.c_fc`, `mlp.c_proj` are `norm1`, `in_proj`, `out_proj`, `norm2`, `linear1`,
//! `linear2` of a pre-LN layer; `ln_f` is the final norm; `lm_head` is kept unless it is `wte`
//! itself (then the engine ties it: logits = wte h, no bias). A sequence classifier's `score` (a
//! Linear without bias on the last non-padding token) is the head, and needs `pooling = "last"`.
//! GPT-2's Conv1D layers store W as [in, out] (y = x W + b), so each weight is transposed to
//! nn.Linear's [out, in]. The causal-mask buffers (`attn.bias`, `attn.masked_bias`) are skipped.
//! Python's `aimc.from_torch` maps a live model the same way.

use super::{Pooling, TransformerSettings};

/// Whether the file's names are GPT-2's (a block's `attn.c_attn.weight`, with or without the
/// `transformer.` prefix `GPT2LMHeadModel` adds).
pub fn is_gpt2(names: &[String]) -> bool {
    names.iter().any(|n| {
        let n = n.strip_prefix("transformer.").unwrap_or(n);
        n.strip_prefix("h.").and_then(|r| r.split_once('.')).is_some_and(|(i, rest)| i.parse::<usize>().is_ok() && rest == "attn.c_attn.weight")
    })
}

/// The file rewritten under PyTorch's names (safetensors bytes, F32), or why it cannot be: a
/// tensor GPT-2's forward does not read, or a setting its blocks contradict.
pub fn to_torch_names(st: &safetensors::SafeTensors, names: &[String], s: &TransformerSettings) -> Result<Vec<u8>, String> {
    if !s.norm_first {
        return Err("a GPT-2 state dict runs pre-LN blocks (ln_1 before attention, ln_2 before the MLP): set transformer.norm_first = true (and activation = \"gelu\", the tanh form of its gelu_new)".into());
    }
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut wte: Option<Vec<f32>> = None;
    let mut head: Option<(Vec<usize>, Vec<f32>)> = None;
    for name in names {
        let view = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
        let bare = name.strip_prefix("transformer.").unwrap_or(name);
        let skip = bare.strip_prefix("h.").and_then(|r| r.split_once('.')).is_some_and(|(_, rest)| rest == "attn.bias" || rest == "attn.masked_bias");
        if skip {
            continue;
        }
        let shape = view.shape().to_vec();
        let data = crate::workload::io::tensor_f32(&view).map_err(|m| format!("tensor {name}: {m}"))?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "tensor {name} holds {} at flat index {i}: weights must be finite (NaN or infinity); retrain or repair the checkpoint",
                data[i]
            ));
        }
        let (target, conv) = match bare {
            "wte.weight" => {
                wte = Some(data.clone());
                ("embedding.weight".to_string(), false)
            }
            "wpe.weight" => ("pos_embedding.weight".into(), false),
            "ln_f.weight" | "ln_f.bias" => (format!("encoder.norm.{}", &bare[5..]), false),
            "lm_head.weight" => {
                head = Some((shape, data));
                continue;
            }
            // A learned input range of the head (aimc.torch's `input_range`), tied or not.
            "lm_head.input_range" => ("lm_head.input_range".into(), false),
            "score.weight" if s.pooling != Pooling::Last => {
                return Err(format!(
                    "tensor {name} is GPT2ForSequenceClassification's head, which reads the last non-padding token: set transformer.pooling = \"last\" (and causal = true)"
                ));
            }
            "score.weight" => ("classifier.weight".into(), false),
            _ => {
                let Some((n, part)) = bare.strip_prefix("h.").and_then(|r| r.split_once('.')).filter(|(n, _)| n.parse::<usize>().is_ok()) else {
                    return Err(format!(
                        "tensor {name} is not in GPT-2's forward (wte, wpe, h.N.*, ln_f, lm_head, score); rename it or leave it out of the file"
                    ));
                };
                let (module, what) = part.rsplit_once('.').unwrap_or((part, ""));
                let (to, conv) = match module {
                    "ln_1" => ("norm1", false),
                    "ln_2" => ("norm2", false),
                    "attn.c_attn" => ("self_attn.in_proj", true),
                    "attn.c_proj" => ("self_attn.out_proj", true),
                    "mlp.c_fc" => ("linear1", true),
                    "mlp.c_proj" => ("linear2", true),
                    _ => {
                        return Err(format!(
                            "tensor {name} is not in GPT-2's forward (a block holds ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj)"
                        ))
                    }
                };
                let key = match (to, what) {
                    ("self_attn.in_proj", "input_range") => format!("encoder.layers.{n}.self_attn.in_proj.input_range"),
                    ("self_attn.in_proj", w) => format!("encoder.layers.{n}.self_attn.in_proj_{w}"),
                    (t, w) => format!("encoder.layers.{n}.{t}.{w}"),
                };
                (key, conv && what == "weight")
            }
        };
        if conv {
            let [rows, cols] = shape[..] else {
                return Err(format!("tensor {name} has shape {shape:?}; a GPT-2 Conv1D weight is 2-D [in, out]"));
            };
            let t: Vec<f32> = (0..cols * rows).map(|k| data[(k % rows) * cols + k / rows]).collect();
            out.push((target, vec![cols, rows], t));
        } else {
            out.push((target, shape, data));
        }
    }
    if let Some((shape, data)) = head.filter(|(_, h)| wte.as_ref() != Some(h)) {
        out.push(("lm_head.weight".into(), shape, data));
    }
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = out.into_iter().map(|(k, shape, v)| (k, v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape)).collect();
    let views = bytes
        .iter()
        .map(|(k, b, shape)| safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).map(|v| (k.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("rewriting GPT-2's names: {e}"))?;
    safetensors::serialize(views, None).map_err(|e| format!("rewriting GPT-2's names: {e}"))
}
