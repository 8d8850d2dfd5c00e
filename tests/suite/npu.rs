//! The edge-NPU cost model (src/arch/npu.rs, docs/npu.md): counts of a hand-computed layer, the
//! per-op energy against the chip's TOPS/W, shares that add up, errors that name the field, and
//! the MobileBERT and transformer experiments end to end with the sentences of their reports.

use crate::common;

use aimc::arch::npu::{self, glob, NpuTable, Op, Read, UnitKind, NPU_HERMES_TABLE};
use aimc::arch::npu_models::{Encoder, EncoderAttention, MobileBert};

/// Relative error of derived floats (a few roundings of f64 divisions).
const REL: f64 = 1e-12;

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= REL * b.abs().max(1e-300), "{what}: {a} against {b}");
}

#[test]
fn per_core_mvm_reproduces_the_chip_figures() {
    let t = NpuTable::hermes();
    for (read, tops, tops_w) in [(Read::OnePhase, 63.1e12, 9.76e12), (Read::FourPhase, 16.1e12, 2.48e12)] {
        let m = t.core_mvm(read);
        let ops = 2.0 * 256.0 * 256.0;
        // energy per op = 1 / (TOPS/W); 64 cores together reach the chip's TOPS
        close(ops / (m.pj * 1e-12), tops_w, "ops per joule");
        close(64.0 * ops / (m.ns * 1e-9), tops, "chip ops per second");
    }
    // one-phase: 131 072 ops / (63.1e12 / 64) = 132.9 ns; 131 072 / 9.76 = 13 429.5 pJ
    let m = t.core_mvm(Read::OnePhase);
    assert!((m.ns - 132.94).abs() < 0.01 && (m.pj - 13_429.5).abs() < 0.1, "{m:?}");
}

#[test]
fn a_hand_computed_layer() {
    let t = NpuTable::hermes();
    // 300 → 600 on 10 tokens: ceil(300/256)·ceil(600/256) = 2·3 = 6 cores; 10·300·600 MACs;
    // post-processing 10·600·(2·2) element ops; SRAM 10·(300 + 600) bytes.
    let ops = vec![Op::mvm("layers.0.up", "layers.0.up", 300, 600, 10), Op::digital("layers.0.act", UnitKind::Activation, 6000, 12_000)];
    let row = npu::cost(&t, &ops, &[], Read::OnePhase);
    let m = t.core_mvm(Read::OnePhase);
    assert_eq!((row.cores, row.analog_macs, row.digital_macs), (6, 1_800_000, 0));
    assert_eq!(row.elementwise_ops, 24_000 + 6000);
    assert_eq!(row.sram_bytes, 9000 + 12_000);
    close(row.time_ns.analog, 10.0 * m.ns, "analog time: 10 MVMs one after another, the 6 cores in parallel");
    close(row.energy_pj_split.analog, 60.0 * m.pj, "analog energy: 10 MVMs on each of 6 cores");
    close(row.time_ns.digital, 24_000.0 / 25.6e9 * 1e9 + 6000.0 / 13.47e9 * 1e9, "digital time");
    close(row.energy_pj_split.sram, 21_000.0 * 2.5, "SRAM energy");
    close(row.tops_per_w, 2.0 * 1.8e6 / row.energy_pj, "TOPS/W = 2 MACs / pJ");
    // run digitally: no cores, in·out MACs per token on the MAC unit plus the bias
    let d = npu::cost(&t, &ops, &["layers.0.up".to_string()], Read::OnePhase);
    assert_eq!((d.cores, d.analog_macs, d.digital_macs), (0, 0, 1_800_000));
    close(d.energy_pj_split.digital, 1.8e6 * 0.23 + 6000.0 * 0.036836 + 6000.0 * 0.037598, "digital energy");
}

#[test]
fn an_encoder_layer_counts_as_by_hand() {
    let e = Encoder {
        d_model: 64,
        heads: 2,
        d_ff: 128,
        stored_layers: 1,
        repeat: 2,
        embed_scale: false,
        embed_norm: false,
        final_norm: false,
        attention: EncoderAttention::Softmax,
        mean_pooling: true,
        pooler: None,
        head: vec![(64, 10)],
        next_token: false,
    };
    let n = 16u64;
    let row = npu::cost(&NpuTable::hermes(), &e.ops(n), &[], Read::OnePhase);
    // one programmed set: q, k, v, o, ffn1, ffn2, head = 7 cores, used twice
    assert_eq!(row.cores, 7);
    let static_macs = 2 * n * (4 * 64 * 64 + 2 * 64 * 128) + 64 * 10;
    let attention_macs = 2 * 2 * (2 * n * n * 32);
    assert_eq!((row.analog_macs, row.digital_macs), (static_macs, attention_macs));
    let softmax = row.classes.iter().find(|c| c.class == "attention.softmax").unwrap();
    assert_eq!(softmax.count, 2);
    // A language model: no pooling, and its head (here 64 → 35 logits) on every token.
    let lm = Encoder { head: vec![(64, 35)], next_token: true, ..e };
    let ops = lm.ops(n);
    assert!(!ops.iter().any(|o| o.name == "pooling"));
    let row = npu::cost(&NpuTable::hermes(), &ops, &[], Read::OnePhase);
    assert_eq!(row.analog_macs, 2 * n * (4 * 64 * 64 + 2 * 64 * 128) + n * 64 * 35);
}

#[test]
fn shares_add_up_for_every_mobilebert_row() {
    let t = NpuTable::hermes();
    let m = MobileBert::PAPER;
    for n in [64u64, 128, 384] {
        let ops = m.ops(n);
        for digital in [vec![], npu::digital_matrices(&ops, &["layers.*.ffn.*".into()], "split").unwrap()] {
            for read in [Read::OnePhase, Read::FourPhase] {
                let r = npu::cost(&t, &ops, &digital, read);
                close(r.time_ns.total(), r.latency_ns, "time shares");
                close(r.energy_pj_split.total(), r.energy_pj, "energy shares");
                let (ct, ce): (f64, f64) = r.classes.iter().fold((0.0, 0.0), |a, c| (a.0 + c.time_ns.total(), a.1 + c.energy_pj.total()));
                assert!((ct / r.latency_ns - 1.0).abs() < 1e-9 && (ce / r.energy_pj - 1.0).abs() < 1e-9, "classes sum to the whole");
                assert!(r.pipelined_inferences_per_s >= r.inferences_per_s);
            }
        }
    }
    // MobileBERT at 128 tokens: 24 × 835 584 static MACs per token, plus the embedding and head
    let r = npu::cost(&t, &m.ops(128), &[], Read::OnePhase);
    assert_eq!(r.analog_macs, 128 * (24 * 835_584 + 384 * 512) + 512 * 2);
    assert_eq!(r.digital_macs, 24 * 2 * 128 * 128 * 128);
    assert_eq!(r.cores, 24 * 27 + 4 + 2);
}

#[test]
fn bad_tables_and_splits_name_the_field() {
    let bad = NPU_HERMES_TABLE.replacen("value = 5.12e9", "value = -5.12e9", 1);
    let e = NpuTable::parse(&bad).unwrap_err().to_string();
    assert!(e.contains("digital.softmax.throughput_per_s.value = -5120000000"), "{e}");
    let bad = NPU_HERMES_TABLE.replacen("value = 256.0", "value = 0.0", 1);
    assert!(NpuTable::parse(&bad).unwrap_err().to_string().contains("analog.core_rows.value = 0"));
    let bad = NPU_HERMES_TABLE.replacen("[sram.bytes_per_value]\nvalue = 1.0", "[sram.bytes_per_value]\nvalue = 1.0\nunit = \"B\"", 1);
    assert!(NpuTable::parse(&bad).unwrap_err().to_string().contains("unit"), "an unknown field is named");
    let mut t = NpuTable::hermes();
    t.digital.mac.energy_pj.source = " ".into();
    assert!(t.validate().unwrap_err().to_string().contains("digital.mac.energy_pj.source"));
    let ops = MobileBert::PAPER.ops(8);
    let e = npu::digital_matrices(&ops, &["layers.*.ffn*".into(), "layers.*.fnn.*".into()], "npu.split[1].digital").unwrap_err().to_string();
    assert!(e.contains("npu.split[1].digital") && e.contains("fnn") && e.contains("matches no matrix"), "{e}");
    assert!(glob("layers.*.ffn.*", "layers.23.ffn.3.down"));
    // through an experiment file
    let text = MOBILEBERT.replace("seq_len = [64, 128, 256, 384]", "seq_len = [0]");
    assert!(common::experiment(&text).unwrap_err().contains("npu.seq_len contains 0"));
    // An empty list is refused, not replaced by the default.
    let text = MOBILEBERT.replace("seq_len = [64, 128, 256, 384]", "seq_len = []");
    assert!(common::experiment(&text).unwrap_err().contains("npu.seq_len: the list is empty"));
    let text = MOBILEBERT.replace("\"layers.*.ffn.*\"", "\"layer.*.ffn\"");
    assert!(common::experiment(&text).unwrap_err().contains("npu.split[1].digital"));
    let text = MOBILEBERT.replace("[sweep]", "[sweep]\ngdc = [\"off\"]");
    assert!(common::experiment(&text).unwrap_err().contains("sweep.gdc"));
    // The cost model has no time: a time other than 0 s would repeat the same latency under it.
    for t in ["[\"1h\"]", "[\"0s\", \"1y\"]"] {
        let text = MOBILEBERT.replace("t = [\"0s\"]", &format!("t = {t}"));
        let err = common::experiment(&text).unwrap_err();
        assert!(err.contains(&format!("sweep.t = {t}")) && err.contains("no time after programming") && err.contains("keep only sweep.t = [\"0s\"]"), "{err}");
    }
}

const MOBILEBERT: &str = include_str!("../../experiments/mobilebert_npu.toml");

#[test]
fn the_mobilebert_experiment_runs_and_says_where_the_time_goes() {
    let e = common::experiment(MOBILEBERT).unwrap();
    let r = common::run_ok(&mut common::cpu(), &e);
    let n = r.npu.as_ref().expect("the npu section is in the results");
    assert_eq!(n.rows.len(), 4 * 3 * 2);
    assert_eq!(r.points[0].per_trial[0], n.rows[0].latency_ns / 1e3);
    let dir = std::env::temp_dir().join(format!("aimc-npu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    aimc::report::write_report(&r, &dir).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for s in [
        "Edge NPU: MobileBERT at 128 tokens (split all\\_analog, one-phase reads) takes",
        "The analog tiles take",
        "of the latency",
        "The softmax on the digital nodes is",
        "Energy: analog tiles",
        "62 ms on a Pixel 4",
        "is an assumption",
        "bound by",
    ] {
        assert!(md.contains(s), "the report says {s:?}");
    }
    // the results round-trip through results.json
    r.save(&dir, true).unwrap();
    let back = aimc::results::Results::load(&dir).unwrap();
    assert_eq!(back.npu, r.npu);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_transformer_experiment_carries_accuracy_and_cost() {
    let text = include_str!("../../experiments/transformer_lra_npu.toml")
        .replace("trials = 8", "trials = 2")
        .replace("rows = [0, 200]", "rows = [0, 8]")
        .replace("t = [\"1s\", \"10y\"]", "t = [\"1s\"]");
    let e = common::experiment(&text).unwrap();
    let r = common::run_ok(&mut common::cpu(), &e);
    let n = r.npu.as_ref().unwrap();
    // two networks (softmax, kernel) × 2 lengths × 2 splits
    assert_eq!(n.rows.len(), 8);
    assert_eq!(n.rows[0].network, "variant=softmax");
    assert_eq!(n.rows[0].cores, 8, "q, k, v, o, ffn1, ffn2 and the two head layers, each one 256×256 core");
    assert!(r.points.iter().all(|p| p.per_trial.len() == 2), "the accuracy side ran");
    // npu.classes sets MobileBERT's classifier: refused for a transformer, whose head sets them
    let err = common::experiment(&text.replace("[npu]\n", "[npu]\nclasses = 3\n")).unwrap_err();
    assert!(err.contains("npu.classes = 3") && err.contains("state dict's head") && err.contains("remove npu.classes"), "{err}");
    // an [npu] on another workload is refused
    let bad = common::IRIS_ERROR.replace("[sweep]", "[npu]\nseq_len = [4]\n[sweep]");
    assert!(common::experiment(&bad).unwrap_err().contains("[npu] costs a network of the npu or transformer workload"));
}
