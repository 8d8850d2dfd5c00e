//! The experiment file's per-layer model settings: `model.activations` (the activation after each
//! layer) and `model.digital` (layers computed in floating point). A fully digital model scores
//! its floating-point accuracy on every trial; a digital first layer adds no MVM error while the
//! analog one after it does; the activations reach both the analog run and the floating-point
//! baseline; `model.layers` tables say the same per layer; bad lists and tables are named.

use crate::common;

use crate::common::{experiment as exp, run_ok};

const BASE: &str = r#"
name = "layers"
workload = "classifier"
seed = 9
trials = 4
weight_error_trials = 0
layer_insight_trials = 3
[model]
path = "models/digits_mlp.safetensors"
MODEL
[data]
path = "data/digits.csv"
scale = 16.0
rows = [1347, 1547]
[sweep]
t = ["1y"]
"#;

fn with(model: &str) -> String {
    BASE.replace("MODEL", model)
}

#[test]
fn digital_layers_run_in_floating_point() {
    let r = run_ok(&mut common::cpu(), &exp(&with("digital = [\"0\", \"2\"]")).unwrap());
    let fp = r.fp_baseline.unwrap();
    for &c in r.points[0].per_trial_correct.as_ref().unwrap() {
        // f32 on the crossbar against the f64 baseline may flip a near tie.
        assert!((c as f64 - fp * 200.0).abs() <= 1.0, "a fully digital model: {c} correct, floating point {}", fp * 200.0);
    }
    assert_eq!(r.energy.as_ref().unwrap().analog_mvms, 0, "a fully digital model uses no tile");
    let analog = run_ok(&mut common::cpu(), &exp(&with("")).unwrap());
    let r = run_ok(&mut common::cpu(), &exp(&with("digital = [\"0\"]")).unwrap());
    let (e, a) = (r.energy.as_ref().unwrap(), analog.energy.as_ref().unwrap());
    assert!(e.analog_mvms < a.analog_mvms && e.digital_ops > a.digital_ops, "a digital layer moves work from the tiles to the digital units");
    let li = &r.points[0].layer_insight;
    assert!(li[0].mvm_error.max < 1e-5, "the digital layer adds {}", li[0].mvm_error.max);
    assert!(li[1].mvm_error.min > 0.01, "the analog layer after it adds {}", li[1].mvm_error.min);
}

#[test]
fn per_layer_activations_reach_the_run_and_the_baseline() {
    let relu = run_ok(&mut common::cpu(), &exp(&with("activations = [\"relu\", \"none\"]")).unwrap());
    let default = run_ok(&mut common::cpu(), &exp(&with("")).unwrap());
    assert_eq!(relu.points[0].per_trial, default.points[0].per_trial, "relu between layers is the default");
    let tanh = run_ok(&mut common::cpu(), &exp(&with("activations = [\"tanh\", \"none\"]")).unwrap());
    assert_ne!(tanh.fp_baseline, relu.fp_baseline, "the floating-point baseline uses the given activation");
    assert_ne!(tanh.points[0].per_trial, relu.points[0].per_trial);
}

#[test]
fn bad_layer_lists_are_named() {
    let e = exp(&with("activations = [\"relu\"]")).err().unwrap();
    assert!(e.contains("model.activations has 1 entries") && e.contains("2 layers (0, 2)"), "{e}");
    let e = exp(&with("digital = [\"fc1\"]")).err().unwrap();
    assert!(e.contains("model.digital") && e.contains("\"fc1\"") && e.contains("0, 2"), "{e}");
}

#[test]
fn layer_tables_set_activations_and_digital_layers() {
    // Tables name the layers in order and carry their activation and digital flag: the same model
    // as the list fields.
    let tables = run_ok(&mut common::cpu(), &exp(&with(r#"layers = [{ name = "0", activation = "tanh", digital = true }, "2"]"#)).unwrap());
    let lists = run_ok(&mut common::cpu(), &exp(&with("activations = [\"tanh\", \"none\"]\ndigital = [\"0\"]")).unwrap());
    assert_eq!(tables.points[0].per_trial, lists.points[0].per_trial);
    assert_eq!(tables.fp_baseline, lists.fp_baseline);
}

#[test]
fn bad_layer_tables_are_named() {
    let cases: [(&str, &[&str]); 7] = [
        (r#"layers = [{ name = "0", strid = 2 }, "2"]"#, &["model.layers[0]", "unknown field `strid`"]),
        (r#"layers = [{ name = "0", pool = "max", pool_size = [1, 2, 3] }, "2"]"#, &["model.layers[0].pool_size", "[height, width]"]),
        (r#"layers = [{ name = "0", stride = 2 }, "2"]"#, &["layer 0 is a Linear layer", "Conv2d layers only"]),
        (r#"layers = [{ name = "0", pool_size = 3 }, "2"]"#, &["model.layers[0]", "pool = \"max\" or \"avg\""]),
        (r#"layers = [{ name = "0", padding = [1, 2, 3] }, "2"]"#, &["model.layers[0].padding", "[height, width]"]),
        (r#"layers = [3, "2"]"#, &["model.layers[0] = 3", "layer name"]),
        ("layers = [{ name = \"0\", activation = \"gelu\" }, \"2\"]\nactivations = [\"relu\", \"none\"]", &["one place"]),
    ];
    for (model, want) in cases {
        let e = exp(&with(model)).err().unwrap();
        assert!(want.iter().all(|w| e.contains(w)), "{model}: {e}");
    }
}
