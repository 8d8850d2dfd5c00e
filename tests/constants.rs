//! The device models' constants against the published tables of noise-models §3–§4 (aihwkit
//! `PCMLikeNoiseModel` and `HermesNoiseModel`), typed here again from the tables rather than read
//! from the models, so a mistyped constant in either place fails. Table values are given to 3–4
//! significant figures; each comparison allows half a unit in the last printed digit.

use aimc::device::DeviceModel;

/// Half a unit in the last digit of a value printed with `digits` decimals.
fn printed(want: f64, got: f64, decimals: i32, what: &str) {
    let tol = 0.5 * 10f64.powi(-decimals) + 1e-12;
    assert!((got - want).abs() <= tol, "{what}: model {got}, table {want} (±{tol})");
}

#[test]
fn pcm_matches_its_reference_table() {
    let d = DeviceModel::pcm();
    assert_eq!((d.g_max, d.t0, d.t_read), (25.0, 20.0, 250e-9));
    let gr = [1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0];
    let mu = [0.100, 0.0958, 0.0708, 0.0601, 0.0493, 0.049, 0.049];
    let sigma = [0.045, 0.045, 0.0315, 0.0229, 0.0142, 0.008, 0.008];
    let q_s = [0.200, 0.1756, 0.0617, 0.0393, 0.0251, 0.0138, 0.0088];
    let prog = [0.0106, 0.0113, 0.0144, 0.0179, 0.0244, 0.0381, 0.0422];
    for i in 0..gr.len() {
        let g = gr[i] * d.g_max;
        printed(mu[i], d.mu_nu(g), 4, &format!("PCM mu_nu at g/g_max = {}", gr[i]));
        printed(sigma[i], d.sigma_nu(g), 4, &format!("PCM sigma_nu at {}", gr[i]));
        printed(q_s[i], d.q_s(g), 4, &format!("PCM Q_s at {}", gr[i]));
        printed(prog[i], d.sigma_prog(g) / d.g_max, 4, &format!("PCM sigma_prog/g_max at {}", gr[i]));
    }
    // sqrt(ln((t + t_read)/(2 t_read))) and (t/t0)^-0.049 at t_inf = 0, 1 s, 1 h, 1 d, 3.15e7 s.
    let t = [0.0, 1.0, 3600.0, 86_400.0, 3.15e7];
    let read = [4.1838, 4.1897, 4.7648, 5.0868, 5.6369];
    let drift = [1.0, 0.9976, 0.7751, 0.6635, 0.4970];
    for i in 0..t.len() {
        printed(read[i], d.read_sqrt_log(t[i]), 4, &format!("read-noise time factor at {} s", t[i]));
        printed(drift[i], (-0.049 * d.log_t_ratio(t[i])).exp(), 4, &format!("drift factor at {} s", t[i]));
    }
}

#[test]
fn hermes_fits_match_the_published_coefficients() {
    let two = DeviceModel::hermes();
    assert_eq!((two.g_max, two.t0, two.t_read, two.prog_g_ref), (20.7, 300.0, 512e-9, 20.7));
    assert_eq!(two.prog_coeff, [0.16603222, 4.71806468, -8.48101252, 4.68961419]);
    let one = DeviceModel::hermes1();
    assert_eq!((one.g_max, one.t0, one.t_read), (10.35, 200.0, 512e-9));
    assert_eq!(one.prog_coeff, [0.15781817, 2.32443916, -2.16310839, 0.68841818]);
    // The piecewise fits, evaluated from the published formulas on both sides of each break.
    let clamp = |v: f64, lo: f64, hi: f64| v.clamp(lo, hi);
    let mu = |gr: f64| if gr < 0.0945 { clamp(-0.0387 * gr.ln() - 0.0182, 0.072, 0.13) } else { -0.0436 * gr * gr - 0.0126 * gr + 0.0736 };
    let sigma2 = |gr: f64| if gr < 0.3055 { clamp(-0.0117 * gr.ln() - 0.0057, 0.0091, 0.04) } else { -0.0118 * gr * gr + 0.0093 * gr + 0.0073 };
    let sigma1 = |gr: f64| if gr < 0.3039 { clamp(-0.0120 * gr.ln() - 0.0023, 0.0124, 0.04) } else { -0.0165 * gr * gr + 0.0116 * gr + 0.0104 };
    let q2 = |gr: f64| if gr < 0.16 { clamp(-0.0117 * gr.ln() - 0.0069, 0.015, 0.04) } else { ((0.0069 * gr - 0.0280) * gr + 0.0211) * gr + 0.0123 };
    let q1 = |gr: f64| if gr < 0.1591 { clamp(-0.0078 * gr.ln() + 0.0038, 0.0179, 0.04) } else { ((0.0664 * gr - 0.1352) * gr + 0.0768) * gr + 0.0088 };
    for gr in [1e-4, 1e-3, 0.01, 0.05, 0.09, 0.1, 0.15, 0.159, 0.16, 0.17, 0.3, 0.3039, 0.31, 0.5, 0.8, 1.0] {
        for (d, sigma, q, name) in [(&two, &sigma2 as &dyn Fn(f64) -> f64, &q2 as &dyn Fn(f64) -> f64, "hermes"), (&one, &sigma1, &q1, "hermes1")] {
            let g = gr * d.g_max;
            printed(mu(gr), d.mu_nu(g), 6, &format!("{name} mu_nu at {gr}"));
            printed(sigma(gr), d.sigma_nu(g), 6, &format!("{name} sigma_nu at {gr}"));
            printed(q(gr), d.q_s(g), 6, &format!("{name} Q_s at {gr}"));
        }
    }
}
