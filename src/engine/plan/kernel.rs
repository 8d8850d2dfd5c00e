//! The kernel plan: random features of a model's outputs reduced per trial to the kernel error or
//! linear attention (`feature_map`, then `kernel_error` or `attention_kv` + `attention_out`).

use super::*;

/// What the kernel plan reduces each trial's random features to.
pub enum KernelReduction<'a> {
    /// Σ_ij (K_ij − φ_i·φ_j)² against the exact kernel matrix K (rows × rows).
    KernelError { kmat: &'a [f32] },
    /// Σ (A − Â)² of linear attention against the exact attention outputs A; `v` and `exact` are
    /// `[head][seq][dv]`.
    Attention { v: &'a [f32], exact: &'a [f32] },
}

/// One trial's largest buffer of the kernel stages (bytes): Φ (rows × width), attention's sums,
/// or the partial sums of every time. `aimc check` asks the same function before a run.
pub fn kernel_trial_bytes(kp: &KernelParams, times: usize, attention: bool) -> u64 {
    let phi_words = kp.rows as u64 * kp.width as u64;
    let kv_words = if attention { kp.heads as u64 * kp.blocks as u64 * kp.width as u64 * (kp.dv as u64 + 1) } else { 0 };
    let slots = if attention { kp.heads as u64 * kp.seq as u64 } else { kp.rows as u64 };
    phi_words.max(kv_words).max(times as u64 * slots) * 4
}

/// The most one trial's kernel-stage buffer may take on a backend whose bindings hold
/// `max_binding` bytes: a quarter of the chunk budget at most, as the chunk holds several.
pub fn kernel_binding_limit(max_binding: u64) -> u64 {
    max_binding.min(CHUNK_BUDGET_BYTES / 4)
}

/// The kernel workloads on the device (kernel-attention spec): per chunk, program the projection;
/// per time, drift and run every input row through it (the analog projection), then
/// `feature_map` and the reduction stages (`kernel_error`, or `attention_kv` + `attention_out`).
/// Only per-(trial, row) partial sums come back, once per chunk, and are summed per trial in f64:
/// the result is `[time][trial]` sums of squared errors. `x` is `[rows][d]`, `norms` its squared
/// row norms; `kp` gives the map and shapes (its `rows` must be the row count of `x`).
#[allow(clippy::too_many_arguments)]
pub fn run_kernel(
    be: &mut dyn Backend,
    layers: &[AnalogLayer],
    x: &[f32],
    norms: &[f32],
    kp: KernelParams,
    reduction: KernelReduction,
    cfg: &RunConfig,
    on_chunk: &mut dyn FnMut(u32),
) -> Result<Vec<Vec<f64>>, EngineError> {
    let rows = kp.rows as usize;
    let attention = matches!(reduction, KernelReduction::Attention { .. });
    let slots = if attention { (kp.heads * kp.seq) as usize } else { rows };
    let nt = cfg.times.len();
    let phi_words = rows * kp.width as usize;
    let kv_words = if attention { (kp.heads * kp.blocks * kp.width * (kp.dv + 1)) as usize } else { 0 };
    let per_trial = kernel_trial_bytes(&kp, nt, attention);
    let limit = kernel_binding_limit(be.max_binding_bytes());
    if per_trial > limit {
        return Err(EngineError::TooLarge {
            what: "one trial's random features".into(),
            need: per_trial,
            limit,
            fix: "the feature count, the number of points or the sequence length".into(),
        });
    }
    let mut cfg = cfg.clone();
    cfg.max_chunk = cfg.max_chunk.min((limit / per_trial).max(1) as u32);
    let upload = |be: &mut dyn Backend, label: &str, data: &[f32]| {
        let b = be.create(label, data.len().max(1));
        be.upload(b, bytemuck::cast_slice(data));
        b
    };
    let norms_b = upload(be, "norms", norms);
    let inputs: Vec<Buf> = match &reduction {
        KernelReduction::KernelError { kmat } => vec![upload(be, "kmat", kmat)],
        KernelReduction::Attention { v, exact } => vec![upload(be, "v", v), upload(be, "exact", exact)],
    };
    let bufs = std::cell::Cell::new(None::<(Buf, Buf, Buf, usize)>);
    let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(cfg.trials as usize); nt];
    let res = forward(
        be,
        layers,
        x,
        kp.rows,
        0,
        std::slice::from_ref(&cfg),
        on_chunk,
        &mut |be, h, p, _, ti| {
            let n = p.layer.trials as usize;
            let (phi, kv, partial, _) = match bufs.get() {
                Some(b) => b,
                None => {
                    let b = (be.create("phi", n * phi_words), be.create("kv", (n * kv_words).max(1)), be.create("partial", nt * n * slots), n);
                    bufs.set(Some(b));
                    b
                }
            };
            let mut sp = *p;
            sp.kern = kp;
            sp.layer.t_index = ti as u32;
            let wg = be.wg();
            be.dispatch(Stage::FeatureMap, &sp, &[h, norms_b, phi], grid((n * rows * kp.s as usize) as u64, wg));
            match &reduction {
                KernelReduction::KernelError { .. } => be.dispatch(Stage::KernelError, &sp, &[phi, inputs[0], partial], grid((n * rows) as u64, 1)),
                KernelReduction::Attention { .. } => {
                    // Tiled GEMMs: a workgroup per (trial, head, feature block, column block) of the
                    // sums, and per (trial, head, block of ATTN_BLOCK tokens) of the outputs.
                    let kv_tiles = kp.width.div_ceil(KV_BF) as u64 * kp.dv.div_ceil(KV_BC).max(1) as u64;
                    be.dispatch(Stage::AttentionKv, &sp, &[phi, inputs[0], kv], grid(n as u64 * kp.heads as u64 * kv_tiles, 1));
                    let token_blocks = kp.seq.div_ceil(ATTN_BLOCK as u32) as u64;
                    be.dispatch(Stage::AttentionOut, &sp, &[phi, kv, inputs[0], inputs[1], partial], grid(n as u64 * kp.heads as u64 * token_blocks, 1));
                }
            }
            Ok(())
        },
        &mut |be, n| {
            let (_, _, partial, _) = bufs.get().expect("a chunk dispatched its partial sums");
            let got: Vec<f32> = bytemuck::cast_vec(be.download(partial)?);
            let n = n as usize;
            for (ti, o) in out.iter_mut().enumerate() {
                for t in 0..n {
                    o.push(got[(ti * n + t) * slots..][..slots].iter().map(|&v| v as f64).sum());
                }
            }
            Ok(())
        },
        None,
    );
    if let Some((a, b, c, _)) = bufs.get() {
        for x in [a, b, c] {
            be.free(x);
        }
    }
    for b in std::iter::once(norms_b).chain(inputs) {
        be.free(b);
    }
    res.map(|_| out)
}
