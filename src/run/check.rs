//! What `aimc check` verifies beyond the file itself: that every sweep point's largest per-trial
//! buffer fits one buffer binding of the backend the run would use. The kernel workloads hold
//! one trial's random features (points × features) in one binding, which the plan cannot split,
//! so a feature count or point set too large for the adapter would otherwise pass the file checks
//! and fail mid-run. The sizes come from the plan's own functions ([`plan::kernel_trial_bytes`],
//! [`plan::layer_trial_bytes`]), so the check and the run cannot disagree. Other workloads'
//! plans split their batches to fit (`plan::sample_batch`) and need no check here.

use crate::config::{Experiment, SweepPoint, WorkloadKind};
use crate::engine::layout::KernelParams;
use crate::engine::plan;
use crate::engine::stages::ATTN_BLOCK;
use crate::workload::kernel::KernelData;

/// A sweep point whose buffers do not fit; the message names the point, the field, the sizes
/// and the largest value that fits.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TooLarge(pub String);

/// Checks every sweep point of `exp` against bindings of `max_binding` bytes (`backend` names
/// the backend in the message).
pub fn check_sizes(exp: &Experiment, backend: &str, max_binding: u64) -> Result<(), TooLarge> {
    let Some(data) = exp.kernel_data.as_ref() else { return Ok(()) };
    for sp in &exp.points {
        let Some(ks) = sp.kernel.as_ref() else { continue };
        let need = |features: usize| kernel_point_bytes(exp, data, sp, features, exp.times.len(), max_binding);
        if let Err((what, bytes, limit)) = need(ks.features) {
            // The bytes grow with the feature count: the largest count that fits, by bisection.
            let (mut lo, mut hi) = (0usize, ks.features);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if need(mid).is_ok() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let field = if exp.axes.iter().any(|a| a.name == "features") { "kernel.features (the sweep's features axis)" } else { "kernel.features" };
            let fits = if lo > 0 { format!("the largest {field} that fits is {lo}") } else { "no feature count fits at this size".to_string() };
            let other = match data {
                KernelData::Points { .. } => "or use fewer points (kernel.points)",
                KernelData::Attention { .. } => "or use a shorter sequence or fewer heads ([attention] n, heads)",
            };
            return Err(TooLarge(format!(
                "sweep point {} ({}): kernel.features = {}: {what} needs {bytes} bytes in one buffer binding but {backend} allows {limit}; {fits}, {other}",
                sp.index,
                sp.series(),
                ks.features
            )));
        }
    }
    Ok(())
}

/// One sweep point's largest per-trial buffer with `features` projection rows, against its limit:
/// Ok, or Err((what, bytes, limit)) for the first one over.
fn kernel_point_bytes(
    exp: &Experiment,
    data: &KernelData,
    sp: &SweepPoint,
    features: usize,
    times: usize,
    max_binding: u64,
) -> Result<(), (&'static str, u64, u64)> {
    let ks = sp.kernel.as_ref().expect("a kernel sweep point");
    let d = data.d();
    let mut spec_ks = ks.clone();
    spec_ks.features = features;
    let width = spec_ks.spec(d).width() as u32;
    let mut kp = KernelParams { s: features as u32, replicas: ks.replicas, width, ..Default::default() };
    // The rows the projection runs, as the workload stacks them (workload::kernel::run_point).
    let (rows, stages) = match (data, exp.workload) {
        (KernelData::Points { test_y, .. }, WorkloadKind::KernelRidge) => (test_y.len(), false),
        (KernelData::Points { test_y, .. }, _) => (ks.points.min(test_y.len()), true),
        (KernelData::Attention { heads, n, d, causal, .. }, _) => {
            kp.heads = *heads as u32;
            kp.seq = *n as u32;
            kp.dv = *d as u32;
            kp.causal = u32::from(*causal);
            kp.blocks = if *causal { n.div_ceil(ATTN_BLOCK) as u32 } else { 1 };
            (2 * heads * n, true)
        }
    };
    kp.rows = rows as u32;
    if stages {
        let attention = matches!(data, KernelData::Attention { .. });
        let (bytes, limit) = (plan::kernel_trial_bytes(&kp, times, attention), plan::kernel_binding_limit(max_binding));
        if bytes > limit {
            return Err(("one trial's random features", bytes, limit));
        }
    }
    let n_out = (features * ks.replicas as usize) as u32;
    let bytes = plan::layer_trial_bytes(d as u32, n_out, (d as u32).div_ceil(sp.tile.max_in), rows as u32, &sp.device);
    if bytes > max_binding {
        return Err(("one trial's projection outputs", bytes, max_binding));
    }
    Ok(())
}
