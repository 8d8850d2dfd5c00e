//! The CPU backend: executes the plan with the CPU twins of the WGSL stages. It is the oracle in
//! tests; with [`CpuBackend::fast`] (what `--backend cpu` opens) the hot stages run the `fast`
//! kernels instead and this is the backend of machines without a GPU. Each twin lives in a file named like its
//! shader and takes its buffers in `@binding` order.

pub mod common;

/// One twin module per line of the stage table (`stages::stage_table`): src/engine/cpu/NAME.rs,
/// whose function `NAME` the table line names (checked here, so a missing twin does not compile).
macro_rules! twin_modules {
    ($($variant:ident $name:ident [$($file:literal),*] $wg:literal;)*) => {
        $(
            pub mod $name;
            const _: () = {
                let _ = $name::$name;
            };
        )*
    };
}
super::stages::stage_table!(twin_modules);

use super::layout::StageParams;
use super::profile::Profile;
use super::stages::Stage;
use super::{fast, AdapterInfo, Backend, Buf};
use bytemuck::{cast_slice, cast_slice_mut};

/// The fast backend's largest buffer binding: bounds trials per chunk, hence resident memory.
pub const FAST_BINDING_BYTES: u64 = 32 << 20;

/// Freed buffers kept for reuse, at most this many bytes (the GPU backend's pool, on the host).
/// A sweep, a budget or a checkpointed run creates the same buffers for every point and chunk:
/// taken from the pool they cost one `memset`, where fresh zeroed allocations cost a page fault
/// per 4 KiB on first touch and an `munmap` with its TLB shootdown when freed (2.2 M faults and
/// 4.9 s of system time on `digits_budget.toml` without the pool). The pool lives as long as the
/// backend: one run of `aimc run`, `aimc bench` or the Python package's `run`.
pub const POOL_BYTES: u64 = 1 << 30;

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub struct CpuBackend {
    bufs: Vec<Vec<u32>>,
    /// Freed buffers, the most recently freed last, at most `pool_bytes` ([`POOL_BYTES`]).
    pool: Vec<Vec<u32>>,
    pool_bytes: u64,
    threads: usize,
    wg: u32,
    profile: Option<Profile>,
    /// Run `mvm`, `drift`, `dac` and `combine` with the `engine::fast` kernels.
    fast: bool,
}

impl CpuBackend {
    pub fn new(threads: usize, wg: u32) -> Self {
        CpuBackend { bufs: Vec::new(), pool: Vec::new(), pool_bytes: POOL_BYTES, threads: threads.max(1), wg, profile: None, fast: false }
    }

    /// Adds the time since `clock` (taken only while profiling) to the host `activity`.
    fn host_since(&mut self, activity: &str, clock: Option<std::time::Instant>) {
        if let (Some(c), Some(p)) = (clock, &mut self.profile) {
            p.add_host(activity, c.elapsed().as_secs_f64());
        }
    }

    /// The production CPU backend: the fast kernels for the hot stages (see `engine::fast`),
    /// the twins for the others, trial chunks sized to stay in memory (`max_binding_bytes`).
    pub fn fast(threads: usize) -> Self {
        CpuBackend { fast: true, ..Self::new(threads, 256) }
    }

    fn get(&self, b: Buf) -> &[u32] {
        &self.bufs[b.0]
    }
}

impl Backend for CpuBackend {
    fn adapter(&self) -> AdapterInfo {
        AdapterInfo {
            name: if self.fast { format!("CPU ({} threads)", self.threads) } else { format!("CPU twin ({} threads)", self.threads) },
            backend: "cpu".into(),
            driver: format!("aimc {}", env!("CARGO_PKG_VERSION")),
            device_type: "Cpu".into(),
        }
    }

    fn create(&mut self, _label: &str, words: usize) -> Buf {
        let clock = self.profile.is_some().then(std::time::Instant::now);
        let words = words.max(1);
        // The smallest freed buffer that holds `words` without doubling them, else the largest
        // smaller one, grown (`realloc` moves its pages without touching them again).
        let fits = |v: &Vec<u32>| (words..=words.saturating_mul(2)).contains(&v.capacity());
        let pick = self
            .pool
            .iter()
            .enumerate()
            .filter(|(_, v)| fits(v))
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)
            .or_else(|| self.pool.iter().enumerate().filter(|(_, v)| v.capacity() < words).max_by_key(|(_, v)| v.capacity()).map(|(i, _)| i));
        let v = match pick {
            Some(i) => {
                let mut v = self.pool.remove(i);
                v.clear();
                v.reserve_exact(words);
                v.resize(words, 0);
                v
            }
            None => vec![0; words],
        };
        self.bufs.push(v);
        self.host_since("create buffers", clock);
        Buf(self.bufs.len() - 1)
    }

    fn upload(&mut self, buf: Buf, data: &[u32]) {
        let clock = self.profile.is_some().then(std::time::Instant::now);
        if let Some(p) = &mut self.profile {
            p.uploads += 1;
            p.upload_bytes += 4 * data.len() as u64;
        }
        self.bufs[buf.0][..data.len()].copy_from_slice(data);
        self.host_since("uploads", clock);
    }

    fn clear(&mut self, buf: Buf) {
        self.bufs[buf.0].fill(0);
    }

    fn download(&mut self, buf: Buf) -> Result<Vec<u32>, super::EngineError> {
        let clock = self.profile.is_some().then(std::time::Instant::now);
        if let Some(p) = &mut self.profile {
            p.readbacks += 1;
            p.readback_bytes += 4 * self.bufs[buf.0].len() as u64;
        }
        let out = self.bufs[buf.0].clone();
        self.host_since("readbacks", clock);
        Ok(out)
    }

    fn free(&mut self, buf: Buf) {
        let clock = self.profile.is_some().then(std::time::Instant::now);
        let v = std::mem::take(&mut self.bufs[buf.0]);
        if v.capacity() > 0 {
            self.pool.push(v);
            // Keep at most `pool_bytes` of freed buffers, the most recently freed first.
            super::trim_pool(&mut self.pool, self.pool_bytes, |v| 4 * v.capacity() as u64);
        }
        self.host_since("free buffers", clock);
    }

    fn dispatch(&mut self, stage: Stage, p: &StageParams, b: &[Buf], groups: [u32; 3]) {
        let th = self.threads;
        let start = self.profile.is_some().then(std::time::Instant::now);
        // The written buffer(s) are taken out while the read-only ones are borrowed.
        let mut out = std::mem::take(&mut self.bufs[b[b.len() - 1].0]);
        // The fast kernels share the twins' signatures: pick one per stage, same call.
        let fast = self.fast;
        match stage {
            Stage::Program => {
                let mut state = std::mem::take(&mut self.bufs[b[2].0]);
                let f = if fast { fast::program::program } else { program::program };
                f(p, groups, self.wg, cast_slice(self.get(b[0])), cast_slice(self.get(b[1])), cast_slice_mut(&mut state), &mut out, th);
                self.bufs[b[2].0] = state;
            }
            Stage::Drift => {
                let mut weff = std::mem::take(&mut self.bufs[b[3].0]);
                let f = if fast { fast::drift::drift } else { drift::drift };
                f(p, groups, cast_slice(self.get(b[0])), self.get(b[1]), cast_slice(self.get(b[2])), cast_slice_mut(&mut weff), cast_slice_mut(&mut out), th);
                self.bufs[b[3].0] = weff;
            }
            Stage::Gdc => {
                let mut partials = std::mem::take(&mut self.bufs[b[3].0]);
                gdc::gdc(
                    p,
                    cast_slice(self.get(b[0])),
                    cast_slice(self.get(b[1])),
                    cast_slice(self.get(b[2])),
                    cast_slice_mut(&mut partials),
                    cast_slice_mut(&mut out),
                    th,
                );
                self.bufs[b[3].0] = partials;
            }
            Stage::Dac => {
                let mut xq = std::mem::take(&mut self.bufs[b[4].0]);
                let f = if fast { fast::dac::dac } else { dac::dac };
                f(
                    p,
                    cast_slice(self.get(b[0])),
                    cast_slice(self.get(b[1])),
                    self.get(b[2]),
                    self.get(b[3]),
                    cast_slice_mut(&mut xq),
                    cast_slice_mut(&mut out),
                    th,
                );
                self.bufs[b[4].0] = xq;
            }
            // `mvm_narrow`'s twin is the `mvm` twin (the block shape changes no value); `mvm_full`
            // shares their bindings.
            Stage::Mvm | Stage::MvmNarrow | Stage::MvmFull => {
                let mut y = std::mem::take(&mut self.bufs[b[3].0]);
                let mut sat = std::mem::take(&mut self.bufs[b[4].0]);
                let mut nsat = std::mem::take(&mut self.bufs[b[5].0]);
                let f = match (stage, fast) {
                    (Stage::MvmFull, true) => fast::mvm_full::mvm_full,
                    (Stage::MvmFull, false) => mvm_full::mvm_full,
                    (_, true) => fast::mvm::mvm,
                    (_, false) => mvm::mvm,
                };
                f(
                    p,
                    cast_slice(self.get(b[0])),
                    cast_slice(self.get(b[1])),
                    cast_slice(self.get(b[2])),
                    cast_slice_mut(&mut y),
                    &mut sat,
                    &mut nsat,
                    &mut out,
                    th,
                );
                self.bufs[b[3].0] = y;
                self.bufs[b[4].0] = sat;
                self.bufs[b[5].0] = nsat;
            }
            Stage::Bound => {
                let mut y = std::mem::take(&mut self.bufs[b[6].0]);
                let f = if fast { fast::bound::bound } else { bound::bound };
                f(
                    p,
                    cast_slice(self.get(b[0])),
                    cast_slice(self.get(b[1])),
                    cast_slice(self.get(b[2])),
                    cast_slice(self.get(b[3])),
                    self.get(b[4]),
                    self.get(b[5]),
                    cast_slice_mut(&mut y),
                    &mut out,
                    th,
                );
                self.bufs[b[6].0] = y;
            }
            Stage::Combine => {
                let f = if fast { fast::combine::combine } else { combine::combine };
                f(
                    p,
                    cast_slice(self.get(b[0])),
                    cast_slice(self.get(b[1])),
                    cast_slice(self.get(b[2])),
                    cast_slice(self.get(b[3])),
                    cast_slice(self.get(b[4])),
                    cast_slice(self.get(b[5])),
                    cast_slice_mut(&mut out),
                    th,
                )
            }
            Stage::Accuracy => accuracy::accuracy(p, cast_slice(self.get(b[0])), self.get(b[1]), &mut out),
            Stage::RowCorrect => row_correct::row_correct(p, cast_slice(self.get(b[0])), self.get(b[1]), &mut out),
            Stage::WeightError => weight_error::weight_error(
                p,
                groups,
                cast_slice(self.get(b[0])),
                cast_slice(self.get(b[1])),
                cast_slice(self.get(b[2])),
                cast_slice(self.get(b[3])),
                cast_slice_mut(&mut out),
            ),
            Stage::PeakPhilox => peak_philox::peak_philox(p, &mut out, th),
            Stage::PeakFma => peak_fma::peak_fma(p, cast_slice_mut(&mut out), th),
            Stage::PeakExp => peak_exp::peak_exp(p, cast_slice_mut(&mut out), th),
            Stage::Rng => {
                let mut words = std::mem::take(&mut self.bufs[b[0].0]);
                rng::rng(p, &mut words, cast_slice_mut(&mut out));
                self.bufs[b[0].0] = words;
            }
            Stage::FeatureMap => (if fast { fast::linear_attention::feature_map } else { feature_map::feature_map })(
                p,
                cast_slice(self.get(b[0])),
                cast_slice(self.get(b[1])),
                cast_slice_mut(&mut out),
                th,
            ),
            Stage::KernelError => {
                let f = if fast { fast::kernel_error::kernel_error } else { kernel_error::kernel_error };
                f(p, cast_slice(self.get(b[0])), cast_slice(self.get(b[1])), cast_slice_mut(&mut out), th)
            }
            Stage::AttentionKv => {
                let f = if fast { fast::attention::attention_kv } else { attention_kv::attention_kv };
                f(p, cast_slice(self.get(b[0])), cast_slice(self.get(b[1])), cast_slice_mut(&mut out), th)
            }
            Stage::AttentionOut => (if fast { fast::attention::attention_out } else { attention_out::attention_out })(
                p,
                cast_slice(self.get(b[0])),
                cast_slice(self.get(b[1])),
                cast_slice(self.get(b[2])),
                cast_slice(self.get(b[3])),
                cast_slice_mut(&mut out),
                th,
            ),
            Stage::Im2col => (if fast { fast::im2col::im2col } else { im2col::im2col })(p, cast_slice(self.get(b[0])), cast_slice_mut(&mut out), th),
            Stage::Pool => (if fast { fast::pool::pool } else { pool::pool })(p, cast_slice(self.get(b[0])), cast_slice_mut(&mut out), th),
            Stage::Embed => embed::embed(p, self.get(b[0]), cast_slice(self.get(b[1])), cast_slice(self.get(b[2])), cast_slice_mut(&mut out), th),
            Stage::Layernorm => layernorm::layernorm(p, cast_slice(self.get(b[0])), cast_slice(self.get(b[1])), cast_slice_mut(&mut out), th),
            Stage::Residual => residual::residual(p, cast_slice(self.get(b[0])), cast_slice_mut(&mut out)),
            Stage::AttentionSoftmax => (if fast { fast::attention_softmax::attention_softmax } else { attention_softmax::attention_softmax })(
                p,
                cast_slice(self.get(b[0])),
                cast_slice(self.get(b[1])),
                cast_slice(self.get(b[2])),
                self.get(b[3]),
                cast_slice_mut(&mut out),
                th,
            ),
            Stage::RowNorms => row_norms::row_norms(p, cast_slice(self.get(b[0])), cast_slice_mut(&mut out), th),
            Stage::LinearKv => (if fast { fast::linear_attention::linear_kv } else { linear_kv::linear_kv })(
                p,
                cast_slice(self.get(b[0])),
                cast_slice(self.get(b[1])),
                self.get(b[2]),
                cast_slice_mut(&mut out),
                th,
            ),
            Stage::LinearOut => (if fast { fast::linear_attention::linear_out } else { linear_out::linear_out })(
                p,
                cast_slice(self.get(b[0])),
                cast_slice(self.get(b[1])),
                cast_slice(self.get(b[2])),
                cast_slice(self.get(b[3])),
                self.get(b[4]),
                cast_slice_mut(&mut out),
                th,
            ),
            Stage::MoeGate => moe_gate::moe_gate(p, cast_slice(self.get(b[0])), cast_slice_mut(&mut out), th),
            Stage::MoeCombine => moe_combine::moe_combine(p, cast_slice(self.get(b[0])), cast_slice(self.get(b[1])), cast_slice_mut(&mut out)),
            Stage::TokenNll => {
                let mut nll = std::mem::take(&mut self.bufs[b[3].0]);
                token_nll::token_nll(p, cast_slice(self.get(b[0])), self.get(b[1]), self.get(b[2]), cast_slice_mut(&mut nll), &mut out, th);
                self.bufs[b[3].0] = nll;
            }
            Stage::AnswerSpan => {
                let mut spans = std::mem::take(&mut self.bufs[b[4].0]);
                answer_span::answer_span(p, cast_slice(self.get(b[0])), self.get(b[1]), self.get(b[2]), self.get(b[3]), &mut spans, &mut out, th);
                self.bufs[b[4].0] = spans;
            }
            Stage::HeadOut => head_out::head_out(p, cast_slice(self.get(b[0])), cast_slice_mut(&mut out)),
            Stage::SeqPool => seq_pool::seq_pool(p, cast_slice(self.get(b[0])), self.get(b[1]), cast_slice_mut(&mut out), th),
            Stage::ProgramMvm => {
                program_mvm::program_mvm(p, cast_slice(self.get(b[0])), cast_slice(self.get(b[1])), cast_slice(self.get(b[2])), cast_slice_mut(&mut out), th)
            }
        }
        self.bufs[b[b.len() - 1].0] = out;
        if let (Some(start), Some(prof)) = (start, &mut self.profile) {
            let bytes = b.iter().map(|x| 4 * self.bufs[x.0].len() as u64).sum();
            prof.add(super::profile::row_label(stage, p), start.elapsed().as_secs_f64(), bytes);
        }
    }

    fn finish(&mut self) -> Result<(), super::EngineError> {
        Ok(())
    }

    fn max_binding_bytes(&self) -> u64 {
        if self.fast {
            // Chunks of a few tens of trials: enough work per dispatch for every thread, while
            // the chunk's buffers (a few times this) stay in the hundreds of MB at most.
            FAST_BINDING_BYTES
        } else {
            // Keep chunks of the same size as a typical GPU so both backends run the same plan.
            1 << 30
        }
    }

    fn binding_ceiling(&self) -> u64 {
        // Host memory: 2^30 words, the most a 32-bit word index reaches (the shaders' and the
        // twins' index arithmetic is 32-bit).
        if self.fast {
            1 << 32
        } else {
            self.max_binding_bytes()
        }
    }

    fn wg(&self) -> u32 {
        self.wg
    }

    fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| Profile::new("wall clock"));
    }

    fn take_profile(&mut self) -> Result<Option<Profile>, super::EngineError> {
        Ok(self.profile.as_mut().map(|p| std::mem::replace(p, Profile::new("wall clock"))))
    }

    fn add_host(&mut self, activity: &str, seconds: f64) {
        if let Some(p) = &mut self.profile {
            p.add_host(activity, seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_buffers_come_back_zeroed_and_the_pool_stays_bounded() {
        let mut be = CpuBackend::fast(1);
        let a = be.create("a", 1000);
        be.upload(a, &[7; 1000]);
        be.free(a);
        // The same size, a smaller one within 2x, and a larger one grown from the pool: all zero.
        for words in [1000, 600, 1500] {
            let b = be.create("b", words);
            assert_eq!(be.download(b).unwrap(), vec![0; words], "{words} words");
            be.upload(b, &vec![9; words]);
            be.free(b);
        }
        assert_eq!(be.pool.len(), 1, "each create took the freed buffer back");
        // Freed buffers beyond the pool's bytes are dropped, the oldest first.
        be.pool_bytes = 4 * 10_000;
        let bufs: Vec<Buf> = [4000, 4001, 4002].into_iter().map(|w| be.create("big", w)).collect();
        for b in bufs {
            be.free(b);
        }
        let kept: Vec<usize> = be.pool.iter().map(|v| v.capacity()).collect();
        assert_eq!(kept, [4001, 4002], "the two most recently freed");
    }
}
