//! The training transformer as a safetensors file: the state dict under PyTorch's names, the
//! architecture and training command as metadata, and loading it back.

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::*;

/// The `model` metadata: the architecture in words. The feature projection is as drawn: no
/// training changes it (a hardware-aware training draws noise on it but does not clip it).
fn architecture(net: &Net<f32>, task: Task) -> String {
    let d = &net.dims;
    let attention = match net.attention {
        Attention::Softmax => "softmax attention softmax(q k^T / sqrt(d_head)) over the non-padding keys".to_string(),
        Attention::Kernel => format!(
            "kernel-approximated attention (FAVOR+ positive features, {m} features: phi(x) = exp([h, -h] - |x~|^2/2 - log sqrt({m})), h = W x~, x~ = x * {dh}^(-1/4), W = {FEATURE_PROJECTION} [{}, {dh}] fixed orthogonal blocks with rows of norm sqrt({dh}), shared by Q and K and both layers; out_i = sum_j (phi(q_i).phi(k_j)) v_j / sum_j phi(q_i).phi(k_j) over the non-padding keys)",
            d.features / 2,
            m = d.features,
            dh = d.d_head()
        ),
    };
    let input = match task {
        Task::ListOps => "input = ListOps token ids (0 padding at the end, 1..=10 digits 0..9, 11 [MIN, 12 [MAX, 13 [MED, 14 [SM, 15 ])",
        Task::Digits => "input = UCI 8x8 digits as 64 pixel tokens in row-major order, token = pixel value 0..16 + 1",
        Task::Cicero => "input = characters of Cicero, De finibus I, lower case, whitespace runs as one space, token = 1 + the index in \" abcdefghijklmnopqrstuvwxyz.,;:?!-'\" (0 padding)",
        Task::Kvqa => "input = [CLS]=1 key [SEP]=2 then four records (a key 3..=10, then 1-3 values 11..=26) and [SEP]=2, 0 padding at the end",
    };
    // The embedding and the shared layer, as both forms describe them.
    let stack = format!(
        "nn.Embedding({v}, {m}) times sqrt({m}) plus sinusoidal positions (max_len {l}), embed_norm nn.LayerNorm({m}, eps=1e-5); {r} post-LN layers sharing weights (encoder.layers.0 applied {r} times, repeat_layers = {r}): nn.TransformerEncoderLayer({m}, nhead={h}, dim_feedforward={f}, activation=nn.GELU() (erf), norm_first=False, layer_norm_eps=1e-5)",
        v = d.vocab,
        m = d.d_model,
        l = d.max_len,
        r = d.repeat,
        h = d.heads,
        f = d.d_ff,
    );
    let qkv = "bias-free Q/K/V (in_proj_weight, rows Q, K, V), out_proj with bias";
    let head = |out: usize| format!("nn.Sequential(nn.Linear({m}, {hid}), nn.GELU(), nn.Linear({hid}, {out}))", m = d.d_model, hid = d.hidden);
    if d.lm {
        return format!(
            "causal transformer language model: {stack} with the causal mask (token i attends to j <= i), {qkv}; the next-token head {} on every token; {input}; output = logits of the next token at every position",
            head(d.vocab)
        );
    }
    if d.span {
        return format!(
            "transformer question-answering reader: {stack}, {qkv}, {attention}; the span head {} on every token; {input}; output = the start and end logits of the answer at every position (the answer: the context span after the first [SEP] with the largest start + end logit)",
            head(2)
        );
    }
    format!(
        "transformer encoder classifier: {stack}, {qkv}, {attention}; mean pooling over the non-padding tokens; classifier {}; {input}; output = logits of classes 0..{}",
        head(d.classes),
        d.classes - 1
    )
}

/// The safetensors bytes of the model (names of [`param_names`], plus [`FEATURE_PROJECTION`]
/// for kernel attention), F32, with the metadata `format`, `model` and `training`.
pub fn safetensors_bytes(net: &Net<f32>, task: Task, training: &str) -> Result<Vec<u8>, TrainError> {
    let mut tensors: Vec<NamedTensor> =
        param_names(&net.dims).into_iter().zip(&net.params).map(|((name, shape), v)| (name.to_string(), shape, v.as_slice())).collect();
    if net.attention == Attention::Kernel {
        tensors.push((FEATURE_PROJECTION.to_string(), vec![net.dims.features / 2, net.dims.d_head()], &net.projection));
    }
    state_dict_bytes(&tensors, &model_metadata(architecture(net, task), training))
}

/// Reads a model written by [`safetensors_bytes`] with shapes `dims`: kernel attention when the
/// file has [`FEATURE_PROJECTION`]. Errors name the missing or mis-shaped tensor.
pub fn from_safetensors(bytes: &[u8], dims: Dims) -> Result<Net<f32>, TrainError> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, TrainError> {
        let t = st.tensor(name).map_err(|e| TrainError::Model(format!("{name}: {e}")))?;
        if t.shape() != shape || t.dtype() != safetensors::Dtype::F32 {
            return Err(TrainError::Model(format!("{name}: shape {:?} {:?}, expected F32 {shape:?}", t.shape(), t.dtype())));
        }
        Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    let params = param_names(&dims).iter().map(|(name, shape)| read(name, shape)).collect::<Result<Vec<_>, _>>()?;
    let (attention, projection) = if st.names().contains(&FEATURE_PROJECTION) {
        (Attention::Kernel, read(FEATURE_PROJECTION, &[dims.features / 2, dims.d_head()])?)
    } else {
        (Attention::Softmax, vec![])
    };
    let positions = sinusoids(dims.max_len, dims.d_model).into_iter().map(|v| v as f32).collect();
    Ok(Net { dims, attention, params, projection, positions })
}

/// Writes [`safetensors_bytes`] to `path`.
pub fn save_safetensors(net: &Net<f32>, task: Task, training: &str, path: impl AsRef<Path>) -> Result<(), TrainError> {
    write_model(path.as_ref(), &safetensors_bytes(net, task, training)?)
}
