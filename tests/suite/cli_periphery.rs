//! The periphery settings aimc adds to aihwkit's as the CLI sees them: input noise after the DAC
//! (`periphery.inp_noise`) on a sweep axis and its refusals, and a layer's own periphery (`periphery
//! = {...}` in a `[model] layers` table) laid over each point's, with its refusals.

use crate::cli::{aimc, bad_experiment, expect_error, results};

/// Input noise after the DAC (`periphery.inp_noise`): a sweep over it runs, 0 gives the default's
/// trials bit for bit, and what aimc cannot hold is named before any compute: a negative level,
/// and under GDC (this file's `readout` points) input noise beside weight noise or IR drop, whose
/// readout terms would read the noisy lines.
#[test]
fn input_noise_sweeps_and_is_checked() {
    let p = bad_experiment("inp-noise", |t| t.replace("gdc = [\"off\", \"readout\"]", "gdc = [\"off\", \"readout\"]\ninp_noise = [0.0, 0.1]"));
    let out = p.parent().unwrap().join("out");
    let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let swept = results(&out);
    assert_eq!(swept.points.len(), 8, "2 GDC settings x 2 input noises x 2 times");
    let p = bad_experiment("inp-noise-base", |t| t);
    let out = p.parent().unwrap().join("out");
    let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let base = results(&out);
    let quiet: Vec<_> = swept.points.iter().filter(|p| p.series.ends_with("inp_noise=0.0")).collect();
    assert_eq!(quiet.len(), base.points.len());
    for (a, b) in quiet.iter().zip(&base.points) {
        assert_eq!(a.per_trial, b.per_trial, "{} at {}: no input noise is the default", a.series, a.time_label);
    }
    let noisy: Vec<_> = swept.points.iter().filter(|p| p.series.ends_with("inp_noise=0.1")).collect();
    assert!(noisy.iter().zip(&quiet).any(|(a, b)| a.per_trial != b.per_trial), "input noise changes the trials");
    for (name, periphery, needles) in [
        ("inp-negative", "inp_noise = -0.1", &["periphery.inp_noise = -0.1", "finite number >= 0"][..]),
        ("inp-wnoise", "inp_noise = 0.05\nw_noise = 0.02", &["periphery.inp_noise = 0.05 with periphery.w_noise = 0.02", "gdc = \"off\""][..]),
        ("inp-irdrop", "inp_noise = 0.05\nir_drop = 1.0", &["periphery.inp_noise = 0.05 with periphery.ir_drop = 1", "sweep point"][..]),
    ] {
        let p = bad_experiment(name, |t| format!("{t}\n[periphery]\n{periphery}\n"));
        expect_error(&p, needles);
    }
}

/// A layer's own periphery (`[model] layers` table `periphery = {...}`): laid over each point's,
/// so with the head's ADC at 4 bits the point whose axis sets 4 bits everywhere is the plain
/// 4-bit run trial by trial, and the 9-bit point is not the plain 9-bit run; a layer setting the
/// file's own value changes nothing. What it cannot hold is named before any compute.
#[test]
fn a_layer_has_its_own_periphery() {
    let layers = |head: &str| {
        let head = head.to_string();
        move |t: String| {
            t.replace(
                "path = \"models/digits_mlp.safetensors\"",
                &format!("path = \"models/digits_mlp.safetensors\"\nlayers = [{{ name = \"0\", activation = \"relu\" }}, {{ name = \"2\"{head} }}]"),
            )
        }
    };
    let run = |name: &str, edit: &dyn Fn(String) -> String| {
        let p = bad_experiment(name, edit);
        let out = p.parent().unwrap().join("out");
        let o = aimc().args(["run", p.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        results(&out)
    };
    let adc = |bits: &str| {
        let axis = format!("gdc = [\"off\", \"readout\"]\nadc_bits = [{bits}]");
        move |t: String| t.replace("gdc = [\"off\", \"readout\"]", &axis)
    };
    let mixed = run("layer-periphery", &|t| adc("9, 4")(layers(", periphery = { out_res_bits = 4 }")(t)));
    let plain4 = run("layer-periphery-4", &|t| adc("4")(layers("")(t)));
    let plain9 = run("layer-periphery-9", &|t| adc("9")(layers("")(t)));
    let at = |r: &aimc::results::Results, bits: &str| -> Vec<Vec<f64>> {
        r.points.iter().filter(|p| p.series.contains(&format!("out_res_bits={bits}"))).map(|p| p.per_trial.clone()).collect()
    };
    assert_eq!(at(&mixed, "4"), at(&plain4, "4"), "4 bits everywhere is the plain 4-bit run");
    assert_ne!(at(&mixed, "9"), at(&plain9, "9"), "the head's 4-bit ADC changes the 9-bit point");
    let same = run("layer-periphery-same", &|t| adc("9")(layers(", periphery = { out_res_bits = 9 }")(t)));
    assert_eq!(at(&same, "9"), at(&plain9, "9"), "a layer setting the file's value changes nothing");
    for (name, head, needles) in [
        ("lp-unknown", ", periphery = { adc = 8 }", &["model.layers[1].periphery.adc: unknown field"][..]),
        ("lp-omega", ", periphery = { weight_scaling_omega = 1.0 }", &["model.layers[1].periphery.weight_scaling_omega", "the same for every layer"][..]),
        ("lp-bits", ", periphery = { out_res_bits = 1 }", &["model.layers[1].periphery", "out_res_bits = 1"][..]),
        ("lp-digital", ", digital = true, periphery = { out_res_bits = 8 }", &["model.layers[1].periphery with digital = true"][..]),
        ("lp-text", ", periphery = \"eight\"", &["model.layers[1].periphery = \"eight\": give a table of [periphery] fields"][..]),
        (
            "lp-inp-noise",
            ", periphery = { inp_noise = 0.05, w_noise = 0.02 }",
            &["periphery.inp_noise = 0.05 with periphery.w_noise = 0.02", "sweep point gdc=readout"][..],
        ),
    ] {
        expect_error(&bad_experiment(name, layers(head)), needles);
    }
    let listed = |t: String| layers(", periphery = { out_res_bits = 8 }")(t).replace("layers = [", "digital = [\"2\"]\nlayers = [");
    expect_error(&bad_experiment("lp-listed", listed), &["model.layers[1].periphery with model.digital naming \"2\""]);
    let budget = |t: String| layers(", periphery = { out_res_bits = 8 }")(t) + "\n[budget]\n";
    expect_error(&bad_experiment("lp-budget", budget), &["model.layers[1].periphery with [budget]"]);
}
