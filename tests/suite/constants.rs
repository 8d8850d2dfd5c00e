//! The HERMES device models' constants against the published fits of noise-models §4 (aihwkit
//! `HermesNoiseModel`), typed here again from the spec rather than read from the models, so a
//! mistyped constant in either place fails (the PCM model's reference table is checked in
//! src/device/mod.rs). Each comparison allows half a unit in the sixth decimal.

use aimc::device::DeviceModel;

/// Half a unit in the last digit of a value printed with `digits` decimals.
fn printed(want: f64, got: f64, decimals: i32, what: &str) {
    let tol = 0.5 * 10f64.powi(-decimals) + 1e-12;
    assert!((got - want).abs() <= tol, "{what}: model {got}, table {want} (±{tol})");
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
