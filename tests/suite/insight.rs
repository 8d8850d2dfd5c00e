//! Per-layer insight of classifier runs (`layer_insight_trials`): the error each layer's MVMs add
//! on their own inputs, the share of MVMs bound management redid and of ADC outputs clipped.
//! An ideal crossbar with perfect converters adds nothing; a low ADC bound shows up as redone
//! MVMs with bound management and as clipped outputs without it; the GPU agrees with the CPU
//! twins; device noise shows up in every layer.

use crate::common;

use crate::common::{experiment as exp, run_ok};

const BASE: &str = r#"
name = "insight"
workload = "classifier"
seed = 3
trials = 6
weight_error_trials = 0
layer_insight_trials = 4
[model]
path = "models/digits_mlp.safetensors"
[data]
path = "data/digits.csv"
scale = 16.0
rows = [1347, 1447]
[sweep]
t = ["1d"]
"#;

fn insight(text: &str, be: &mut dyn aimc::engine::Backend) -> Vec<aimc::results::LayerInsight> {
    let r = run_ok(be, &exp(text).unwrap());
    r.points[0].layer_insight.clone()
}

#[test]
fn an_ideal_crossbar_adds_no_error_and_noise_shows_in_every_layer() {
    let ideal = format!("{BASE}\n[device]\nmodel = \"ideal\"\n[periphery]\ninp_res_bits = 0\nout_res_bits = 0\nout_noise = 0.0\nout_bound = 0.0\n");
    let li = insight(&ideal, &mut common::cpu());
    assert_eq!(li.len(), 2, "one entry per layer");
    for l in &li {
        assert_eq!(l.trials, 4);
        // f32 sums against f64: a few ulps of the outputs.
        assert!(l.mvm_error.max < 1e-5, "layer {}: an ideal crossbar adds {}", l.layer, l.mvm_error.max);
        assert_eq!((l.bm_repeated, l.clipped), (0.0, 0.0));
    }
    let li = insight(BASE, &mut common::cpu());
    for l in &li {
        assert!(l.mvm_error.min > 0.01, "layer {}: PCM after a day must add error, got {}", l.layer, l.mvm_error.min);
    }
}

#[test]
fn a_low_adc_bound_shows_as_redone_and_clipped_mvms() {
    let low = format!("{BASE}\n[periphery]\nout_bound = 0.5\n");
    let with_bm = insight(&low, &mut common::cpu());
    assert!(with_bm.iter().any(|l| l.bm_repeated > 0.05), "bound management should redo MVMs: {with_bm:?}");
    let without = insight(&format!("{low}bound_management = \"none\"\n"), &mut common::cpu());
    assert!(without.iter().all(|l| l.bm_repeated == 0.0));
    assert!(without.iter().any(|l| l.clipped > 0.01), "without bound management outputs clip: {without:?}");
    // Clipping costs accuracy on the layer that clips.
    let (a, b) = (&with_bm[0], &without[0]);
    assert!(b.clipped >= a.clipped && b.mvm_error.median >= a.mvm_error.median, "{a:?} vs {b:?}");
}

#[test]
fn the_report_shows_the_layers() {
    let r = run_ok(&mut common::cpu(), &exp(&BASE.replace("t = [\"1d\"]", "t = [\"1h\", \"1y\"]")).unwrap());
    let dir = std::env::temp_dir().join(format!("aimc-insight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    aimc::report::write_report(&r, &dir).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("## Per layer") && md.contains("layer_error_vs_time.png"), "{md}");
    assert!(std::fs::metadata(dir.join("layer_error_vs_time.png")).unwrap().len() > 1000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_gpu_measures_the_layers_as_the_cpu_twins() {
    let Some(mut gpu) = common::gpu(256) else {
        return;
    };
    let (c, g) = (insight(BASE, &mut common::cpu()), insight(BASE, &mut gpu));
    assert_eq!(c.len(), g.len(), "layers");
    for (a, b) in c.iter().zip(&g) {
        use aimc::tolerances::{INSIGHT_CLIPPED_ABS, INSIGHT_MEDIAN_REL, INSIGHT_REDONE_ABS};
        assert!((a.mvm_error.median - b.mvm_error.median).abs() <= INSIGHT_MEDIAN_REL * a.mvm_error.median, "layer {}: cpu {a:?} gpu {b:?}", a.layer);
        assert!((a.bm_repeated - b.bm_repeated).abs() <= INSIGHT_REDONE_ABS, "layer {}: cpu {a:?} gpu {b:?}", a.layer);
        assert!((a.clipped - b.clipped).abs() <= INSIGHT_CLIPPED_ABS, "layer {}: cpu {a:?} gpu {b:?}", a.layer);
    }
}
