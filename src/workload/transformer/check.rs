//! The `transformer` workload's validation: its settings checked against the network and the
//! data set before anything is computed, every message naming the field or row and the fix
//! (question answering's labelled answers included).

use super::*;

impl TransformerSettings {
    /// Checks the settings against the network and the data set: every message names the field
    /// or row and the fix. Nothing is computed before this passes.
    pub fn check(&self, data: &Dataset) -> Result<(), String> {
        let net = self.net();
        let d = net.d_model();
        if self.heads == 0 || !d.is_multiple_of(self.heads as usize) {
            return Err(format!("transformer.heads = {} must divide d_model = {d} (embedding [{}, {d}])", self.heads, net.vocab()));
        }
        let d_head = d / self.heads as usize;
        if d_head > crate::engine::cpu::attention_softmax::MAX_D_HEAD as usize {
            return Err(format!(
                "transformer.heads = {}: d_head = {d_head} exceeds {}; use more heads",
                self.heads,
                crate::engine::cpu::attention_softmax::MAX_D_HEAD
            ));
        }
        if self.repeat_layers == 0 || self.repeat_layers > MAX_REPEAT_LAYERS {
            return Err(format!(
                "transformer.repeat_layers = {}: the layer stack runs 1..={MAX_REPEAT_LAYERS} times (IBM's LRA models: 2; ALBERT-style sharing: the depth, e.g. 12)",
                self.repeat_layers
            ));
        }
        if !(self.embed_scale.is_finite() && self.embed_scale > 0.0) {
            return Err(format!(
                "transformer.embed_scale = {}: must be a finite number > 0 (√d_model = {} for Vaswani-style models, 1 for BERT)",
                self.embed_scale,
                (d as f64).sqrt()
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("transformer.layer_norm_eps = {}: must be > 0 (PyTorch 1e-5, BERT 1e-12)", self.layer_norm_eps));
        }
        if self.attention == AttentionKind::Kernel {
            let paired = matches!(self.feature_map, SoftmaxFeatures::Positive | SoftmaxFeatures::Trig);
            if self.features == 0 || (paired && self.features % 2 == 1) {
                return Err(format!(
                    "transformer.features = {}: the {:?} map makes features in pairs from m/2 projection rows; use an even count >= 2 (IBM's LRA models: 256)",
                    self.features, self.feature_map
                ));
            }
            if self.projection == FeatureSource::Model {
                let rows = self.projection_rows() as usize;
                for (bi, b) in net.blocks.iter().enumerate() {
                    for w in [b.feature_q.as_ref().or(net.shared_feature.as_ref()), b.feature_k.as_ref()].into_iter().flatten() {
                        if (w.rows, w.cols) != (rows, d_head) {
                            return Err(format!(
                                "layer {bi}: the state dict's feature projection is [{}, {}] but transformer.features = {} with the {:?} map needs [{rows}, {d_head}]; set features to match, or projection = \"orf\" to draw one",
                                w.rows, w.cols, self.features, self.feature_map
                            ));
                        }
                    }
                }
            }
        }
        if self.experts > 0 {
            let max = crate::engine::cpu::moe_gate::MAX_EXPERTS;
            if self.experts > max || self.top_k == 0 || self.top_k > self.experts {
                return Err(format!("transformer.experts = {}, top_k = {}: need 1 <= top_k <= experts <= {max}", self.experts, self.top_k));
            }
            if !(self.tier_noise_slope.is_finite() && self.tier_noise_slope > -1.0) {
                return Err(format!("transformer.tier_noise_slope = {}: must be > -1 (multipliers stay positive)", self.tier_noise_slope));
            }
            if self.tiers == 0 {
                return Err("transformer.tiers = 0: must be >= 1 (tiers stacked per tile)".into());
            }
        }
        if net.head.is_empty() {
            return Err("the state dict has no classifier head (classifier.weight)".into());
        }
        if self.task.next_token() {
            let task = "transformer.task = \"next_token\"";
            if !self.causal {
                return Err(format!("{task} needs transformer.causal = true: without the causal mask every token sees the one it is to predict"));
            }
            if net.classes() != net.vocab() {
                return Err(format!(
                    "{task}: the head gives {} outputs but the vocabulary has {} tokens; a language model's head gives one logit per token (lm_head.weight [{}, d_model], or none to tie it to the embedding)",
                    net.classes(),
                    net.vocab(),
                    net.vocab()
                ));
            }
            if net.pooler.is_some() {
                return Err(format!("{task}: the state dict has a pooler (pooler.dense), which reads one token per sequence; a language model's head reads every token: remove the pooler"));
            }
            if self.segment_sep.is_some() {
                return Err(format!("{task} reads single-segment sequences; remove transformer.segment_sep"));
            }
        }
        for (field, value, default) in
            [("max_answer_tokens", self.max_answer_tokens, MAX_ANSWER_TOKENS), ("n_best", self.n_best, N_BEST), ("answers", self.answers, 1)]
        {
            if !self.task.qa() && value != default {
                return Err(format!(
                    "transformer.{field} = {value} is question answering's; this task does not use it: set task = \"qa_f1\" or \"qa_exact_match\", or remove {field}"
                ));
            }
        }
        if self.task.qa() {
            let task = format!("transformer.task = \"{}\"", self.task.name());
            if self.segment_sep.is_none() {
                return Err(format!(
                    "{task} finds the answer in the context, the second segment of [CLS] question [SEP] context [SEP]: set transformer.segment_sep to the separator's id ([SEP] is 102 in BERT's uncased vocabulary)"
                ));
            }
            if net.classes() != 2 {
                return Err(format!(
                    "{task}: the head gives {} outputs per token; a question-answering head gives 2, the start and end logits (qa_outputs.weight [2, d_model])",
                    net.classes()
                ));
            }
            if net.pooler.is_some() {
                return Err(format!(
                    "{task}: the state dict has a pooler (pooler.dense), which reads one token per sequence; a question-answering head reads every token: remove the pooler"
                ));
            }
            if self.max_answer_tokens == 0 {
                return Err("transformer.max_answer_tokens = 0: an answer has at least one token (Hugging Face's SQuAD default: 30)".into());
            }
            if self.causal {
                return Err(format!("{task} reads the question and the context as a whole, as BERT does; remove transformer.causal"));
            }
        }
        if self.row_counts && (self.task.next_token() || self.task.regression()) {
            return Err(format!(
                "transformer.row_counts counts the trials that answer each row right; task = \"{}\" has no right answer per row: remove row_counts",
                self.task.name()
            ));
        }
        let v2 = data.text.as_ref().is_some_and(|t| t.unanswerable);
        if self.null_score_diff_threshold != 0.0 && !(v2 && self.null_score_diff_threshold.is_finite()) {
            return Err(if v2 {
                format!("transformer.null_score_diff_threshold = {}: must be a finite number (Hugging Face's default: 0)", self.null_score_diff_threshold)
            } else {
                format!(
                    "transformer.null_score_diff_threshold = {} decides SQuAD 2.0's unanswerable questions; this data has none (data.answer_text with \"version\": 2): remove it",
                    self.null_score_diff_threshold
                )
            });
        }
        let seq = data.n_features;
        if let Some(max) = net.max_positions() {
            if seq > max {
                return Err(format!("data: sequences of {seq} tokens are longer than the model's {max} learned positions; truncate them to {max}"));
            }
        }
        let vocab = net.vocab();
        if let Some(p) = self.pad_id.filter(|&p| p as usize >= vocab) {
            return Err(format!("transformer.pad_id = {p} is outside the vocabulary of {vocab} tokens"));
        }
        if let Some(sep) = self.segment_sep {
            let types = net.token_type_rows();
            // Question answering reads the separator as the context's start; a model without
            // token types (DistilBERT; RoBERTa's one row) adds no type-1 row to it.
            if types < 2 && !self.task.qa() {
                return Err(format!(
                    "transformer.segment_sep = {sep}: the model's token-type table has {types} rows; a second segment reads row 1 (BERT's has 2: save embeddings.token_type_embeddings, or leave segment_sep out for single-segment inputs)"
                ));
            }
            if sep as usize >= vocab || vocab as u64 > SEGMENT_BIT as u64 {
                return Err(format!("transformer.segment_sep = {sep} is outside the vocabulary of {vocab} tokens; give the separator's id ([SEP] is 102 in BERT's uncased vocabulary)"));
            }
            if self.pad_id == Some(sep) {
                return Err(format!("transformer.segment_sep = {sep} is also pad_id; the separator is a token of the sequence"));
            }
        }
        let mut longest = 0;
        for (r, row) in data.x.chunks(seq.max(1)).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if v.fract() != 0.0 || v < 0.0 || v as usize >= vocab {
                    return Err(format!("data row {}: token {c} is {v}, not a token id in 0..{vocab} (the model's vocabulary)", r + 1));
                }
            }
            let ids: Vec<u32> = row.iter().map(|&v| v as u32).collect();
            let len = self.length(&ids);
            if len == 0 {
                let pad = self.pad_id.unwrap_or_default();
                return Err(match ids.iter().position(|&t| t != pad) {
                    Some(c) => format!(
                        "data row {}: the sequence starts with padding (token 0 is transformer.pad_id = {pad}) but token {c} is not padding; padding must trail each sequence",
                        r + 1
                    ),
                    None => format!(
                        "data row {}: the sequence is all padding (transformer.pad_id = {pad}); every row needs at least one token to pool over",
                        r + 1
                    ),
                });
            }
            if let Some(c) = ids[len..].iter().position(|&t| Some(t) != self.pad_id) {
                return Err(format!("data row {}: token {} follows padding; padding (transformer.pad_id) must trail each sequence", r + 1, len + c));
            }
            longest = longest.max(len);
        }
        if self.task.next_token() {
            if longest < 2 {
                return Err("data: no row has two tokens before its padding; next-token prediction needs a token to predict from and one to predict".into());
            }
            return Ok(());
        }
        if self.task.qa() {
            return self.check_spans(data);
        }
        let classes = net.classes();
        if self.task.regression() {
            if classes != 1 {
                return Err(format!(
                    "transformer.task = \"{}\" scores a regression head's one output per sequence (STS-B's num_labels = 1); the head gives {classes}: use task = \"classify\", \"classify_matthews\" or \"classify_f1\"",
                    self.task.name()
                ));
            }
            if data.targets.len() != data.len() {
                return Err(format!("transformer.task = \"{}\" needs a real-valued target per row (the data's last column, or data.labels)", self.task.name()));
            }
            return Ok(());
        }
        if classes < 2 && self.task != Task::Classify {
            return Err(format!(
                "transformer.task = \"{}\": the head gives 1 output; a classifier gives one per class (a 1-output head is a regression: task = \"regress_pearson\" or \"regress_spearman\")",
                self.task.name()
            ));
        }
        if self.task == Task::ClassifyF1 && classes != 2 {
            return Err(format!(
                "transformer.task = \"classify_f1\" scores the F1 of class 1 of a binary classifier (GLUE's MRPC, QQP); the head gives {classes} outputs: use \"classify_matthews\" or \"classify\""
            ));
        }
        if let Some(&l) = data.labels.iter().find(|&&l| l as usize >= classes) {
            return Err(format!("the data set has label {l} but the head has {classes} outputs"));
        }
        Ok(())
    }

    /// Question answering: every labelled answer of every row lies in its context (after the
    /// first `segment_sep`, before the padding, the separators excluded) and is at most
    /// `max_answer_tokens` long, so the answer search can find it.
    fn check_spans(&self, data: &Dataset) -> Result<(), String> {
        let seq = data.n_features;
        let sep = self.segment_sep.expect("checked before");
        let k = self.answers as usize;
        if data.answers() != k {
            return Err(format!(
                "transformer.answers = {k} at this point but the data were read with {} answers per row; set answers once for the whole file",
                data.answers()
            ));
        }
        for (r, row) in data.x.chunks(seq.max(1)).enumerate() {
            let ids: Vec<u32> = row.iter().map(|&v| v as u32).collect();
            let len = self.length(&ids);
            let Some(first) = ids[..len].iter().position(|&t| t == sep) else {
                return Err(format!("data row {}: no separator (transformer.segment_sep = {sep}) before the padding; a question-answering row is [CLS] question [SEP] context [SEP]", r + 1));
            };
            for (j, &label) in data.spans[r * k..(r + 1) * k].iter().enumerate() {
                let (s, e) = span_of(label, seq);
                let which = if k > 1 { format!(", answer {}", j + 1) } else { String::new() };
                let context = |p: u32| (p as usize) > first && (p as usize) < len && ids[p as usize] != sep;
                if !(context(s) && context(e)) || ids[s as usize..=e as usize].contains(&sep) {
                    return Err(format!(
                        "data row {}{which}: the answer span [{s}, {e}] is not inside the context (tokens {}..{len} after the first separator, the separators excluded); a row whose answer the tokenizer cut off has none to find: leave it out",
                        r + 1,
                        first + 1
                    ));
                }
                if e - s + 1 > self.max_answer_tokens {
                    return Err(format!(
                        "data row {}{which}: the answer span [{s}, {e}] has {} tokens, more than transformer.max_answer_tokens = {}; raise it to the longest answer",
                        r + 1,
                        e - s + 1,
                        self.max_answer_tokens
                    ));
                }
            }
        }
        Ok(())
    }
}
