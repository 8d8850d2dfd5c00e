//! The transformer workload's state-dict name table (`workload::transformer::table`, read by `names`) and its
//! independent f64 reference forward (`workload::transformer::reference`): the same weights under
//! PyTorch and BERT names load to the same net; every bad input is named; the reference agrees
//! with hand-computable cases (uniform attention, causal token 0, kernel ≈ softmax, padding).

use aimc::workload::io::{Linear, Matrix};
use aimc::workload::transformer::{names, reference, table, Block, Norm, Positions, TransformerNet, TransformerSettings};
use safetensors::tensor::{Dtype, TensorView};
use std::sync::Arc;

use crate::common;

/// splitmix64: small seeded weights without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [−a, a], rounded to a multiple of 2^-10 (exact in F16 and BF16 for |v| < 0.25).
    fn v(&mut self, a: f32) -> f32 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((2.0 * u - 1.0) * a as f64 * 1024.0).round() / 1024.0) as f32
    }
    fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.v(a)).collect()
    }
}

fn settings(toml_text: &str) -> TransformerSettings {
    toml::from_str(toml_text).expect("settings")
}

/// One layer's weights in PyTorch's layout.
#[derive(Clone)]
struct Lw {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    qb: Vec<f32>,
    kb: Vec<f32>,
    vb: Vec<f32>,
    o: Vec<f32>,
    ob: Vec<f32>,
    f1: Vec<f32>,
    f1b: Vec<f32>,
    f2: Vec<f32>,
    f2b: Vec<f32>,
    n1: (Vec<f32>, Vec<f32>),
    n2: (Vec<f32>, Vec<f32>),
}

/// A whole model's weights, written under either family's names.
#[derive(Clone)]
struct Weights {
    vocab: usize,
    d: usize,
    d_ff: usize,
    max_pos: usize,
    classes: usize,
    emb: Vec<f32>,
    pos: Vec<f32>,
    en: (Vec<f32>, Vec<f32>),
    layers: Vec<Lw>,
    pool: (Vec<f32>, Vec<f32>),
    head: (Vec<f32>, Vec<f32>),
}

type Named = Vec<(String, Vec<usize>, Vec<f32>)>;

impl Weights {
    fn new(seed: u64, vocab: usize, d: usize, d_ff: usize, layers: usize) -> Weights {
        let mut r = Rng(seed);
        let (max_pos, classes) = (40, 3);
        let ln = |r: &mut Rng| ((0..d).map(|_| 1.0 + r.v(0.1)).collect::<Vec<f32>>(), r.vec(d, 0.1));
        let sc = 1.0 / (d as f32).sqrt();
        let layers = (0..layers)
            .map(|_| Lw {
                q: r.vec(d * d, sc),
                k: r.vec(d * d, sc),
                v: r.vec(d * d, sc),
                qb: r.vec(d, 0.1),
                kb: r.vec(d, 0.1),
                vb: r.vec(d, 0.1),
                o: r.vec(d * d, sc),
                ob: r.vec(d, 0.1),
                f1: r.vec(d_ff * d, sc),
                f1b: r.vec(d_ff, 0.1),
                f2: r.vec(d * d_ff, 1.0 / (d_ff as f32).sqrt()),
                f2b: r.vec(d, 0.1),
                n1: ln(&mut r),
                n2: ln(&mut r),
            })
            .collect();
        Weights {
            vocab,
            d,
            d_ff,
            max_pos,
            classes,
            emb: r.vec(vocab * d, 1.0),
            pos: r.vec(max_pos * d, 0.2),
            en: ln(&mut r),
            layers,
            pool: (r.vec(d * d, sc), r.vec(d, 0.1)),
            head: (r.vec(classes * d, sc), r.vec(classes, 0.1)),
        }
    }

    /// PyTorch names: `encoder.layers.N...` with aimc's names around it.
    fn torch(&self) -> Named {
        let (d, f) = (self.d, self.d_ff);
        let mut t: Named = vec![
            ("embedding.weight".into(), vec![self.vocab, d], self.emb.clone()),
            ("pos_embedding.weight".into(), vec![self.max_pos, d], self.pos.clone()),
            ("embed_norm.weight".into(), vec![d], self.en.0.clone()),
            ("embed_norm.bias".into(), vec![d], self.en.1.clone()),
            ("pooler.dense.weight".into(), vec![d, d], self.pool.0.clone()),
            ("pooler.dense.bias".into(), vec![d], self.pool.1.clone()),
            ("classifier.weight".into(), vec![self.classes, d], self.head.0.clone()),
            ("classifier.bias".into(), vec![self.classes], self.head.1.clone()),
        ];
        for (n, l) in self.layers.iter().enumerate() {
            let p = format!("encoder.layers.{n}.");
            t.push((format!("{p}self_attn.in_proj_weight"), vec![3 * d, d], [l.q.clone(), l.k.clone(), l.v.clone()].concat()));
            t.push((format!("{p}self_attn.in_proj_bias"), vec![3 * d], [l.qb.clone(), l.kb.clone(), l.vb.clone()].concat()));
            t.push((format!("{p}self_attn.out_proj.weight"), vec![d, d], l.o.clone()));
            t.push((format!("{p}self_attn.out_proj.bias"), vec![d], l.ob.clone()));
            t.push((format!("{p}linear1.weight"), vec![f, d], l.f1.clone()));
            t.push((format!("{p}linear1.bias"), vec![f], l.f1b.clone()));
            t.push((format!("{p}linear2.weight"), vec![d, f], l.f2.clone()));
            t.push((format!("{p}linear2.bias"), vec![d], l.f2b.clone()));
            t.push((format!("{p}norm1.weight"), vec![d], l.n1.0.clone()));
            t.push((format!("{p}norm1.bias"), vec![d], l.n1.1.clone()));
            t.push((format!("{p}norm2.weight"), vec![d], l.n2.0.clone()));
            t.push((format!("{p}norm2.bias"), vec![d], l.n2.1.clone()));
        }
        t
    }

    /// Hugging Face `BertForSequenceClassification` names (`bert.` prefix); layer 0's LayerNorms
    /// in the older gamma/beta spelling.
    fn bert(&self) -> Named {
        let (d, f) = (self.d, self.d_ff);
        let mut t: Named = vec![
            ("bert.embeddings.word_embeddings.weight".into(), vec![self.vocab, d], self.emb.clone()),
            ("bert.embeddings.position_embeddings.weight".into(), vec![self.max_pos, d], self.pos.clone()),
            ("bert.embeddings.LayerNorm.weight".into(), vec![d], self.en.0.clone()),
            ("bert.embeddings.LayerNorm.bias".into(), vec![d], self.en.1.clone()),
            ("bert.pooler.dense.weight".into(), vec![d, d], self.pool.0.clone()),
            ("bert.pooler.dense.bias".into(), vec![d], self.pool.1.clone()),
            ("classifier.weight".into(), vec![self.classes, d], self.head.0.clone()),
            ("classifier.bias".into(), vec![self.classes], self.head.1.clone()),
        ];
        for (n, l) in self.layers.iter().enumerate() {
            let p = format!("bert.encoder.layer.{n}.");
            let (w, b) = if n == 0 { ("gamma", "beta") } else { ("weight", "bias") };
            for (name, m, bias) in [("attention.self.query", &l.q, &l.qb), ("attention.self.key", &l.k, &l.kb), ("attention.self.value", &l.v, &l.vb)] {
                t.push((format!("{p}{name}.weight"), vec![d, d], m.clone()));
                t.push((format!("{p}{name}.bias"), vec![d], bias.clone()));
            }
            t.push((format!("{p}attention.output.dense.weight"), vec![d, d], l.o.clone()));
            t.push((format!("{p}attention.output.dense.bias"), vec![d], l.ob.clone()));
            t.push((format!("{p}attention.output.LayerNorm.{w}"), vec![d], l.n1.0.clone()));
            t.push((format!("{p}attention.output.LayerNorm.{b}"), vec![d], l.n1.1.clone()));
            t.push((format!("{p}intermediate.dense.weight"), vec![f, d], l.f1.clone()));
            t.push((format!("{p}intermediate.dense.bias"), vec![f], l.f1b.clone()));
            t.push((format!("{p}output.dense.weight"), vec![d, f], l.f2.clone()));
            t.push((format!("{p}output.dense.bias"), vec![d], l.f2b.clone()));
            t.push((format!("{p}output.LayerNorm.{w}"), vec![d], l.n2.0.clone()));
            t.push((format!("{p}output.LayerNorm.{b}"), vec![d], l.n2.1.clone()));
        }
        t
    }
}

fn f16_bits(v: f32) -> u16 {
    // Exact for the test's values (multiples of 2^-10 below 2 in magnitude, normal or zero).
    if v == 0.0 {
        return if v.is_sign_negative() { 0x8000 } else { 0 };
    }
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32 - 127 + 15;
    assert!(exp > 0 && exp < 31 && b & 0x1FFF == 0, "{v} is not exact in F16");
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3FF) as u16
}

fn encode(v: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F64 => v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect(),
        Dtype::F16 => v.iter().flat_map(|&x| f16_bits(x).to_le_bytes()).collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|&x| {
                assert_eq!(x.to_bits() & 0xFFFF, 0, "{x} is not exact in BF16");
                ((x.to_bits() >> 16) as u16).to_le_bytes()
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// A safetensors file of `t`, every tensor as `dtype` unless `per` names another; `extra` adds
/// raw tensors (int64 buffers).
fn file_with(t: &Named, dtype: impl Fn(&str) -> Dtype, extra: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = t
        .iter()
        .map(|(n, sh, v)| (n.clone(), dtype(n), sh.clone(), encode(v, dtype(n))))
        .chain(extra.iter().map(|(n, dt, sh, b)| (n.to_string(), *dt, sh.clone(), b.clone())))
        .collect();
    let views: Vec<(String, TensorView)> = raw.iter().map(|(n, dt, sh, b)| (n.clone(), TensorView::new(*dt, sh.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

fn file(t: &Named) -> Vec<u8> {
    file_with(t, |_| Dtype::F32, &[])
}

fn lin_eq(a: &Linear, b: &Linear) {
    assert_eq!(a.name, b.name);
    assert_eq!(a.weight, b.weight, "{}", a.name);
    assert_eq!(a.bias, b.bias, "{}", a.name);
}

fn same_net(a: &TransformerNet, b: &TransformerNet) {
    assert_eq!(a.embedding, b.embedding);
    assert_eq!(a.positions, b.positions);
    assert_eq!(a.token_types, b.token_types);
    assert_eq!(a.embed_norm, b.embed_norm);
    assert_eq!(a.final_norm, b.final_norm);
    assert_eq!(a.shared_feature, b.shared_feature);
    assert_eq!(a.blocks.len(), b.blocks.len());
    for (x, y) in a.blocks.iter().zip(&b.blocks) {
        for (p, q) in [(&x.q, &y.q), (&x.k, &y.k), (&x.v, &y.v), (&x.o, &y.o), (&x.ffn1, &y.ffn1), (&x.ffn2, &y.ffn2)] {
            lin_eq(p, q);
        }
        assert_eq!(x.norm1, y.norm1);
        assert_eq!(x.norm2, y.norm2);
        assert_eq!(x.feature_q, y.feature_q);
        assert_eq!(x.feature_k, y.feature_k);
    }
    assert_eq!(a.pooler.is_some(), b.pooler.is_some());
    if let (Some(p), Some(q)) = (&a.pooler, &b.pooler) {
        lin_eq(p, q);
    }
    assert_eq!(a.head.len(), b.head.len());
    for (p, q) in a.head.iter().zip(&b.head) {
        lin_eq(p, q);
    }
}

/// Settings with the net attached (kernel attention's projections read it).
fn with_net(mut s: TransformerSettings, net: &TransformerNet) -> TransformerSettings {
    s.net = Some(Arc::new(net.clone()));
    s
}

fn sequences(vocab: u32, n: usize, len: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut r = Rng(seed);
    (0..n).map(|_| (0..len).map(|_| 1 + (r.next() % (vocab as u64 - 1)) as u32).collect()).collect()
}

const BASE: &str = "heads = 2\npooling = \"cls\"\nlayer_norm_eps = 1e-12\nactivation = \"gelu_exact\"\n";

#[test]
fn torch_and_bert_names_load_to_the_same_net() {
    let w = Weights::new(1, 11, 8, 16, 2);
    let s = settings(BASE);
    let position_ids: Vec<u8> = (0..w.max_pos as i64).flat_map(|v| v.to_le_bytes()).collect();
    let torch = names::parse(&file(&w.torch()), &s).unwrap();
    let bert =
        names::parse(&file_with(&w.bert(), |_| Dtype::F32, &[("bert.embeddings.position_ids", Dtype::I64, vec![1, w.max_pos], position_ids)]), &s).unwrap();
    same_net(&torch, &bert);
    assert_eq!((torch.d_model(), torch.vocab(), torch.d_ff(), torch.classes(), torch.max_positions()), (8, 11, 16, 3, Some(40)));
    assert_eq!(torch.blocks[1].q.name, "layers.1.q");
    for tokens in sequences(11, 4, 9, 5) {
        let (a, b) = (reference::logits(&torch, &s, &tokens, 9), reference::logits(&bert, &s, &tokens, 9));
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite()) && a.len() == 3);
    }
    // BERT's token-type row 0 is added to every position: the same as folding it into the
    // learned positions (up to the f32 rounding of that sum).
    let mut r = Rng(9);
    let tt = r.vec(2 * w.d, 0.2);
    let mut named = w.bert();
    named.push(("bert.embeddings.token_type_embeddings.weight".into(), vec![2, w.d], tt.clone()));
    let with_tt = names::parse(&file(&named), &s).unwrap();
    assert_eq!(with_tt.token_types.as_ref().map(|m| (m.rows, &m.data[..])), Some((2, &tt[..])));
    // A table without rows has no type 0: refused as every empty tensor is.
    let mut empty = w.bert();
    empty.push(("bert.embeddings.token_type_embeddings.weight".into(), vec![0, w.d], vec![]));
    let e = err_of(&empty, &s);
    assert!(e.contains("token_type_embeddings") && e.contains("is empty"), "{e}");
    let mut folded = w.clone();
    for row in folded.pos.chunks_exact_mut(w.d) {
        for (p, t) in row.iter_mut().zip(&tt) {
            *p += t;
        }
    }
    let folded = names::parse(&file(&folded.torch()), &s).unwrap();
    for tokens in sequences(11, 3, 7, 6) {
        let (a, b) = (reference::logits(&with_tt, &s, &tokens, 7), reference::logits(&folded, &s, &tokens, 7));
        for (x, y) in a.iter().zip(&b) {
            // Positions of size ≤ 0.4 rounded once to f32 (2^-24 relative) through a
            // well-conditioned network of this size: far below 1e-5.
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn in_proj_is_split_q_then_k_then_v() {
    let w = Weights::new(2, 7, 4, 8, 1);
    let d = w.d;
    let mut named = w.torch();
    let rows: Vec<f32> = (0..3 * d * d).map(|i| (i / d) as f32 / 16.0).collect();
    let bias: Vec<f32> = (0..3 * d).map(|i| i as f32 / 16.0).collect();
    for (n, _, v) in named.iter_mut() {
        if n.ends_with("in_proj_weight") {
            *v = rows.clone();
        }
        if n.ends_with("in_proj_bias") {
            *v = bias.clone();
        }
    }
    let net = names::parse(&file(&named), &settings(BASE)).unwrap();
    let b = &net.blocks[0];
    for (i, l) in [&b.q, &b.k, &b.v].into_iter().enumerate() {
        assert_eq!(l.weight.data, rows[i * d * d..(i + 1) * d * d], "part {i}");
        assert_eq!(l.bias, bias[i * d..(i + 1) * d], "part {i}");
        assert_eq!(l.weight.data[0], (i * d) as f32 / 16.0);
    }
}

#[test]
fn separate_q_k_v_proj_weights_load_as_in_proj_does() {
    let w = Weights::new(3, 7, 4, 8, 2);
    let d = w.d;
    let s = settings(BASE);
    let stacked = names::parse(&file(&w.torch()), &s).unwrap();
    let mut named: Named = Vec::new();
    for (n, sh, v) in w.torch() {
        match n.strip_suffix("in_proj_weight") {
            Some(p) => {
                for (i, part) in ["q", "k", "v"].iter().enumerate() {
                    named.push((format!("{p}{part}_proj_weight"), vec![d, d], v[i * d * d..(i + 1) * d * d].to_vec()));
                }
            }
            None => named.push((n, sh, v)),
        }
    }
    same_net(&stacked, &names::parse(&file(&named), &s).unwrap());
    // Both forms at once is ambiguous.
    let mut both = named.clone();
    both.push(("encoder.layers.0.self_attn.in_proj_weight".into(), vec![3 * d, d], vec![0.0; 3 * d * d]));
    let e = names::parse(&file(&both), &s).unwrap_err();
    assert!(e.contains("in_proj_weight") && e.contains("q_proj_weight"), "{e}");
}

#[test]
fn missing_biases_are_zeros() {
    let w = Weights::new(4, 7, 4, 8, 1);
    let named: Named = w.torch().into_iter().filter(|(n, _, _)| !n.ends_with("bias")).collect();
    let net = names::parse(&file(&named), &settings(BASE)).unwrap();
    let b = &net.blocks[0];
    for l in [&b.q, &b.k, &b.v, &b.o, &b.ffn1, &b.ffn2, net.pooler.as_ref().unwrap(), &net.head[0]] {
        assert!(l.bias.iter().all(|&v| v == 0.0) && l.bias.len() == l.weight.rows, "{}", l.name);
    }
    assert_eq!(b.norm1.beta, vec![0.0; 4]);
    assert_eq!(net.embed_norm.as_ref().unwrap().beta, vec![0.0; 4]);
    assert_eq!(b.ffn1.weight.data, w.layers[0].f1);
}

#[test]
fn f16_bf16_and_f64_tensors_convert_to_the_same_f32() {
    let w = Weights::new(5, 7, 4, 8, 1);
    let s = settings(BASE);
    // Weights cut to BF16's 8 significant bits (multiples of 2^-10 below 2 stay so): exact in
    // F16, BF16 and F64, so every file must load to the same f32 values.
    let named: Named = w.torch().into_iter().map(|(n, sh, v)| (n, sh, v.iter().map(|x| f32::from_bits(x.to_bits() & 0xFFFF_0000)).collect())).collect();
    let f32net = names::parse(&file(&named), &s).unwrap();
    for dt in [Dtype::F16, Dtype::BF16, Dtype::F64] {
        let net = names::parse(&file_with(&named, |_| dt, &[]), &s).unwrap();
        same_net(&f32net, &net);
        // Mixed in one file.
        let mixed = names::parse(&file_with(&named, |n| if n.contains("linear") { dt } else { Dtype::F32 }, &[]), &s).unwrap();
        same_net(&f32net, &mixed);
    }
    // An integer tensor where a weight belongs is refused by its dtype, named.
    let mut bytes_named = w.torch();
    bytes_named.retain(|(n, _, _)| n != "classifier.bias");
    let e = names::parse(&file_with(&bytes_named, |_| Dtype::F32, &[("classifier.bias", Dtype::I32, vec![3], vec![0; 12])]), &s).unwrap_err();
    assert!(e.contains("classifier.bias") && e.contains("I32"), "{e}");
}

fn err_of(named: &Named, s: &TransformerSettings) -> String {
    names::parse(&file(named), s).expect_err("must be refused")
}

#[test]
fn every_bad_input_is_named() {
    let w = Weights::new(6, 7, 8, 16, 3);
    let s = settings(BASE);
    assert!(names::parse(&file(&w.torch()), &s).is_ok());

    // A tensor that maps to nothing is named, never dropped.
    let mut extra = w.torch();
    extra.push(("encoder.layers.1.self_attn.bias_k".into(), vec![1, 1, 8], vec![0.0; 8]));
    let e = err_of(&extra, &s);
    assert!(e.contains("encoder.layers.1.self_attn.bias_k") && e.contains("maps to nothing") && e.contains("BERT"), "{e}");
    let mut extra = w.bert();
    extra.push(("cls.predictions.bias".into(), vec![7], vec![0.0; 7]));
    let e = err_of(&extra, &s);
    assert!(e.contains("cls.predictions.bias") && e.contains("Hugging Face BERT"), "{e}");
    // A RoBERTa classifier saved as it is: its head is named, with where it is mapped.
    let roberta: Named =
        w.bert().into_iter().map(|(n, sh, v)| (n.replacen("bert.", "roberta.", 1).replace("classifier.", "classifier.out_proj."), sh, v)).collect();
    let e = err_of(&roberta, &s);
    assert!(e.contains("classifier.out_proj.") && e.contains("(prefix \"roberta.\"); a RoBERTa or XLM-R classifier") && e.contains("aimc.from_torch"), "{e}");
    let electra: Named = roberta.into_iter().map(|(n, sh, v)| (n.replacen("roberta.", "electra.", 1), sh, v)).collect();
    let e = err_of(&electra, &s);
    assert!(e.contains("(prefix \"electra.\"); an ELECTRA classifier") && e.contains("aimc.from_torch"), "{e}");
    let e = err_of(&vec![("fc1.weight".into(), vec![2, 2], vec![0.0; 4])], &s);
    assert!(e.contains("no transformer names") && e.contains("fc1.weight"), "{e}");

    // Heads that do not divide d_model.
    let e = err_of(&w.torch(), &settings(&BASE.replace("heads = 2", "heads = 3")));
    assert!(e.contains("transformer.heads = 3 does not divide d_model = 8 (embedding.weight [7, 8])"), "{e}");

    // NaN or infinity: the tensor and the first index.
    let mut nan = w.torch();
    let t = nan.iter_mut().find(|(n, _, _)| n == "encoder.layers.2.linear1.weight").unwrap();
    t.2[8 + 5] = f32::NAN;
    t.2[8 * 3] = f32::INFINITY;
    let e = err_of(&nan, &s);
    assert!(e.contains("encoder.layers.2.linear1.weight[1, 5] = NaN"), "{e}");

    // An odd feature count where features come in pairs.
    let kernel = settings(&format!("{BASE}attention = \"kernel\"\nfeatures = 255\nfeature_map = \"positive\"\n"));
    let e = err_of(&w.torch(), &kernel);
    assert!(e.contains("transformer.features = 255 is odd"), "{e}");
    // Odd is fine for ReLU features (one per row) and for softmax attention.
    assert!(names::parse(&file(&w.torch()), &settings(&format!("{BASE}attention = \"kernel\"\nfeatures = 255\nfeature_map = \"relu\"\n"))).is_ok());
    assert!(names::parse(&file(&w.torch()), &settings(&format!("{BASE}features = 255\n"))).is_ok());

    // A feature projection of the wrong shape (d_head = 4, 16 features: 8 rows).
    let kernel = settings(&format!("{BASE}attention = \"kernel\"\nfeatures = 16\n"));
    let mut fp = w.torch();
    fp.push(("feature_projection.weight".into(), vec![8, 4], vec![0.5; 32]));
    let net = names::parse(&file(&fp), &kernel).unwrap();
    assert_eq!(net.shared_feature.as_ref().map(|m| (m.rows, m.cols)), Some((8, 4)));
    fp.last_mut().unwrap().1 = vec![4, 8];
    let e = err_of(&fp, &kernel);
    assert!(e.contains("feature_projection.weight has shape [4, 8]") && e.contains("[8, 4]") && e.contains("d_head"), "{e}");
    // ... ignored when the projection is drawn or attention is softmax.
    assert!(names::parse(&file(&fp), &settings(&format!("{BASE}attention = \"kernel\"\nfeatures = 16\nprojection = \"orf\"\n"))).is_ok());
    assert!(names::parse(&file(&fp), &s).is_ok());
    let mut per_layer = w.torch();
    per_layer.push(("encoder.layers.1.self_attn.feature_projection.weight".into(), vec![7, 4], vec![0.5; 28]));
    let e = err_of(&per_layer, &kernel);
    assert!(e.contains("encoder.layers.1.self_attn.feature_projection.weight has shape [7, 4]"), "{e}");
    // Per-layer projections in some layers only.
    *per_layer.last_mut().unwrap() = ("encoder.layers.1.self_attn.feature_projection.weight".into(), vec![8, 4], vec![0.5; 32]);
    let e = err_of(&per_layer, &kernel);
    assert!(e.contains("layer 1 has a feature projection") && e.contains("layer 0 has none (encoder.layers.0.self_attn.feature_projection.weight)"), "{e}");

    // A layer missing in the middle.
    let gap: Named = w.torch().into_iter().filter(|(n, _, _)| !n.starts_with("encoder.layers.1.")).collect();
    let e = err_of(&gap, &s);
    assert!(e.contains("layer 1 is missing") && e.contains("0, 2"), "{e}");
    // A required tensor missing from a layer.
    let e = err_of(&w.torch().into_iter().filter(|(n, _, _)| n != "encoder.layers.2.linear2.weight").collect(), &s);
    assert!(e.contains("missing tensor encoder.layers.2.linear2.weight"), "{e}");

    // No head.
    let e = err_of(&w.torch().into_iter().filter(|(n, _, _)| !n.starts_with("classifier")).collect(), &s);
    assert!(e.contains("a classifier head is required") && e.contains("classifier.weight") && e.contains("fc.K.weight"), "{e}");

    // Shapes against each other: FFN, LayerNorm, head input.
    let mut bad = w.torch();
    bad.iter_mut().find(|(n, _, _)| n == "encoder.layers.0.linear2.weight").unwrap().1 = vec![16, 8];
    let e = err_of(&bad, &s);
    assert!(e.contains("encoder.layers.0.linear2.weight has shape [16, 8]") && e.contains("[8, 16]"), "{e}");
    let mut bad = w.torch();
    let t = bad.iter_mut().find(|(n, _, _)| n == "encoder.layers.0.norm2.weight").unwrap();
    (t.1, t.2) = (vec![7], vec![1.0; 7]);
    let e = err_of(&bad, &s);
    assert!(e.contains("encoder.layers.0.norm2.weight has shape [7]") && e.contains("d_model = 8"), "{e}");
    let mut bad = w.torch();
    let t = bad.iter_mut().find(|(n, _, _)| n == "classifier.weight").unwrap();
    (t.1, t.2) = (vec![3, 6], vec![0.0; 18]);
    let e = err_of(&bad, &s);
    assert!(e.contains("classifier.weight has shape [3, 6]") && e.contains("8 wide"), "{e}");
}

#[test]
fn sequential_heads_and_prefixes() {
    let w = Weights::new(7, 7, 8, 16, 1);
    let s = settings(BASE);
    let mut r = Rng(70);
    // model.encoder.layers.N with the model's own names under model.; an nn.Sequential head
    // (Linear, GELU, Linear) and the `embed` spelling.
    let named: Named = w
        .torch()
        .into_iter()
        .filter(|(n, _, _)| !n.starts_with("classifier"))
        .map(|(n, sh, v)| (if n == "embedding.weight" { "embed.weight".to_string() } else { n }, sh, v))
        .map(|(n, sh, v)| (format!("model.{n}"), sh, v))
        .chain([
            ("model.head.0.weight".to_string(), vec![5, 8], r.vec(40, 0.3)),
            ("model.head.0.bias".to_string(), vec![5], r.vec(5, 0.1)),
            ("model.head.2.weight".to_string(), vec![3, 5], r.vec(15, 0.3)),
        ])
        .collect();
    let net = names::parse(&file(&named), &s).unwrap();
    assert_eq!(net.head.len(), 2);
    assert_eq!((net.head[0].weight.rows, net.head[1].weight.cols, net.classes()), (5, 5, 3));
    assert_eq!(net.head[1].bias, vec![0.0; 3]);
    // Two spellings of one field, or two heads, are refused by name.
    let mut two = w.torch();
    two.push(("embed.weight".into(), vec![7, 8], w.emb.clone()));
    let e = err_of(&two, &s);
    assert!(e.contains("embed.weight") && e.contains("embedding.weight") && e.contains("keep one"), "{e}");
    let mut two = w.torch();
    two.push(("fc.weight".into(), vec![3, 8], vec![0.0; 24]));
    let e = err_of(&two, &s);
    assert!(e.contains("fc.weight") && e.contains("second classifier head"), "{e}");
}

/// A hand-built net for the reference checks: pre-LN with unit LayerNorms, zero feed-forward
/// weights and an identity O, no positions, CLS pooling and an identity head, so that the
/// logits are x_0 + Attn(LN x)_0 exactly.
fn probe_net(d: usize, vocab: usize, qk: f32, seed: u64) -> TransformerNet {
    let mut r = Rng(seed);
    let eye = |n: usize| Matrix { rows: n, cols: n, data: (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect() };
    let unit = || Norm { gamma: vec![1.0; d], beta: vec![0.0; d] };
    let mut mat = |rows: usize, cols: usize, a: f32| Matrix { rows, cols, data: r.vec(rows * cols, a) };
    let (q, k, v, emb) = (mat(d, d, qk), mat(d, d, qk), mat(d, d, 0.5), mat(vocab, d, 1.0));
    let vb = Rng(seed + 1).vec(d, 0.1);
    let zero = |rows: usize, cols: usize| Matrix { rows, cols, data: vec![0.0; rows * cols] };
    TransformerNet {
        embedding: emb,
        embed_proj: None,
        no_norm: false,
        positions: Positions::Learned(zero(64, d)),
        token_types: None,
        embed_norm: None,
        blocks: vec![Block {
            q: Linear::dense("q", q, vec![0.0; d]),
            k: Linear::dense("k", k, vec![0.0; d]),
            v: Linear::dense("v", v, vb),
            o: Linear::dense("o", eye(d), vec![0.0; d]),
            ffn1: Linear::dense("ffn1", zero(2 * d, d), vec![0.0; 2 * d]),
            ffn2: Linear::dense("ffn2", zero(d, 2 * d), vec![0.0; d]),
            norm1: unit(),
            norm2: unit(),
            feature_q: None,
            feature_k: None,
            bottleneck: None,
            extra_ffns: vec![],
        }],
        final_norm: None,
        pooler: None,
        head: vec![Linear::dense("head", eye(d), vec![0.0; d])],
        shared_feature: None,
    }
}

/// LayerNorm with unit γ, zero β (by hand).
fn ln(x: &[f64], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
    x.iter().map(|v| (v - m) / (var + eps).sqrt()).collect()
}

fn v_of(net: &TransformerNet, x: &[f64]) -> Vec<f64> {
    let v = &net.blocks[0].v;
    (0..v.weight.rows).map(|r| v.bias[r] as f64 + (0..v.weight.cols).map(|c| v.weight.data[r * v.weight.cols + c] as f64 * x[c]).sum::<f64>()).collect()
}

fn emb(net: &TransformerNet, t: u32) -> Vec<f64> {
    let d = net.d_model();
    net.embedding.data[t as usize * d..(t as usize + 1) * d].iter().map(|&v| v as f64).collect()
}

const PROBE: &str = "heads = 2\npooling = \"cls\"\nnorm_first = true\npad_id = 0\nlayer_norm_eps = 1e-5\n";

#[test]
fn zero_q_and_k_attend_uniformly_over_the_non_padding_tokens() {
    let mut net = probe_net(8, 9, 0.0, 11);
    net.blocks[0].q.weight.data.fill(0.0);
    net.blocks[0].k.weight.data.fill(0.0);
    let s = settings(PROBE);
    let tokens = [3u32, 5, 1, 8, 2, 0, 0, 0];
    let len = reference::seq_len(&tokens, s.pad_id);
    assert_eq!(len, 5);
    let got = reference::logits(&net, &s, &tokens, len);
    let mut want = emb(&net, 3);
    for &t in &tokens[..len] {
        let v = v_of(&net, &ln(&emb(&net, t), 1e-5));
        for c in 0..8 {
            want[c] += v[c] / len as f64;
        }
    }
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn causal_attention_at_token_zero_is_v_zero() {
    let net = probe_net(8, 9, 0.7, 12);
    let s = settings(&format!("{PROBE}causal = true\n"));
    let tokens = [4u32, 6, 2, 7, 0];
    let got = reference::logits(&net, &s, &tokens, 4);
    let x0 = emb(&net, 4);
    let v0 = v_of(&net, &ln(&x0, 1e-5));
    for c in 0..8 {
        assert!((got[c] - (x0[c] + v0[c])).abs() < 1e-12, "{got:?}");
    }
    // Not causal, token 0 sees the others: different logits.
    let full = reference::logits(&net, &settings(PROBE), &tokens, 4);
    assert!(full.iter().zip(&got).any(|(a, b)| (a - b).abs() > 1e-3));
}

/// Kernel attention with m = 4096 drawn ORF features approximates softmax attention, and its
/// error falls with m.
///
/// Tolerance: with r = m/2 projection rows, the positive estimator K̂ = φ(q̃)·φ(k̃) of
/// K = exp(q̃·k̃) is unbiased with relative variance at most (exp(‖q̃ + k̃‖²) − 1)/r for
/// i.i.d. rows (Choromanski et al. 2021, Lemma 2; the ± pairing and orthogonal rows only lower
/// it), so σ ≤ √((e^a − 1)/r), a = max‖q̃ + k̃‖². Writing K̂_j = K_j(1 + ε_j), the attention
/// output moves by Σ_j p_j ε_j (v_j − out)/(1 + Σ_j p_j ε_j), at most
/// ε/(1 − ε)·max_j ‖v_j − out‖_∞ with ε = max |ε_j|; ε ≤ 6σ bounds every one of the few hundred
/// (query, key) pairs here (each K̂ is a mean of 2048 terms, close to Gaussian).
#[test]
fn kernel_attention_with_many_features_approximates_softmax() {
    let d = 16;
    let net = probe_net(d, 9, 0.12, 13);
    let tokens = [3u32, 5, 1, 8, 2, 6, 7, 4, 4, 3, 0, 0];
    let len = reference::seq_len(&tokens, Some(0));
    for causal in [false, true] {
        let soft = settings(&format!("{PROBE}causal = {causal}\n"));
        let a = reference::hidden(&net, &soft, &tokens, len);
        let err_at = |m: u32| -> f64 {
            let kern = with_net(
                settings(&format!("{PROBE}causal = {causal}\nattention = \"kernel\"\nfeatures = {m}\nprojection = \"orf\"\nprojection_seed = 3\n")),
                &net,
            );
            let b = reference::hidden(&net, &kern, &tokens, len);
            a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
        };
        // The bound's inputs, from the same net: q̃, k̃ and v per head for every token.
        let (dh, heads) = (8, 2);
        let scale = (dh as f64).powf(-0.25);
        let blk = &net.blocks[0];
        let proj = |l: &Linear, x: &[f64]| -> Vec<f64> {
            (0..d).map(|r| l.bias[r] as f64 + (0..d).map(|c| l.weight.data[r * d + c] as f64 * x[c]).sum::<f64>()).collect()
        };
        let h: Vec<Vec<f64>> = tokens[..len].iter().map(|&t| ln(&emb(&net, t), 1e-5)).collect();
        let (qs, ks, vs): (Vec<_>, Vec<_>, Vec<_>) =
            (h.iter().map(|x| proj(&blk.q, x)).collect(), h.iter().map(|x| proj(&blk.k, x)).collect(), h.iter().map(|x| proj(&blk.v, x)).collect());
        let mut a_max: f64 = 0.0;
        let mut spread: f64 = 0.0;
        for hd in 0..heads {
            for q in &qs {
                for k in &ks {
                    let n2: f64 = (hd * dh..(hd + 1) * dh).map(|c| ((q[c] + k[c]) * scale).powi(2)).sum();
                    a_max = a_max.max(n2);
                }
            }
            for c in hd * dh..(hd + 1) * dh {
                let (lo, hi) = vs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v[c]), hi.max(v[c])));
                spread = spread.max(hi - lo);
            }
        }
        let sigma = ((a_max.exp() - 1.0) / 2048.0).sqrt();
        let eps = 6.0 * sigma;
        assert!(eps < 0.5, "the probe's q and k are too large for the bound (a = {a_max})");
        let tol = eps / (1.0 - eps) * spread;
        let err = err_at(4096);
        assert!(err > 0.0 && err <= tol, "causal {causal}: max error {err} against the bound {tol} (a = {a_max}, σ = {sigma})");
        // The bound is a worst case; the error itself falls like 1/√m (16 times fewer features:
        // about 4 times the error; more than 2 leaves room for one draw's luck).
        let coarse = err_at(256);
        assert!(coarse > 2.0 * err, "causal {causal}: error {coarse} with 256 features, {err} with 4096");
    }
}

#[test]
fn padding_does_not_change_the_logits() {
    let w = Weights::new(8, 11, 8, 16, 2);
    let net = names::parse(&file(&w.torch()), &settings(BASE)).unwrap();
    let mut r = Rng(80);
    let fp: Vec<f32> = r.vec(8 * 4, 0.5);
    for attention in ["softmax", "kernel"] {
        for pooling in ["mean", "cls", "last"] {
            for causal in [false, true] {
                for norm_first in [false, true] {
                    let text = format!(
                        "heads = 2\npad_id = 0\nattention = \"{attention}\"\npooling = \"{pooling}\"\ncausal = {causal}\nnorm_first = {norm_first}\nfeatures = 16\nprojection_seed = 4\nrepeat_layers = 2\nembed_scale = 2.8284271247461903\n"
                    );
                    let s = with_net(settings(&text), &net);
                    for tokens in sequences(11, 3, 6, 9) {
                        let a = reference::logits(&net, &s, &tokens, 6);
                        let mut padded = tokens.clone();
                        padded.extend([0, 0, 0, 0]);
                        let len = reference::seq_len(&padded, s.pad_id);
                        assert_eq!(len, 6);
                        let b = reference::logits(&net, &s, &padded, len);
                        for (x, y) in a.iter().zip(&b) {
                            assert!((x - y).abs() <= 1e-12, "{text}: {a:?} vs {b:?}");
                        }
                    }
                }
            }
        }
    }
    // A trained projection (per layer, separate K) is read from the net.
    let mut net2 = net.clone();
    net2.blocks[1].feature_q = Some(Matrix { rows: 8, cols: 4, data: fp.clone() });
    net2.blocks[1].feature_k = Some(Matrix { rows: 8, cols: 4, data: fp.iter().map(|v| -v).collect() });
    let s = with_net(settings("heads = 2\nattention = \"kernel\"\nfeatures = 16\n"), &net2);
    let s_drawn = with_net(settings("heads = 2\nattention = \"kernel\"\nfeatures = 16\n"), &net);
    let t = &sequences(11, 1, 6, 10)[0];
    assert_ne!(reference::logits(&net2, &s, t, 6), reference::logits(&net, &s_drawn, t, 6));
}

/// The reference's feature maps are `features::KernelSpec::features` (f64 here, f32 there).
#[test]
fn feature_maps_match_the_kernel_workload() {
    use aimc::features::{Kernel, KernelSpec, Projection, SoftmaxFeatures};
    let (rows, dh) = (6, 4);
    let mut r = Rng(90);
    let w: Vec<f32> = r.vec(rows * dh, 1.0);
    let x: Vec<f32> = r.vec(dh, 0.6);
    for map in [SoftmaxFeatures::Positive, SoftmaxFeatures::Trig, SoftmaxFeatures::Relu] {
        let spec = KernelSpec { kernel: Kernel::Softmax, projection: Projection::Orf, softmax_features: map, gamma: 1.0, features: rows, d: dh };
        let y = aimc::features::project(&x, &w, dh);
        let want = spec.features(&y, &aimc::features::sq_norms(&x, dh), 1);
        let got = reference::feature_map(map, &w.iter().map(|&v| v as f64).collect::<Vec<_>>(), rows, &x.iter().map(|&v| v as f64).collect::<Vec<_>>());
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            // f32 rounding of y and of the result: a few 2^-24 relative.
            assert!((a - *b as f64).abs() <= 1e-6 * (1.0 + a.abs()), "{map:?}: {got:?} vs {want:?}");
        }
    }
}

#[test]
fn fp_correct_counts_the_argmax_over_a_token_data_set() {
    use aimc::workload::io::Dataset;
    let w = Weights::new(10, 11, 8, 16, 1);
    let net = names::parse(&file(&w.torch()), &settings(BASE)).unwrap();
    let s = settings("heads = 2\npad_id = 0\n");
    let mut r = Rng(100);
    let rows: Vec<Vec<u32>> = (0..9)
        .map(|i| {
            let len = 3 + i % 5;
            (0..10).map(|p| if p < len { 1 + (r.next() % 10) as u32 } else { 0 }).collect()
        })
        .collect();
    let serial: Vec<usize> = rows.iter().map(|t| reference::argmax(&reference::logits(&net, &s, t, reference::seq_len(t, s.pad_id)))).collect();
    let labels: Vec<u32> = serial.iter().enumerate().map(|(i, &p)| if i % 3 == 0 { (p as u32 + 1) % 3 } else { p as u32 }).collect();
    let data = Dataset { x: rows.iter().flatten().map(|&t| t as f32).collect(), labels, n_features: 10, spans: vec![], text: None, targets: vec![] };
    assert_eq!(reference::fp_predictions(&net, &s, &data), serial);
    assert_eq!(reference::fp_correct(&net, &s, &data), 6);
    assert_eq!(reference::argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
}

/// docs/transformer-names.md lists every row of the table.
#[test]
fn the_documented_table_is_the_code_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/transformer-names.md")).unwrap();
    for e in table::TABLE {
        assert!(doc.contains(&format!("`{}`", e.pattern)), "docs/transformer-names.md does not list {}", e.pattern);
    }
}

/// The NPU cost model runs no sequence longer than a learned positions table (40 rows here): a
/// longer `npu.seq_len` is refused, a shorter one costed.
#[test]
fn npu_sequences_past_the_learned_positions_are_refused() {
    let w = Weights::new(9, 7, 8, 16, 2);
    let dir = std::env::temp_dir().join(format!("aimc-npu-positions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bert.safetensors"), file(&w.bert())).unwrap();
    std::fs::write(dir.join("tokens.csv"), "1,2,3,4,5,6,1,2,0\n2,3,4,5,6,1,2,3,1\n").unwrap();
    let text = |seq: u32| {
        format!(
            "name = \"npu_pos\"\nworkload = \"transformer\"\nseed = 1\ntrials = 2\n[model]\npath = {:?}\n[data]\npath = {:?}\n[transformer]\n{BASE}\n[npu]\nseq_len = [{seq}]\n[sweep]\nt = [\"1h\"]\n",
            dir.join("bert.safetensors"),
            dir.join("tokens.csv")
        )
    };
    let e = common::experiment(&text(64)).unwrap_err();
    assert!(e.contains("npu.seq_len contains 64") && e.contains("40 learned positions"), "{e}");
    assert!(common::experiment(&text(40)).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}
