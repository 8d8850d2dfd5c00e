//! The kernel workloads end to end (kernel-attention spec): an ideal crossbar reproduces floating
//! point, device noise and replication move the error the way the physics says, the GPU backend
//! agrees with the CPU twins trial by trial, and bad settings fail before any compute with the
//! field named.
use crate::common;

use aimc::config::Experiment;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use crate::common::{experiment as exp, run_ok as run_on};

use crate::common::IRIS_ERROR;

/// An ideal device with 16-bit converters, no output noise and no clipping: the analog features
/// are floating point's up to converter rounding (2^-15 of each vector's range).
#[test]
fn an_ideal_crossbar_reproduces_floating_point() {
    let text =
        IRIS_ERROR.replace("[periphery]", "[device]\nmodel = \"ideal\"\n[periphery]\ninp_res_bits = 16\nout_res_bits = 16\nout_noise = 0.0\nout_bound = 0.0");
    let r = run_on(&mut common::cpu(), &exp(&text).unwrap());
    for p in &r.points {
        let fp = p.fp.unwrap();
        for v in &p.per_trial {
            assert!((v - fp).abs() < 1e-3 * fp.max(1e-3), "ideal {v} vs fp {fp}");
        }
    }
}

/// The same for attention through the plan's stages, non-causal and causal (the prefix-sum form
/// against the host's direct linear attention, with blocks of 64 tokens crossed at n = 80).
#[test]
fn an_ideal_crossbar_reproduces_floating_point_attention() {
    for causal in [false, true] {
        let text = format!(
            "name = \"a\"\nworkload = \"attention\"\nseed = 4\ntrials = 3\n[kernel]\nkernel = \"softmax\"\nprojection = \"orf\"\nfeatures = 40\n\
             [attention]\nheads = 2\nn = 80\nd = 8\ncausal = {causal}\n[device]\nmodel = \"ideal\"\n\
             [periphery]\ninp_res_bits = 16\nout_res_bits = 16\nout_noise = 0.0\nout_bound = 0.0\n[sweep]\nt = [\"1h\"]\n"
        );
        let r = run_on(&mut common::cpu(), &exp(&text).unwrap());
        let p = &r.points[0];
        let fp = p.fp.unwrap();
        for v in &p.per_trial {
            assert!((v - fp).abs() < 2e-3 * fp, "causal {causal}: ideal {v} vs fp {fp}");
        }
    }
}

/// Output noise (an ideal device, out_noise 0.1) raises the error above floating point, and
/// averaging r = 8 replicas of the projection removes most of the excess (the noise variance falls
/// as 1/r). Programming noise (the simple model, 0.067 g_max) raises it too.
#[test]
fn device_noise_raises_the_error_and_replicas_lower_it() {
    let with = |model: &str, extra: &str| {
        let text = IRIS_ERROR
            .replace("trials = 6", "trials = 12")
            .replace("points = 30", &format!("points = 30\n{extra}"))
            .replace("[periphery]", &format!("[device]\nmodel = \"{model}\"\n[periphery]\nout_noise = 0.1\ninp_res_bits = 8"));
        run_on(&mut common::cpu(), &exp(&text).unwrap()).points.remove(0)
    };
    let (one, eight) = (with("ideal", ""), with("ideal", "replicas = 8"));
    let fp = one.fp.unwrap();
    assert_eq!(fp, eight.fp.unwrap(), "floating point does not depend on the replicas");
    let (e1, e8) = (one.summary.mean - fp, eight.summary.mean - fp);
    assert!(e1 > 0.005, "output noise must add error: mean {} vs fp {fp}", one.summary.mean);
    // The excess error follows the noise variance: 1/8 expected; allow up to 1/2.
    assert!(e8 < 0.5 * e1, "8 replicas: excess {e8} vs {e1} with one");
    // Programming noise raises the error too.
    let one = with("simple", "");
    assert!(one.summary.mean > fp + 0.01, "programming noise must add error: {} vs fp {fp}", one.summary.mean);
}

/// Every kernel workload on the GPU (software Vulkan here) against the CPU twins: the same Philox
/// streams, so per-trial metrics agree up to the transcendental error of the shaders.
#[test]
fn gpu_matches_the_cpu_twin_for_every_kernel_workload() {
    let Some(mut gpu) = common::gpu(256) else {
        return;
    };
    let ridge = IRIS_ERROR.replace("kernel_error", "kernel_ridge");
    let attention = r#"
name = "a"
workload = "attention"
seed = 4
trials = 4
[kernel]
kernel = "softmax"
projection = "orf"
features = 24
[attention]
heads = 2
n = 16
d = 8
causal = true
[sweep]
t = ["1d"]
"#;
    for text in [IRIS_ERROR, ridge.as_str(), attention] {
        let e = exp(text).unwrap();
        let (a, b) = (run_on(&mut common::cpu(), &e), run_on(&mut gpu, &e));
        assert_eq!(a.points.len(), b.points.len());
        for (pa, pb) in a.points.iter().zip(&b.points) {
            assert_eq!(pa.fp, pb.fp);
            assert_eq!(pa.per_trial.len(), pb.per_trial.len());
            assert!(!pa.per_trial.is_empty());
            for (x, y) in pa.per_trial.iter().zip(&pb.per_trial) {
                use aimc::tolerances::{RIDGE_ACCURACY_ABS, WORKLOAD_METRIC_REL};
                let tol = if e.name == "k" && text.contains("kernel_ridge") { RIDGE_ACCURACY_ABS } else { WORKLOAD_METRIC_REL * x.abs().max(1e-3) };
                assert!((x - y).abs() <= tol, "{}: cpu {x} gpu {y}", e.name);
            }
        }
    }
}

/// Causal attention with every query seeing only earlier keys: the first row attends to itself
/// alone, so its output is V's first row, exactly for softmax (weight exp(0) = 1 over a sum of 1)
/// and within `FIRST_ROW_REL` for the linear form with any feature map.
#[test]
fn causal_attention_first_row_is_the_first_value_row() {
    use aimc::features::attention::{exact_attention, linear_attention, synthetic_qkv};
    use aimc::features::{project, sq_norms, Kernel, KernelSpec, Projection, SoftmaxFeatures};
    let (n, d) = (32, 8);
    let (q, k, v) = synthetic_qkv(1, n, d, 0.5, 9);
    let exact = exact_attention(&q, &k, &v, n, d, d, true);
    assert_eq!(exact[..d], v[..d], "softmax: the first query's output is not V's first row");
    // The linear form's first row is (q′·k′₀) v₀ / (q′·k′₀) in f64, rounded to f32.
    for softmax_features in [SoftmaxFeatures::Positive, SoftmaxFeatures::Trig] {
        for projection in [Projection::Rff, Projection::Orf] {
            let sp = KernelSpec { kernel: Kernel::Softmax, projection, softmax_features, gamma: 1.0, features: 16, d };
            let w = sp.projection(3);
            let feat = |x: &[f32]| {
                let xs: Vec<f32> = x.iter().map(|a| a / (d as f32).powf(0.25)).collect();
                sp.features(&project(&xs, &w, d), &sq_norms(&xs, d), n)
            };
            let lin = linear_attention(&feat(&q), &feat(&k), &v, n, sp.width(), d, true);
            for c in 0..d {
                assert!(
                    (lin[c] - v[c]).abs() <= FIRST_ROW_REL * v[c].abs(),
                    "{softmax_features:?}/{projection:?} column {c}: first row {} vs V's {}",
                    lin[c],
                    v[c]
                );
            }
            // And the rows after it do see more than themselves.
            assert_ne!(lin[d..2 * d], v[d..2 * d]);
        }
    }
}

/// (a·v)/a in f64 is v within 2 f64 ulps, which the rounding to f32 maps to v or its neighbour:
/// one f32 ulp.
const FIRST_ROW_REL: f32 = f32::EPSILON;

#[test]
fn causal_attention_runs_and_ridge_reports_accuracy() {
    let text = r#"
name = "a"
workload = "attention"
seed = 4
trials = 3
[kernel]
kernel = "softmax"
softmax_features = "positive"
projection = "rff"
features = 64
[attention]
heads = 1
n = 32
d = 8
causal = true
[sweep]
t = ["1h"]
features = [16, 64]
"#;
    let r = run_on(&mut common::cpu(), &exp(text).unwrap());
    assert_eq!(r.points.len(), 2);
    assert!(r.points[1].fp.unwrap() < r.points[0].fp.unwrap(), "more features, smaller FP error");
    let ridge = run_on(&mut common::cpu(), &exp(&IRIS_ERROR.replace("kernel_error", "kernel_ridge")).unwrap());
    let p = &ridge.points[0];
    assert!(p.fp.unwrap() > 0.85, "iris ridge accuracy {}", p.fp.unwrap());
    assert!(p.per_trial_correct.is_some() && p.test_set_ci.is_some());
}

fn expect_err(text: &str, needles: &[&str]) {
    let e = exp(text).err().unwrap_or_else(|| panic!("should fail: {text}"));
    for n in needles {
        assert!(e.contains(n), "error should mention {n:?}: {e}");
    }
}

#[test]
fn bad_settings_fail_before_compute_naming_the_field() {
    expect_err(&IRIS_ERROR.replace("features = 32", "features = 0"), &["features"]);
    expect_err(&IRIS_ERROR.replace("gamma = 0.2", "gamma = -1.0"), &["gamma"]);
    expect_err(&IRIS_ERROR.replace("gamma = 0.2", "gamma = 0.0"), &["gamma"]);
    expect_err(&IRIS_ERROR.replace("t = [\"1h\"]", "t = [\"1h\"]\nfeatures = [16, 0]"), &["features", "sweep point"]);
    expect_err(&IRIS_ERROR.replace("projection = \"orf\"", "projection = \"qmc\""), &["projection"]);
    expect_err(&IRIS_ERROR.replace("points = 30", "points = 30\nreplicas = 0"), &["replicas"]);
    expect_err(&IRIS_ERROR.replace("[kernel]", "[kernelx]"), &["kernel"]);
    expect_err(&IRIS_ERROR.replace("[data]\npath = \"data/iris.csv\"\nheader = true", ""), &["[data]"]);
    expect_err(&format!("{IRIS_ERROR}\n[model]\npath = \"x.npy\"\n"), &["[model]"]);
    // Attention: the kernel must be softmax; Q and K must share d.
    let att = "name = \"a\"\nworkload = \"attention\"\nseed = 1\ntrials = 2\n[kernel]\nkernel = \"softmax\"\nfeatures = 8\n[attention]\nheads = 1\nn = 4\nd = 4\n[sweep]\nt = [\"1h\"]\n";
    expect_err(&att.replace("kernel = \"softmax\"", "kernel = \"rbf\""), &["softmax"]);
    expect_err(&att.replace("n = 4\n", ""), &["attention.n"]);
    let dir = std::env::temp_dir().join(format!("aimc-kernel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let npy = |name: &str, rows: usize, cols: usize| -> String {
        let m = aimc::workload::io::Matrix { rows, cols, data: vec![0.5; rows * cols] };
        let p = dir.join(name);
        std::fs::write(&p, aimc::workload::io::npy_bytes(&m)).unwrap();
        p.display().to_string()
    };
    let (q, k, v) = (npy("q.npy", 4, 4), npy("k.npy", 4, 6), npy("v.npy", 4, 4));
    let files = att.replace("n = 4\nd = 4\n", &format!("q = {q:?}\nk = {k:?}\nv = {v:?}\n"));
    expect_err(&files, &["attention.q", "attention.k", "d differs"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_kernel_experiments_validate() {
    for f in ["kernel_rbf.toml", "kernel_rbf_ridge.toml", "favor_attention.toml", "kernel_rbf_averaged.toml"] {
        let p: &Path = &root().join("experiments").join(f);
        let e = Experiment::load(p).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(e.workload.is_kernel());
        assert!(e.points.len() >= 7, "{f}: a feature-count sweep");
    }
}

/// `gamma = "c/d"` is γ = c/d for inputs of dimension d (iris: d = 4, so "1/d" is 0.25 exactly),
/// and a malformed one names the field and both forms.
#[test]
fn gamma_per_dimension_equals_the_decimal() {
    let a = run_on(&mut common::cpu(), &exp(&IRIS_ERROR.replace("gamma = 0.2", "gamma = 0.25")).unwrap());
    let b = run_on(&mut common::cpu(), &exp(&IRIS_ERROR.replace("gamma = 0.2", "gamma = \"1/d\"")).unwrap());
    assert_eq!(a.points[0].per_trial, b.points[0].per_trial);
    assert_eq!(a.points[0].fp, b.points[0].fp);
    assert_eq!(b.config["kernel"]["gamma"], "1/d", "the resolved configuration keeps the form written");
    expect_err(&IRIS_ERROR.replace("gamma = 0.2", "gamma = \"1/x\""), &["kernel.gamma", "1/d"]);
    expect_err(&IRIS_ERROR.replace("gamma = 0.2", "gamma = \"-1/d\""), &["gamma"]);
}

/// A published point set (the first N rows of the file, standardised over every row with
/// ddof 1) is reachable by settings, recorded in results.json, and its invalid combinations are
/// refused by name.
#[test]
fn the_point_set_is_a_setting_and_is_recorded() {
    let published = IRIS_ERROR.replace("header = true", "header = true\ntest_rows = \"all\"\nstandardise = \"all\"\nstd_ddof = 1");
    let r = run_on(&mut common::cpu(), &exp(&published).unwrap());
    let set = r.points[0].point_set.as_ref().expect("kernel_error records its point set");
    assert_eq!(set.points, 30);
    assert!(set.description.contains("of 150 rows of the file") && set.description.contains("ddof 1"), "{}", set.description);
    assert_eq!(r.config["data"]["test_rows"], "all");
    // The default: every 4th row tests (iris: 38 of 150), standardised by the training rows.
    let d = run_on(&mut common::cpu(), &exp(IRIS_ERROR).unwrap());
    let set = d.points[0].point_set.as_ref().unwrap();
    assert!(set.points == 30 && set.description.contains("of 38 test rows") && set.description.contains("ddof 0"), "{}", set.description);
    assert!(d.config["data"].get("test_rows").is_none(), "unset fields stay out of the resolved configuration");
    assert_ne!(r.points[0].fp, d.points[0].fp, "a different point set gives a different kernel error");
    expect_err(&IRIS_ERROR.replace("header = true", "header = true\ntest_rows = \"all\""), &["data.test_rows", "data.standardise"]);
    expect_err(&IRIS_ERROR.replace("header = true", "header = true\nstd_ddof = 2"), &["data.std_ddof"]);
    expect_err(&IRIS_ERROR.replace("header = true", "header = true\ntest_rows = \"some\""), &["test_rows"]);
    expect_err(
        &IRIS_ERROR.replace("kernel_error", "kernel_ridge").replace("header = true", "header = true\ntest_rows = \"all\"\nstandardise = \"all\""),
        &["data.test_rows", "kernel_ridge"],
    );
}

/// With clipping, an ideal crossbar reproduces the floating point of the clipped projection
/// (`fp_clipped`), not the unclipped one (`fp`): the two are reported apart.
#[test]
fn an_ideal_crossbar_reproduces_the_clipped_floating_point() {
    let text = IRIS_ERROR
        .replace("points = 30", "points = 30\nclip_sigma = 1.0")
        .replace("[periphery]", "[device]\nmodel = \"ideal\"\n[periphery]\ninp_res_bits = 16\nout_res_bits = 16\nout_noise = 0.0\nout_bound = 0.0");
    let r = run_on(&mut common::cpu(), &exp(&text).unwrap());
    let p = &r.points[0];
    let (fp, fc) = (p.fp.unwrap(), p.fp_clipped.expect("clipping on: fp_clipped is reported"));
    assert!((fp - fc).abs() > 1e-2 * fp, "clipping at 1σ must move the error: {fp} vs {fc}");
    for v in &p.per_trial {
        assert!((v - fc).abs() < 1e-3 * fc.max(1e-3), "ideal {v} vs fp_clipped {fc} (fp {fp})");
    }
    let plain = run_on(&mut common::cpu(), &exp(IRIS_ERROR).unwrap());
    assert!(plain.points[0].fp_clipped.is_none(), "no clipping, no fp_clipped");
}

/// `projection_seeds = P` splits the trials into P blocks, block p on projection seed
/// `projection_seed + p`: each block's trials are exactly those of a run with that one seed (the
/// same global trials, so the same device draws), whatever the chunking; `fp` is the mean of the
/// P projections' floating point, and the mean's interval is over projection means.
#[test]
fn projection_seeds_average_over_projections_block_by_block() {
    let base = IRIS_ERROR.replace("trials = 6", "trials = 6\nweight_error_trials = 0");
    let avg = run_on(&mut common::cpu(), &exp(&base.replace("projection_seed = 1", "projection_seed = 1\nprojection_seeds = 3")).unwrap());
    let p = &avg.points[0];
    let pa = p.projection_average.as_ref().expect("three projections");
    assert_eq!((pa.seeds, pa.trials_per_seed), (3, 2));
    assert!(p.mean_ci.method.contains("projection means"), "{}", p.mean_ci.method);
    let split = pa.split.as_ref().expect("two draws per projection give the split");
    assert_eq!((split.programmings, split.reads), (3, 2));
    let mut fps = Vec::new();
    for k in 0..3u32 {
        let mut e = exp(&base.replace("projection_seed = 1", &format!("projection_seed = {}", 1 + k))).unwrap();
        e.apply_shard(k, 3).unwrap();
        let one = run_on(&mut common::cpu(), &e);
        assert_eq!(one.points[0].per_trial, p.per_trial[2 * k as usize..2 * k as usize + 2], "block {k}");
        fps.push(one.points[0].fp.unwrap());
    }
    let mean = fps.iter().sum::<f64>() / 3.0;
    assert!((p.fp.unwrap() - mean).abs() < 1e-12, "fp is the projections' mean: {:?} vs {mean}", p.fp);
    assert!(pa.fp_ci.lo <= mean && mean <= pa.fp_ci.hi);
    // The drop pairs each projection's floating point with its own analog mean: by definition,
    // a t interval over the three differences.
    assert_eq!(pa.fp_per_seed, fps);
    let d: aimc::stats::Moments = (0..3).map(|k| fps[k] - (p.per_trial[2 * k] + p.per_trial[2 * k + 1]) / 2.0).collect();
    let drop = p.drop.as_ref().unwrap();
    let want = aimc::stats::mean_t(&d, avg.confidence).unwrap();
    assert_eq!((drop.mean, drop.ci.lo, drop.ci.hi), (d.mean, want.lo, want.hi));
    assert!(drop.ci.method.contains("paired projection differences"), "{}", drop.ci.method);
    // A shard of the averaged run holds the same trials as the single run.
    let mut e = exp(&base.replace("projection_seed = 1", "projection_seed = 1\nprojection_seeds = 3")).unwrap();
    e.apply_shard(1, 2).unwrap();
    let shard = run_on(&mut common::cpu(), &e);
    assert_eq!(shard.points[0].per_trial, p.per_trial[3..]);
    // The trials must split into whole blocks; adaptive trials are refused.
    expect_err(&base.replace("projection_seed = 1", "projection_seed = 1\nprojection_seeds = 4"), &["projection_seeds", "multiple of 4"]);
    let mut e = exp(&base.replace("projection_seed = 1", "projection_seed = 1\nprojection_seeds = 3")).unwrap();
    assert!(e.set_trials(7).unwrap_err().to_string().contains("--trials 7"));
    assert!(e.set_adaptive(0.01, 100).unwrap_err().to_string().contains("projection_seeds"));
}
