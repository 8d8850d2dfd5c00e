//! Device state shared between configurations run as one plan (sweep points or noise-budget
//! configurations of one network that differ only in noise scales, converter settings or drift
//! compensation): the order that lets neighbours share a programmed and drifted state, the tags
//! that say which state a layer's buffers hold, so `program` and `drift` are dispatched only where
//! they would write something else, and equal configurations run once (`run_distinct`). A skipped
//! dispatch would have written the same values, bit for bit.

use super::*;

/// The configurations (indices into `cfgs`) in the order that shares the most device state,
/// grouped where they drift alike. `tags(c)` gives a configuration's `program` tags and its
/// `drift` tags (at the first time) of every layer; the order sorts by them, stably, so
/// configurations with equal states keep the caller's order and a single one is its own group.
pub(super) fn sharing_groups(cfgs: &[RunConfig], tags: impl Fn(&RunConfig) -> (Vec<u32>, Vec<u32>)) -> Vec<Vec<usize>> {
    let keys: Vec<(Vec<u32>, Vec<u32>)> = cfgs.iter().map(tags).collect();
    let mut order: Vec<usize> = (0..cfgs.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    order.chunk_by(|&a, &b| keys[a].1 == keys[b].1).map(<[usize]>::to_vec).collect()
}

/// The first of configurations that run as one plan (its trials, times and chunking are
/// everyone's), once every one can ([`same_plan`]).
pub(super) fn group_lead(cfgs: &[RunConfig]) -> Result<&RunConfig, EngineError> {
    let Some(first) = cfgs.first() else {
        return Err(EngineError::Invalid("a run needs at least one configuration".into()));
    };
    match cfgs.iter().position(|c| !same_plan(first, c)) {
        Some(i) => Err(EngineError::Invalid(format!(
            "configuration {i} of a grouped run differs from the first in more than noise, converter and drift-compensation settings (trials, times, chunking, per-column compensation or state layout)"
        ))),
        None => Ok(first),
    }
}

/// Whether two configurations can run as one plan: the same trials, times, chunking,
/// compensation buffers (per tile or per column) and programmed-state layout (noise scales,
/// converter settings, the compensation mode, per-layer noise and the RNG key may differ).
pub(super) fn same_plan(a: &RunConfig, b: &RunConfig) -> bool {
    a.trials == b.trials
        && a.first_trial == b.first_trial
        && a.times == b.times
        && a.max_chunk == b.max_chunk
        // The compensation may differ where its buffers do not (per tile or per column).
        && a.gdc.per_column() == b.gdc.per_column()
        && a.reads_per_programming == b.reads_per_programming
        && state_words(&a.device) == state_words(&b.device)
        && a.layer_noise.iter().chain(&b.layer_noise).flatten().all(|(d, _)| state_words(d) == state_words(&a.device))
}

/// Runs `run` on the distinct configurations of `cfgs` only and hands each result to every
/// configuration equal to it: equal where every matrix's params at every time are, so every
/// dispatch and every number would be (the noise budget's `only layer 1` of a two-layer model is
/// its `without layer 0`, a sensitivity knob at × 0 is `without` that source). `run` gets the
/// distinct configurations in their first occurrence's order and returns one result each.
pub(super) fn run_distinct<T: Clone>(
    cfgs: &[RunConfig],
    matrices: &[&MappedMatrix],
    run: impl FnOnce(&[RunConfig]) -> Result<Vec<T>, EngineError>,
) -> Result<Vec<T>, EngineError> {
    let key = |c: &RunConfig| -> Vec<u32> {
        let mut v = Vec::new();
        for (li, m) in matrices.iter().enumerate() {
            for (ti, &t) in c.times.iter().enumerate() {
                v.extend_from_slice(bytemuck::cast_slice(&[params(c, li as u32, m, 1, 0, 1, ti as u32, t)]));
            }
        }
        v
    };
    let keys: Vec<Vec<u32>> = cfgs.iter().map(key).collect();
    // Each configuration's slot among the distinct ones.
    let mut distinct: Vec<usize> = Vec::new();
    let slot: Vec<usize> = (0..cfgs.len())
        .map(|i| match distinct.iter().position(|&d| keys[d] == keys[i]) {
            Some(k) => k,
            None => {
                distinct.push(i);
                distinct.len() - 1
            }
        })
        .collect();
    if distinct.len() == cfgs.len() {
        return run(cfgs);
    }
    let got = run(&distinct.iter().map(|&d| cfgs[d].clone()).collect::<Vec<_>>())?;
    Ok(slot.into_iter().map(|k| got[k].clone()).collect())
}

/// One layer's params as words, without what neither `program` nor `drift` reads (the MVM-only
/// `full_path`) and without the time.
fn layer_words(p: &StageParams, gdc_mode: u32) -> Vec<u32> {
    let mut l = p.layer;
    (l.full_path, l.t_index, l.log_t_ratio, l.read_sqrt_log, l.gdc_base, l.gdc_mode, l.relax_at) = (0, 0, 0.0, 0.0, 0, gdc_mode, 0);
    let mut v: Vec<u32> = bytemuck::cast_slice(&[l]).to_vec();
    v.extend_from_slice(bytemuck::cast_slice(&[p.dev]));
    v
}

/// Everything of one layer's params that `program` reads, as words: equal tags, equal
/// programmed state. The drift compensation is left out (`program` does not read it), so runs
/// with and without GDC share their programmed states.
pub(super) fn program_tag(p: &StageParams) -> Vec<u32> {
    layer_words(p, 0)
}

/// Everything of one layer's params that `drift` and `gdc` read but the time, as words: the
/// program's tag, the compensation, and with compensation the periphery through which the GDC
/// readout is taken (`gdc_readout`: the ADC, output noise, per-read weight noise and IR drop;
/// `gdc_readout_inp`: input noise).
/// Equal tags at equal times, equal effective weights and compensation.
pub(super) fn drift_tag(p: &StageParams) -> Vec<u32> {
    let mut v = layer_words(p, p.layer.gdc_mode);
    if p.layer.gdc_mode != 0 {
        let io = &p.io;
        v.extend([io.out_step, io.out_bound, io.out_noise, io.w_noise, io.ir_drop, io.ir_g_ratio, io.inp_noise].map(f32::to_bits));
        v.push(io.w_noise_type);
    }
    v
}

/// What `drift` must do before a layer's MVMs.
pub(super) enum Drift {
    /// The buffers hold these effective weights and this compensation already.
    Held,
    /// Dispatch it.
    Record,
    /// Dispatch it at the first time first: the GDC baseline this time's compensation reads was
    /// replaced by another state's.
    BaselineFirst,
}

/// Which programmed state, which drifted state (and time) and which GDC baseline each layer's
/// buffers hold, as tags; `None` where unknown.
pub(super) struct StateTags {
    program: Vec<Option<Vec<u32>>>,
    drift: Vec<Option<(Vec<u32>, u32)>>,
    baseline: Vec<Option<Vec<u32>>>,
}

impl StateTags {
    pub(super) fn new(layers: usize) -> Self {
        StateTags { program: vec![None; layers], drift: vec![None; layers], baseline: vec![None; layers] }
    }

    /// A new chunk of trials: nothing is held.
    pub(super) fn forget(&mut self) {
        *self = StateTags::new(self.program.len());
    }

    /// Whether layer `li` must be programmed for `p` (and now holds that state).
    pub(super) fn program(&mut self, li: usize, p: &StageParams) -> bool {
        let tag = program_tag(p);
        if self.program[li].as_ref() == Some(&tag) {
            return false;
        }
        self.program[li] = Some(tag);
        self.drift[li] = None;
        self.baseline[li] = None;
        true
    }

    /// What layer `li` needs before MVMs with `p` (and what it holds after).
    pub(super) fn drift(&mut self, li: usize, p: &StageParams) -> Drift {
        let (tag, ti) = (drift_tag(p), p.layer.t_index);
        if self.drift[li].as_ref().is_some_and(|(t, i)| *t == tag && *i == ti) {
            return Drift::Held;
        }
        let baseline_held = ti == 0 || self.baseline[li].as_ref() == Some(&tag);
        self.baseline[li] = Some(tag.clone());
        self.drift[li] = Some((tag, ti));
        if baseline_held {
            Drift::Record
        } else {
            Drift::BaselineFirst
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(drift_scale: f32, t_index: u32) -> StageParams {
        let mut p = StageParams::default();
        (p.layer.t_index, p.layer.gdc_mode, p.dev.drift_scale) = (t_index, 1, drift_scale);
        p
    }

    /// The tags follow what a layer's buffers hold: a state held is not written again, a drift
    /// past the first time whose GDC baseline another state replaced drifts the first time
    /// again, and programming forgets the drifted state.
    #[test]
    fn tags_say_what_a_layer_holds() {
        let mut t = StateTags::new(1);
        assert!(t.program(0, &at(1.0, 0)));
        assert!(!t.program(0, &at(1.0, 0)));
        assert!(matches!(t.drift(0, &at(1.0, 0)), Drift::Record));
        assert!(matches!(t.drift(0, &at(1.0, 0)), Drift::Held));
        assert!(matches!(t.drift(0, &at(1.0, 1)), Drift::Record));
        // The same programmed state read through another output noise (the GDC readout's).
        let mut noisy = at(1.0, 1);
        noisy.io.out_noise = 0.1;
        assert!(!t.program(0, &noisy));
        assert!(matches!(t.drift(0, &noisy), Drift::BaselineFirst));
        assert!(matches!(t.drift(0, &noisy), Drift::Held));
        assert!(matches!(t.drift(0, &at(1.0, 2)), Drift::BaselineFirst));
        // Without GDC the readout's settings are not part of the drifted state.
        let (mut plain, mut other) = (at(1.0, 0), at(1.0, 0));
        (plain.layer.gdc_mode, other.layer.gdc_mode, other.io.out_noise) = (0, 0, 0.1);
        assert_eq!(drift_tag(&plain), drift_tag(&other));
        // With GDC the readout passes through per-read weight noise and IR drop too.
        for set in [|p: &mut StageParams| p.io.w_noise = 0.02, |p: &mut StageParams| p.io.ir_drop = 1.0, |p: &mut StageParams| p.io.w_noise_type = 1] {
            let mut changed = at(1.0, 1);
            set(&mut changed);
            assert_ne!(drift_tag(&at(1.0, 1)), drift_tag(&changed));
        }
        // With and without GDC: one programmed state, two drifted ones.
        let with = at(1.0, 0);
        assert_eq!(program_tag(&plain), program_tag(&with));
        assert_ne!(drift_tag(&plain), drift_tag(&with));
        // Another programmed state: nothing drifted is held.
        assert!(t.program(0, &at(0.5, 0)));
        assert!(matches!(t.drift(0, &at(0.5, 1)), Drift::BaselineFirst));
        t.forget();
        assert!(t.program(0, &at(0.5, 0)));
    }
}
