//! The engine: a backend-neutral sequence of stage dispatches (the plan, in `plan.rs`) executed by
//! either backend: `gpu` (wgpu, WGSL in shaders/) or `cpu` (the twins, same names, same loops;
//! with `CpuBackend::fast`, the `fast` kernels for the hot stages).
//! Buffers are opaque handles holding 32-bit words.

pub mod cpu;
pub mod fast;
pub mod gpu;
pub mod layout;
pub mod plan;
pub mod profile;
pub mod stages;

use crate::engine::layout::StageParams;
use crate::engine::stages::Stage;

/// A buffer handle of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Buf(pub usize);

/// What the plan needs from an executor.
pub trait Backend {
    /// Human-readable adapter name ("NVIDIA H100 ... (Vulkan)", "CPU (2 threads)").
    fn adapter(&self) -> AdapterInfo;
    /// A zeroed buffer of `words` 32-bit words.
    fn create(&mut self, label: &str, words: usize) -> Buf;
    fn upload(&mut self, buf: Buf, data: &[u32]);
    fn clear(&mut self, buf: Buf);
    /// Reads a buffer back (waits for all queued work). A GPU error (out of memory, device lost,
    /// validation) surfaces here as an `EngineError`, never as a panic.
    fn download(&mut self, buf: Buf) -> Result<Vec<u32>, EngineError>;
    fn free(&mut self, buf: Buf);
    /// Queues one dispatch: `bindings` in `@binding(1..)` order (binding 0 is the params).
    fn dispatch(&mut self, stage: Stage, params: &StageParams, bindings: &[Buf], groups: [u32; 3]);
    /// Waits for queued work (a no-op on the CPU).
    fn finish(&mut self) -> Result<(), EngineError>;
    /// Largest buffer binding, bytes: what plans size their trial chunks and sample batches by.
    fn max_binding_bytes(&self) -> u64;
    /// The largest binding the backend can hold at all, bytes. A GPU's is its binding limit; the
    /// CPU backend's chunk size ([`Self::max_binding_bytes`]) is a preference for memory, not a
    /// limit, so one trial's device state or one sequence's activations beyond it still run (one
    /// trial or one sequence at a time) up to this ceiling.
    fn binding_ceiling(&self) -> u64 {
        self.max_binding_bytes()
    }
    /// 1-D workgroup size used for the stages with the `WG` override.
    fn wg(&self) -> u32;
    /// Starts recording per-stage times (see [`profile`]); off by default, since the GPU's
    /// timing readbacks and per-dispatch waits cost time of their own.
    fn set_profiling(&mut self, on: bool);
    /// What was recorded since profiling was switched on or last taken (waits for queued work);
    /// `None` when profiling is off.
    fn take_profile(&mut self) -> Result<Option<profile::Profile>, EngineError>;
    /// Adds host wall time spent outside the backend (the run's statistics, its checkpoint
    /// journal) to the profile under `activity`; ignored when profiling is off.
    fn add_host(&mut self, _activity: &str, _seconds: f64) {}
}

/// Trims a pool of freed buffers (the most recently freed last) to at most `cap` bytes, keeping
/// the most recent; returns the dropped ones (the GPU destroys them). Both backends' pools.
pub(crate) fn trim_pool<T>(pool: &mut Vec<T>, cap: u64, bytes: impl Fn(&T) -> u64) -> std::vec::Drain<'_, T> {
    let mut total = 0u64;
    let keep = pool.iter().rev().take_while(|b| {
        total += bytes(b);
        total <= cap
    });
    let n = keep.count();
    pool.drain(..pool.len() - n)
}

/// The adapter that ran a job, recorded in every result.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub driver: String,
    pub device_type: String,
}

/// Which executor to use (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// A hardware GPU if there is one, else the CPU backend.
    Auto,
    /// Any wgpu adapter, software Vulkan (lavapipe) included; an error if there is none.
    Gpu,
    /// The CPU: the fast kernels for the hot stages, the twins for the rest.
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    /// "auto", "gpu" or "cpu" (the Python package's `backend=`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(format!("backend = {other:?}: use \"auto\", \"gpu\" or \"cpu\"")),
        }
    }
}

/// Opens the backend chosen by `choice`.
pub fn open(choice: BackendChoice) -> Result<Box<dyn Backend>, EngineError> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(cpu::CpuBackend::fast(cpu::default_threads()))),
        BackendChoice::Gpu => Ok(Box::new(gpu::GpuBackend::new(gpu::AdapterPick::Any, 256)?)),
        BackendChoice::Auto => match gpu::GpuBackend::new(gpu::AdapterPick::Hardware, 256) {
            Ok(g) => Ok(Box::new(g)),
            Err(e) => {
                // No hardware GPU is the normal case on a laptop or CI; a GPU that fails to open
                // is worth a line, since the run will be much slower on the CPU.
                if matches!(e, EngineError::Device { .. }) {
                    eprintln!("note: {e}; using the CPU backend");
                }
                Ok(Box::new(cpu::CpuBackend::fast(cpu::default_threads())))
            }
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no GPU adapter found{0}; install a Vulkan driver (on Debian: apt-get install -y mesa-vulkan-drivers libvulkan1 for software Vulkan) or use --backend cpu")]
    NoAdapter(String),
    #[error("could not open the GPU device {name}: {reason}; try --backend cpu")]
    Device { name: String, reason: String },
    #[error("{what} needs {need} bytes in one buffer binding but the adapter allows {limit}; reduce {fix}")]
    TooLarge { what: String, need: u64, limit: u64, fix: String },
    #[error("{0}")]
    Invalid(String),
}
