//! The fast CPU kernels (`engine::fast`, what `--backend cpu` runs) against the CPU twins, the
//! oracle: every fast stage replayed on the twins' recorded inputs of a ragged multi-tile model
//! (named tolerances: `FAST_ABS` for the transcendentals, `FAST_FEATURE_REL` for `feature_map`; `mvm` and `bound` outputs on the ADC's
//! grid, equal or one step apart, with their pre-ADC values within `FAST_PRE_ADC_ABS`), whole
//! classifier runs agreeing trial by trial, and the fast path's own chunk- and thread-invariance
//! (exact integer counts).

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, Scaling, TileShape};
use aimc::device::{DeviceModel, DriftPath};
use aimc::engine::cpu::CpuBackend;
use aimc::engine::plan::{run_classifier, AnalogLayer, RunConfig};
use aimc::engine::stages::Stage;
use aimc::tolerances::*;

fn weights(n: usize, seed: u64) -> Vec<f32> {
    aimc::rng::uniform_signed(n, seed)
}

/// A 33 → 70 → 5 model on 32 × 24 tiles (3 × 2 and 1 × 3 tiles, ragged), GELU between layers,
/// 37 samples: no size is a multiple of a lane count or a tile.
fn model() -> (Vec<AnalogLayer>, Vec<f32>, Vec<u32>) {
    let shape = TileShape { max_in: 32, max_out: 24 };
    let layers = vec![
        AnalogLayer {
            mapped: MappedMatrix::new(&weights(70 * 33, 11), 70, 33, shape, 1.0),
            bias: weights(70, 12),
            activation: 2,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        },
        AnalogLayer {
            mapped: MappedMatrix::new(&weights(5 * 70, 13), 5, 70, shape, 1.0),
            bias: weights(5, 14),
            activation: 0,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        },
    ];
    let x: Vec<f32> = weights(37 * 33, 15).iter().map(|v| v * 1.5).collect();
    let labels = (0..37).map(|i| i % 5).collect();
    (layers, x, labels)
}

/// `model()`'s layers mapped again with per-column digital scales (for per-column GDC).
fn columnwise(layers: &[AnalogLayer]) -> Vec<AnalogLayer> {
    layers
        .iter()
        .map(|l| {
            let m = &l.mapped;
            let mapped = MappedMatrix::new(&m.w, m.n_out, m.n_in, TileShape { max_in: 32, max_out: 24 }, Scaling { omega: 1.0, columnwise: true });
            AnalogLayer { mapped, ..l.clone() }
        })
        .collect()
}

fn cfg(device: DeviceModel, trials: u32, max_chunk: u32) -> RunConfig {
    RunConfig {
        reads_per_programming: 1,
        device,
        // A low ADC bound, so some vectors saturate and bound management runs too.
        periphery: Periphery { out_bound: 4.0, ..Periphery::default() },
        gdc: Gdc::Readout,
        key: aimc::rng::key(99, 3),
        trials,
        first_trial: 5,
        times: vec![1.0, 3600.0, 3.15e8],
        max_chunk,
        layer_noise: Vec::new(),
    }
}

/// How a written binding of a replayed stage is compared with the twin's.
#[derive(Clone, Copy)]
enum How {
    Exact,
    Abs(f32),
    /// On the ADC's grid (the dispatch's `io.out_step`).
    Adc,
}

fn fast(threads: usize) -> CpuBackend {
    CpuBackend::fast(threads)
}

#[test]
fn fast_stages_match_the_twins_on_recorded_inputs() {
    let (layers, x, labels) = model();
    let both = DeviceModel { drift_path: DriftPath::BothDevices, ..DeviceModel::hermes() };
    // The third run takes the full periphery path (IR drop and PCM-read weight noise: `mvm_full`
    // computes every vector).
    // The fourth runs per-column GDC on per-column digital scales (per-row partials in `drift`,
    // per-output factors in `combine`).
    let columnwise = columnwise(&layers);
    // The sixth draws ν from a measured drift table (`nu_table`, lane by lane in the fast path).
    let table = aimc::device::DriftTable { g: vec![0.0, 4.0, 12.0, 25.0], nu_mean: vec![0.1, 0.07, 0.05, 0.02], nu_std: vec![0.04, 0.02, 0.02, 0.005] };
    let measured = DeviceModel { drift_table: Some(table), ..DeviceModel::pcm() };
    // The seventh programs with a measured σ table and reads with a measured Q_s table
    // (`level_tables`, lane by lane in the fast path).
    let prog = aimc::device::ProgTable { g: vec![0.0, 3.0, 9.0, 25.0], sigma: vec![0.2, 1.4, 0.8, 0.6] };
    let read = aimc::device::ReadTable { g: vec![0.0, 2.0, 12.0, 25.0], q_s: vec![0.12, 0.06, 0.02, 0.03] };
    let measured_prog = DeviceModel { prog_table: Some(prog), read_table: Some(read), ..DeviceModel::pcm() };
    // The tenth and eleventh hold each weight on several conductance pairs (the twin's functions
    // per weight, pair k's programming block at counter word 3 = k; three pairs read their third
    // pair's noise from a second block).
    let two_pairs = DeviceModel { pair_significance: vec![1.0, 3.0], ..DeviceModel::hermes() };
    let three_pairs = DeviceModel { pair_significance: vec![1.0, 1.0, 2.0], stuck_set: 0.01, stuck_reset: 0.03, ..DeviceModel::pcm() };
    // The twelfth: stuck devices on one pair (the pairs kernel, exponent 0 where stuck).
    let stuck = DeviceModel { stuck_set: 0.02, stuck_reset: 0.05, ..DeviceModel::pcm() };
    for (dev, full, per_column) in [
        (DeviceModel::pcm(), false, false),
        (both, false, false),
        (DeviceModel::pcm(), true, false),
        (DeviceModel::pcm(), false, true),
        (DeviceModel::afm(), false, true),
        (measured, false, false),
        (measured_prog, false, false),
        (DeviceModel::reram(), false, false),
        (DeviceModel::reram_cmo(), false, false),
        (two_pairs, false, false),
        (three_pairs, false, true),
        (stuck, false, false),
    ] {
        let mut rec = Recorder::new();
        let mut c = cfg(dev.clone(), 4, 4);
        // The fifth: AFM's per-weight programming on per-row scales, two reads per programming.
        if dev.name == "afm" {
            c.reads_per_programming = 2;
        }
        // The eighth: a relaxation table (ReRAM), read at every time of the table (the target
        // stored beside the programmed weight; the quartic lane by lane). The ninth: one device
        // per weight with a log-time relaxation (CMO ReRAM; `progmax`'s signed range).
        if let Some(r) = &dev.relax_table {
            c.times = r.t.clone();
        }
        let layers = if per_column {
            c.gdc = Gdc::ReadoutPerColumn;
            &columnwise
        } else {
            &layers
        };
        if full {
            c.periphery.ir_drop = 1.0;
            // A strong IR drop (the default ratio makes it ~1e-4 here, below any tolerance).
            c.periphery.ir_drop_g_ratio = 200.0;
            c.periphery.w_noise = 0.0175;
            c.periphery.w_noise_type = aimc::crossbar::WeightNoiseType::PcmRead;
            c.periphery.inp_noise = 0.02;
        }
        run_classifier(&mut rec, layers, &x, &labels, &c).unwrap();
        let mut checked = std::collections::BTreeMap::new();
        let mut listed = 0;
        for d in &rec.log {
            // Outputs to compare (index into the bindings) and how.
            let outs: &[(usize, How)] = match d.stage {
                Stage::Program => &[(2, How::Abs(FAST_ABS)), (3, How::Abs(FAST_ABS))],
                Stage::Drift => &[(3, How::Abs(FAST_ABS)), (4, How::Abs(256.0 * FAST_ABS))],
                Stage::Dac => &[(4, How::Exact), (5, How::Exact)],
                // The level-1 pass is the listed redo: bit for bit.
                Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull if d.params.layer.bm_pass == 1 => {
                    listed += d.before[5][0] as usize;
                    &[(3, How::Exact), (4, How::Exact), (5, How::Exact), (6, How::Exact)]
                }
                Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull => &[(3, How::Adc), (4, How::Exact), (5, How::Exact), (6, How::Exact)],
                // The listed redo (the twin's loop on the full path) sums and draws as the twin
                // does: bit for bit.
                Stage::Bound => &[(6, How::Exact), (7, How::Exact)],
                Stage::Combine => &[(6, How::Abs(FAST_ABS))],
                _ => continue,
            };
            let got = replay(&mut fast(2), d);
            let name = d.stage.name();
            for &(b, tol) in outs {
                let (want, have) = (&d.after[b], &got[b]);
                assert_eq!(want.len(), have.len());
                let (w, h) = (f32s(want), f32s(have));
                match tol {
                    How::Exact => assert_eq!(want, have, "{name} binding {}: fast differs from the twin ({dev:?}, full path {full})", b + 1),
                    How::Adc => {
                        // The ADC's own step (8/510 here). The inputs are the same, so a GEMM output
                        // lands one step away only when its pre-ADC value (checked below) sits
                        // within FAST_PRE_ADC_ABS of a rounding boundary.
                        let what = format!("{name} binding {} (twin vs fast, full path {full})", b + 1);
                        let flips = grid_flips(&what, &w, &h, d.params.io.out_step);
                        assert!(flips <= max_flips(w.len()), "{what}: {flips} of {} values one step apart", w.len());
                        let raw = without_adc(d);
                        let (tw, fa) = (replay(&mut cpu(), &raw), replay(&mut fast(2), &raw));
                        let worst = f32s(&tw[b]).iter().zip(f32s(&fa[b])).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                        assert!(worst <= FAST_PRE_ADC_ABS, "{name} binding {}: pre-ADC values differ by {worst} > FAST_PRE_ADC_ABS", b + 1);
                    }
                    How::Abs(tol) => {
                        for i in 0..w.len() {
                            assert!((w[i] - h[i]).abs() <= tol, "{name} binding {} index {i}: twin {} fast {} tol {tol}", b + 1, w[i], h[i]);
                        }
                    }
                }
            }
            *checked.entry(name).or_insert(0) += 1;
        }
        let want: &[&str] =
            if full { &["bound", "combine", "dac", "drift", "mvm_full", "program"] } else { &["bound", "combine", "dac", "drift", "mvm_narrow", "program"] };
        assert_eq!(checked.keys().copied().collect::<Vec<_>>(), want, "stages replayed: {checked:?}");
        // More listed vectors than one block of lanes, so the redo's lanes and tails both ran.
        assert!(listed > 8, "only {listed} saturated vectors were redone ({dev:?}, full path {full})");
    }
}

#[test]
fn fast_classifier_agrees_with_the_twin_trial_by_trial() {
    let (layers, x, labels) = model();
    let c = cfg(DeviceModel::pcm(), 24, 256);
    let twin = run_classifier(&mut cpu(), &layers, &x, &labels, &c).unwrap();
    let fast_run = run_classifier(&mut fast(2), &layers, &x, &labels, &c).unwrap();
    let (mut same, mut total) = (0, 0);
    for (a, b) in twin.iter().zip(&fast_run) {
        for (&ca, &cb) in a.correct.iter().zip(&b.correct) {
            // A sample can change class only through an ADC rounding flip: at most a few per trial.
            assert!(ca.abs_diff(cb) <= 2, "t = {}: twin {ca} fast {cb} of {}", a.t_inf, a.n_samples);
            same += usize::from(ca == cb);
            total += 1;
        }
    }
    assert!(same * 10 >= total * 9, "only {same} of {total} (trial, time) counts identical");
}

#[test]
fn fast_counts_do_not_depend_on_chunking_or_threads() {
    let (layers, x, labels) = model();
    let base = run_classifier(&mut fast(1), &layers, &x, &labels, &cfg(DeviceModel::pcm(), 11, 256)).unwrap();
    for (threads, chunk) in [(2, 256), (2, 3), (1, 1), (3, 4)] {
        let got = run_classifier(&mut fast(threads), &layers, &x, &labels, &cfg(DeviceModel::pcm(), 11, chunk)).unwrap();
        for (a, b) in base.iter().zip(&got) {
            assert_eq!(a.correct, b.correct, "threads {threads}, chunk {chunk}, t = {}", a.t_inf);
        }
    }
}

/// With fewer trials than threads the GEMM stages split each trial's vectors over the threads
/// (`par_vectors`) and the device state its tiles; `dac` and `combine` split by vector always.
/// Every recorded `program`, `drift`, `dac`, `mvm_narrow` (both passes of each), `bound` and
/// `combine` dispatch of one-trial chunks, replayed on one thread and on three (ranges of 13, 13
/// and 11 of the 37 vectors; 6 and 3 tiles), writes the same bits, with per-tile and per-column
/// GDC and with both drift paths.
#[test]
fn fast_stages_split_one_trial_over_threads_bit_for_bit() {
    let (layers, x, labels) = model();
    let columnwise = columnwise(&layers);
    let both = DeviceModel { drift_path: DriftPath::BothDevices, ..DeviceModel::hermes() };
    let pairs = DeviceModel { pair_significance: vec![1.0, 2.0, 2.0, 4.0], ..DeviceModel::pcm() };
    for (dev, per_column) in [(DeviceModel::pcm(), false), (both, false), (DeviceModel::pcm(), true), (pairs, false)] {
        let mut c = cfg(dev.clone(), 2, 1);
        let layers = if per_column {
            c.gdc = Gdc::ReadoutPerColumn;
            &columnwise
        } else {
            &layers
        };
        let mut rec = Recorder::new();
        run_classifier(&mut rec, layers, &x, &labels, &c).unwrap();
        let (mut seen, mut redone) = (std::collections::BTreeSet::new(), 0usize);
        for d in &rec.log {
            if !matches!(d.stage, Stage::Program | Stage::Drift | Stage::Dac | Stage::Mvm | Stage::MvmNarrow | Stage::Bound | Stage::Combine) {
                continue;
            }
            assert_eq!(d.params.layer.trials, 1, "chunks of one trial");
            let (one, three) = (replay(&mut fast(1), d), replay(&mut fast(3), d));
            assert!(one == three, "{} (pass {}, {dev:?}, per column {per_column}): one thread and three differ", d.stage.name(), d.params.layer.bm_pass);
            if d.stage == Stage::MvmNarrow && d.params.layer.bm_pass == 1 {
                redone += d.before[5][0] as usize;
            }
            seen.insert((d.stage.name(), d.params.layer.bm_pass));
        }
        let want = [("bound", 0), ("combine", 0), ("dac", 0), ("dac", 1), ("drift", 0), ("mvm_narrow", 0), ("mvm_narrow", 1), ("program", 0)];
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), want, "dispatches replayed");
        assert!(redone > 0, "no vector went through the level-1 pass");
    }
}

/// The fast kernel-error and attention reductions (SGEMMs) against the twins: whole kernel plans
/// on both, per-trial sums of squares within a relative 1e-4 (f32 sums in another order).
#[test]
fn fast_kernel_reductions_match_the_twins() {
    use aimc::engine::layout::KernelParams;
    use aimc::engine::plan::{run_kernel, KernelReduction};
    let d = 6usize;
    let (s, heads, seq) = (11usize, 2usize, 9usize);
    for attention in [false, true] {
        let rows = if attention { 2 * heads * seq } else { 29 };
        let x: Vec<f32> = weights(rows * d, 21).iter().map(|v| v * 0.5).collect();
        let layer = AnalogLayer {
            mapped: MappedMatrix::new(&weights(s * d, 22), s as u32, d as u32, TileShape::default(), 1.0),
            bias: vec![0.0; s],
            activation: 0,
            conv: None,
            links: Default::default(),
            batchnorm: None,
        };
        let norms: Vec<f32> = x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
        let kp = KernelParams {
            rows: rows as u32,
            s: s as u32,
            replicas: 1,
            width: 2 * s as u32,
            map: if attention { 3 } else { 0 },
            heads: heads as u32,
            seq: seq as u32,
            dv: d as u32,
            causal: 0,
            blocks: 1,
            ..Default::default()
        };
        let (kmat, v, exact) = (weights(rows * rows, 23), weights(heads * seq * d, 24), weights(heads * seq * d, 25));
        let c = cfg(DeviceModel::pcm(), 5, 2);
        let run = |be: &mut CpuBackend| {
            let red = if attention { KernelReduction::Attention { v: &v, exact: &exact } } else { KernelReduction::KernelError { kmat: &kmat } };
            run_kernel(be, std::slice::from_ref(&layer), &x, &norms, kp, red, &c, &mut |_| {}).unwrap()
        };
        let (a, b) = (run(&mut cpu()), run(&mut fast(2)));
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() <= 1e-4 * x.abs().max(1e-6), "attention {attention}: twin {x} fast {y}");
        }
    }
}

/// The fast `attention_kv` and `attention_out` on the twins' recorded inputs, split over
/// (trial, head): causal bit for bit (the twins' sums in the twins' order), non-causal (SGEMMs)
/// within `KERNEL_REL`; 150 tokens (three causal blocks, the last ragged), three heads, three
/// trials in chunks of two, on one and on three threads.
#[test]
fn fast_attention_matches_the_twins_on_recorded_inputs() {
    use aimc::engine::layout::KernelParams;
    use aimc::engine::plan::{run_kernel, KernelReduction};
    let (d, s, heads, seq) = (7usize, 13usize, 3usize, 150usize);
    let rows = 2 * heads * seq;
    let x: Vec<f32> = weights(rows * d, 31).iter().map(|v| v * 0.5).collect();
    let layer = AnalogLayer {
        mapped: MappedMatrix::new(&weights(s * d, 32), s as u32, d as u32, TileShape::default(), 1.0),
        bias: vec![0.0; s],
        activation: 0,
        conv: None,
        links: Default::default(),
        batchnorm: None,
    };
    let norms: Vec<f32> = x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let (v, exact) = (weights(heads * seq * d, 33), weights(heads * seq * d, 34));
    let mut seen = 0;
    for causal in [false, true] {
        let kp = KernelParams {
            rows: rows as u32,
            s: s as u32,
            replicas: 1,
            width: 2 * s as u32,
            map: 3,
            heads: heads as u32,
            seq: seq as u32,
            dv: d as u32,
            causal: causal as u32,
            blocks: if causal { seq.div_ceil(64) as u32 } else { 1 },
            ..Default::default()
        };
        let mut rec = Recorder::new();
        run_kernel(
            &mut rec,
            std::slice::from_ref(&layer),
            &x,
            &norms,
            kp,
            KernelReduction::Attention { v: &v, exact: &exact },
            &cfg(DeviceModel::pcm(), 3, 2),
            &mut |_| {},
        )
        .unwrap();
        for d in rec.log.iter().filter(|d| matches!(d.stage, Stage::AttentionKv | Stage::AttentionOut)) {
            let b = if d.stage == Stage::AttentionKv { 2 } else { 4 };
            for threads in [1, 3] {
                let got = replay(&mut fast(threads), d);
                let name = d.stage.name();
                if causal {
                    assert_eq!(d.after[b], got[b], "{name} (causal, {threads} threads): the fast kernel differs from the twin");
                } else {
                    for (i, (w, h)) in f32s(&d.after[b]).iter().zip(f32s(&got[b])).enumerate() {
                        assert!((w - h).abs() <= KERNEL_REL * w.abs().max(1e-3), "{name} index {i}: twin {w} fast {h}");
                    }
                }
            }
            seen += 1;
        }
    }
    // Two stages × two chunks × the times × causal and not.
    assert!(seen >= 8, "only {seen} attention dispatches compared");
}

/// The transformer's fast kernels against the twins on recorded inputs: `linear_kv` and
/// `linear_out` bit for bit (the twins' sums in the twins' order), `feature_map` (`lanes::exp`
/// against libm), `attention_softmax` (two passes against the twin's online softmax) and the
/// erf-GELU and SiLU `combine` within their tolerances.
#[test]
fn fast_transformer_stages_match_the_twins() {
    use aimc::engine::plan::{run_transformer, SeqAttention, SeqBlock, SeqModel};
    use aimc::tolerances::SEQ_ABS;
    let (d, dff, seq, vocab) = (8usize, 12usize, 70usize, 11usize);
    let layer = |rows: usize, cols: usize, seed: u64, act: u32| AnalogLayer {
        mapped: MappedMatrix::new(&weights(rows * cols, seed), rows as u32, cols as u32, TileShape { max_in: 6, max_out: 8 }, Scaling::default()),
        bias: weights(rows, seed + 100),
        activation: act,
        conv: None,
        links: Default::default(),
        batchnorm: None,
    };
    let norm: Vec<f32> = std::iter::repeat_n(1.0, d).chain(std::iter::repeat_n(0.0, d)).collect();
    let layers = vec![
        layer(d, d, 1, 0),
        layer(d, d, 2, 0),
        layer(d, d, 3, 0),
        layer(d, d, 4, 0),
        layer(dff, d, 5, 4),
        layer(d, dff, 6, 5),
        layer(3, d, 7, 0),
        layer(6, 4, 8, 0),
    ];
    let block = SeqBlock { feature_q: Some(7), ..SeqBlock::dense(0, 1, 2, 3, 4, 5, norm.clone(), norm.clone()) };
    let tokens: Vec<u32> = (0..2 * seq).map(|i| if i >= seq + 50 { 0 } else { ((i * 7 + 3) % (vocab - 1)) as u32 + 1 }).collect();
    let mut checked = std::collections::BTreeSet::new();
    for (attention, causal) in [
        (SeqAttention::Softmax, false),
        (SeqAttention::Softmax, true),
        (SeqAttention::Kernel { map: 3, s: 6, width: 12 }, true),
        (SeqAttention::Kernel { map: 3, s: 6, width: 12 }, false),
    ] {
        let m = SeqModel {
            layers: layers.clone(),
            d_model: d as u32,
            heads: 2,
            seq: seq as u32,
            vocab: vocab as u32,
            embedding: weights(vocab * d, 30),
            embed_width: d as u32,
            embed_proj: None,
            no_norm: false,
            positions: weights(seq * d, 31),
            embed_scale: 2.0,
            embed_norm: Some(norm.clone()),
            eps: 1e-5,
            blocks: vec![block.clone()],
            norm_first: false,
            final_norm: None,
            pooling: 0,
            head: vec![6],
            attention,
            causal,
            next_token: false,
            head_out: false,
            row_counts: false,
            regression: false,
            span: None,
        };
        let mut rec = Recorder::new();
        run_transformer(&mut rec, &m, &tokens, &[seq as u32, 50], &[1, 2], &cfg(DeviceModel::pcm(), 3, 3), &mut |_| {}).unwrap();
        for d in &rec.log {
            // (binding, tolerance): None is bit for bit; Some((abs, rel)) allows abs + rel·|twin|.
            let (b, tol) = match d.stage {
                Stage::LinearKv => (3, None),
                Stage::LinearOut => (5, None),
                // Map 3 is the exponential map: `lanes::exp` against libm, relative; below e^-87
                // the twin may give a denormal where the fast map gives 0.
                Stage::FeatureMap => (2, Some((f32::MIN_POSITIVE, FAST_FEATURE_REL))),
                Stage::AttentionSoftmax => (4, Some((SEQ_ABS, 0.0))),
                Stage::Combine if d.params.layer.activation >= 4 => (6, Some((FAST_ABS, 0.0))),
                _ => continue,
            };
            let got = replay(&mut fast(2), d);
            let name = d.stage.name();
            match tol {
                None => assert_eq!(d.after[b], got[b], "{name}: the fast kernel differs from the twin"),
                Some((abs, rel)) => {
                    for (i, (w, h)) in f32s(&d.after[b]).iter().zip(f32s(&got[b])).enumerate() {
                        assert!((w - h).abs() <= abs + rel * w.abs(), "{name} index {i}: twin {w} fast {h} tol {abs} + {rel} relative");
                    }
                }
            }
            checked.insert(name);
        }
    }
    assert_eq!(checked.len(), 5, "stages compared: {checked:?}");
}
