//! The GPU backend: headless wgpu (Vulkan, Metal, DX12 or GL), one compute pipeline per stage,
//! built lazily from shaders/common/*.wgsl + shaders/NAME.wgsl. Dispatches are recorded into one
//! command encoder and submitted when results are read back. The device is opened with the
//! adapter's real limits, so the plan can size trial chunks to the largest binding it allows.

use super::layout::StageParams;
use super::profile::Profile;
use super::stages::{Mulhi, Stage};
use super::{AdapterInfo, Backend, Buf, EngineError};
use std::collections::HashMap;

/// Which adapters `GpuBackend::new` may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPick {
    /// Discrete, integrated or virtual GPUs only (what `--backend auto` wants).
    Hardware,
    /// Anything, software Vulkan (lavapipe) included; hardware first, Vulkan before GL.
    Any,
}

/// Lists every adapter wgpu can see, with the one each pick would choose.
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    enumerate().1.into_iter().map(|a| a.get_info()).collect()
}

/// Vulkan, Metal and DX12 adapters; GL only when none of those exists (probing GL/EGL on a
/// headless machine is slow and noisy, and GL is the least capable compute path).
fn enumerate() -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    quiet_loader();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let user_chose = std::env::var_os("WGPU_BACKEND").is_some();
    if !user_chose {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if !adapters.is_empty() || user_chose {
        return (instance, adapters);
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::GL;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::GL));
    (instance, adapters)
}

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" on every instance when
/// the variable is missing (a headless machine, CI): aimc needs no display, so without one it
/// points the variable at a private directory of its own before the loader starts.
fn quiet_loader() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
            return;
        }
        // One directory per user (not per process), so repeated runs leave no trail: the user
        // name, else (containers often set none) the uid that owns this process.
        let who = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| owner_id());
        let dir = std::env::temp_dir().join(format!("aimc-runtime-{who}"));
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    });
}

/// The uid owning this process (unix), else a fixed name: a stable name per user either way.
fn owner_id() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata("/proc/self") {
            return format!("uid{}", m.uid());
        }
    }
    "user".to_string()
}

fn is_hardware(t: wgpu::DeviceType) -> bool {
    matches!(t, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu)
}

/// Preference order: hardware before software, Vulkan/Metal/DX12 before GL, discrete first.
pub fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let be = if info.backend == wgpu::Backend::Gl { 1 } else { 0 };
    ty * 2 + be
}

/// Index into `list` of the adapter `pick` would use.
pub fn choose(list: &[wgpu::AdapterInfo], pick: AdapterPick) -> Option<usize> {
    list.iter().enumerate().filter(|(_, a)| pick == AdapterPick::Any || is_hardware(a.device_type)).min_by_key(|(_, a)| rank(a)).map(|(i, _)| i)
}

pub fn info_of(a: &wgpu::AdapterInfo) -> AdapterInfo {
    AdapterInfo {
        name: a.name.clone(),
        backend: format!("{:?}", a.backend),
        driver: format!("{} {}", a.driver, a.driver_info).trim().to_string(),
        device_type: format!("{:?}", a.device_type),
    }
}

pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: AdapterInfo,
    limits: wgpu::Limits,
    /// Per stage: its pipeline and bind group layout (binding 0, the params, at a dynamic offset).
    pipelines: HashMap<Stage, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
    /// The params of the dispatches recorded since the last submission, one aligned slot each
    /// (written with the queue, so a slot is rewritten only after the GPU read it).
    params: wgpu::Buffer,
    params_slot: u64,
    /// Bind groups by stage and buffers: a plan binds the same buffers at every time point and
    /// chunk, so after the first pass a dispatch creates no GPU object.
    bind_groups: HashMap<(Stage, Vec<usize>), wgpu::BindGroup>,
    bufs: Vec<Option<wgpu::Buffer>>,
    /// Freed buffers kept for reuse by size: allocating and destroying the large per-chunk
    /// buffers of every run cost more host time than a small model's GPU work (measured on an
    /// H200: 88 ms against 36 ms of stages). A reused buffer is cleared before it is handed out,
    /// exactly like a new one.
    pool: Vec<wgpu::Buffer>,
    /// The driver's compiled pipelines, kept on disk between runs (Vulkan, `PIPELINE_CACHE`):
    /// building the stages' pipelines costs hundreds of ms per process on an NVIDIA driver.
    cache: Option<(wgpu::PipelineCache, std::path::PathBuf)>,
    encoder: Option<wgpu::CommandEncoder>,
    recorded: u32,
    wg: u32,
    /// The first error wgpu reported outside an error scope (reported at the next readback).
    error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// Whether the device was opened with `TIMESTAMP_QUERY`.
    timestamps: bool,
    /// Whether the device was opened with `SHADER_INT64`.
    int64: bool,
    /// The `mulhi32` variant the pipelines are built with.
    mulhi: Mulhi,
    /// Which of naga's runtime checks the modules keep (`AIMC_SHADER_CHECKS`).
    checks: ShaderChecks,
    profiler: Option<Profiler>,
}

/// Which of naga's runtime checks the shader modules are built with (`AIMC_SHADER_CHECKS`).
///
/// naga guards three things. Bounds: every buffer and array index is clamped (on Vulkan with
/// `robustBufferAccess2` the driver does it for buffers). Integer division: a zero divisor gives
/// the dividend, as WGSL defines, instead of SPIR-V's undefined result. Loops: each loop carries a
/// 64-bit counter that breaks it after 2^64 iterations, so a non-terminating loop cannot hang the
/// device or be assumed unreachable by the driver's compiler. The counter also keeps drivers from
/// unrolling constant-count loops such as Philox's ten rounds. `tests/suite/shader_proofs.rs` proves
/// that every loop of every stage terminates, so the default drops only the loop guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShaderChecks {
    /// `on`, the default: bounds and division checks; no loop guards (every loop is proven finite).
    On,
    /// `full`: naga's complete set, loop guards included.
    Full,
    /// `off`: none; an out-of-range index or a zero divisor is then undefined behaviour.
    Off,
}

impl ShaderChecks {
    /// The value of `AIMC_SHADER_CHECKS` that selects this set.
    pub fn name(self) -> &'static str {
        match self {
            ShaderChecks::On => "on",
            ShaderChecks::Full => "full",
            ShaderChecks::Off => "off",
        }
    }

    /// What the set keeps, for the bench's header.
    pub fn describe(self) -> &'static str {
        match self {
            ShaderChecks::On => "bounds and division checks; no loop guards, every loop proven finite",
            ShaderChecks::Full => "bounds and division checks and loop guards",
            ShaderChecks::Off => "none",
        }
    }

    fn runtime_checks(self) -> wgpu::ShaderRuntimeChecks {
        match self {
            ShaderChecks::Full => wgpu::ShaderRuntimeChecks::checked(),
            ShaderChecks::On => wgpu::ShaderRuntimeChecks { force_loop_bounding: false, ..wgpu::ShaderRuntimeChecks::checked() },
            ShaderChecks::Off => wgpu::ShaderRuntimeChecks::unchecked(),
        }
    }
}

/// Reads `AIMC_SHADER_CHECKS`: `on` (the default) keeps naga's bounds and integer-division checks
/// and drops its loop guards (every loop is proven finite by `tests/suite/shader_proofs.rs`); `full`
/// keeps the loop guards too; `off` builds the modules without any check, which runs Philox about
/// 2.4x and the SGEMM about 1.2x faster than `full` on an H100 (gpu-practice.md) but makes an
/// out-of-bounds index undefined behaviour instead of a clamped read.
pub fn shader_checks_from_env() -> Result<ShaderChecks, EngineError> {
    match std::env::var("AIMC_SHADER_CHECKS") {
        Err(_) => Ok(ShaderChecks::On),
        Ok(v) if v == "on" || v.is_empty() => Ok(ShaderChecks::On),
        Ok(v) if v == "full" => Ok(ShaderChecks::Full),
        Ok(v) if v == "off" => Ok(ShaderChecks::Off),
        Ok(v) => Err(EngineError::Invalid(format!("AIMC_SHADER_CHECKS = {v:?}: use `on` (the default), `full` or `off`"))),
    }
}

/// Per-dispatch timing while profiling: with timestamp queries, a begin/end pair per compute pass
/// in a query set resolved at every submit; without them, each dispatch submitted and waited for
/// alone under the wall clock.
struct Profiler {
    profile: Profile,
    /// (query set, resolve buffer) when the adapter has timestamp queries.
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    /// Stage name and bound bytes of each pass recorded since the last resolve.
    pending: Vec<(&'static str, u64)>,
}

/// Where the pipeline cache of this adapter lives: `$XDG_CACHE_HOME/aimc` or `~/.cache/aimc`,
/// named by wgpu's cache key (vendor, device, driver); None without a key (non-Vulkan) or with
/// `AIMC_PIPELINE_CACHE=off`.
fn pipeline_cache_file(info: &wgpu::AdapterInfo) -> Option<std::path::PathBuf> {
    if std::env::var("AIMC_PIPELINE_CACHE").is_ok_and(|v| v == "off") {
        return None;
    }
    let key = wgpu::util::pipeline_cache_key(info)?;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("aimc").join(key))
}

impl Drop for GpuBackend {
    /// Saves the pipeline cache (written to a temporary file and renamed, so a concurrent run
    /// never reads half a file); a failure only costs the next run its compile time.
    fn drop(&mut self) {
        if let Some((cache, path)) = &self.cache {
            if let (Some(data), Some(dir)) = (cache.get_data(), path.parent()) {
                let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, path).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
    }
}

/// Freed buffers kept for reuse, at most this many bytes.
const POOL_BYTES: u64 = 4 << 30;

/// Submit after this many recorded dispatches, so the encoder and its uniform buffers stay small.
const SUBMIT_EVERY: u32 = 256;

impl GpuBackend {
    pub fn new(pick: AdapterPick, wg: u32) -> Result<Self, EngineError> {
        let checks = shader_checks_from_env()?;
        let (_instance, adapters) = enumerate();
        let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
        let idx = choose(&infos, pick).ok_or_else(|| {
            let seen = if infos.is_empty() {
                String::new()
            } else {
                format!(" (only software adapters: {})", infos.iter().map(|i| i.name.clone()).collect::<Vec<_>>().join(", "))
            };
            EngineError::NoAdapter(seen)
        })?;
        let adapter = &adapters[idx];
        let info = info_of(&infos[idx]);
        let limits = adapter.limits();
        // Timestamp queries only time passes when profiling; asking for them costs nothing else.
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        // 64-bit integers make Philox's mulhi one multiply instead of ~15 instructions.
        let int64 = adapter.features().contains(wgpu::Features::SHADER_INT64);
        let mut required_features = wgpu::Features::empty();
        let cache_file = pipeline_cache_file(&infos[idx]).filter(|_| adapter.features().contains(wgpu::Features::PIPELINE_CACHE));
        if cache_file.is_some() {
            required_features |= wgpu::Features::PIPELINE_CACHE;
        }
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        if int64 {
            required_features |= wgpu::Features::SHADER_INT64;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("aimc"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| EngineError::Device { name: info.name.clone(), reason: e.to_string() })?;
        for (what, have, need) in [
            ("storage buffers per stage", limits.max_storage_buffers_per_shader_stage, 7),
            ("invocations per workgroup", limits.max_compute_invocations_per_workgroup, 256),
            ("workgroup storage bytes", limits.max_compute_workgroup_storage_size, 16384),
        ] {
            if have < need {
                return Err(EngineError::Device { name: info.name, reason: format!("{what}: the adapter allows {have}, aimc needs {need}") });
            }
        }
        // wgpu's default handler panics; keep the first error and report it as an EngineError.
        let error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        // One params slot per dispatch between submissions, at the adapter's uniform offset alignment.
        let align = limits.min_uniform_buffer_offset_alignment.max(1) as u64;
        let params_slot = (std::mem::size_of::<StageParams>() as u64).div_ceil(align) * align;
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: params_slot * SUBMIT_EVERY as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let cache = cache_file.map(|path| {
            let data = std::fs::read(&path).ok();
            // SAFETY: the data is what `get_data` wrote for an adapter with the same cache key
            // (vendor, device, driver; the file is named by it), and with `fallback` a cache the
            // driver rejects is replaced by an empty one.
            let cache = unsafe { device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor { label: Some("aimc"), data: data.as_deref(), fallback: true }) };
            (cache, path)
        });
        Ok(GpuBackend {
            device,
            queue,
            info,
            limits,
            pipelines: HashMap::new(),
            params,
            params_slot,
            bind_groups: HashMap::new(),
            bufs: Vec::new(),
            pool: Vec::new(),
            cache,
            encoder: None,
            recorded: 0,
            wg,
            error,
            timestamps,
            int64,
            mulhi: if int64 { Mulhi::U64 } else { Mulhi::Halves },
            checks,
            profiler: None,
        })
    }

    /// The `mulhi32` variant in use (`U64` wherever the adapter has 64-bit integers).
    pub fn mulhi(&self) -> Mulhi {
        self.mulhi
    }

    /// Builds the pipelines with another `mulhi32` variant (tests run both); `U64` needs the
    /// adapter's `SHADER_INT64`.
    pub fn set_mulhi(&mut self, mulhi: Mulhi) -> Result<(), EngineError> {
        if mulhi == Mulhi::U64 && !self.int64 {
            return Err(EngineError::Device { name: self.info.name.clone(), reason: "the adapter has no 64-bit shader integers (SHADER_INT64)".into() });
        }
        if mulhi != self.mulhi {
            self.submit();
            self.pipelines.clear();
            self.bind_groups.clear();
            self.mulhi = mulhi;
        }
        Ok(())
    }

    fn pipeline(&mut self, stage: Stage) -> &(wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        let (device, wg, mulhi, checks, cache) = (&self.device, self.wg, self.mulhi, self.checks, self.cache.as_ref().map(|c| &c.0));
        self.pipelines.entry(stage).or_insert_with(|| {
            let src = stage.module_source_with(mulhi);
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(stage.name()), entries: &layout_entries(&src) });
            let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(stage.name()),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            let desc = wgpu::ShaderModuleDescriptor { label: Some(stage.name()), source: wgpu::ShaderSource::Wgsl(src.into()) };
            let module = if checks == ShaderChecks::Full {
                device.create_shader_module(desc)
            } else {
                // SAFETY: `on` drops only the loop guards, and tests/suite/shader_proofs.rs proves that
                // every loop of every stage terminates (counted loops with a positive step and an
                // invariant bound, halving loops, one level loop bounded by its level cap). `off`
                // is the user's request (AIMC_SHADER_CHECKS=off); every stage's indexing is
                // exercised against its CPU twin by the tests on ragged shapes.
                unsafe { device.create_shader_module_trusted(desc, checks.runtime_checks()) }
            };
            let constants = [("WG", wg as f64)];
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(stage.name()),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(stage.name()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: if stage.has_wg_override() { &constants } else { &[] },
                    zero_initialize_workgroup_memory: false,
                },
                cache,
            });
            (pipeline, bgl)
        })
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let device = &self.device;
        self.encoder.get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("aimc") }))
    }

    fn submit(&mut self) {
        let resolve = self.profiler.as_ref().is_some_and(|p| p.queries.is_some() && !p.pending.is_empty());
        if resolve {
            // Timed as the profiler's own readback.
            self.submit_untimed();
            return;
        }
        let clock = std::time::Instant::now();
        self.submit_untimed();
        self.host_since("submit command buffers", clock);
    }

    /// Submits the recorded work without adding host time (inside a dispatch timed alone, whose
    /// stage time already holds it).
    fn submit_untimed(&mut self) {
        let resolve = self.profiler.as_ref().is_some_and(|p| p.queries.is_some() && !p.pending.is_empty());
        if resolve {
            self.resolve_timestamps();
        } else if let Some(enc) = self.encoder.take() {
            self.queue.submit([enc.finish()]);
        }
        self.recorded = 0;
    }

    /// Resolves the pending passes' timestamps, waits for them and adds each pass to the profile.
    fn resolve_timestamps(&mut self) {
        let clock = std::time::Instant::now();
        self.resolve_timestamps_inner();
        // Submitting the pending work with its timestamp resolve and waiting for it: the wait is
        // GPU time, the rest is the profiler's own cost.
        self.host_since("submit and wait (timestamp readback)", clock);
    }

    fn resolve_timestamps_inner(&mut self) {
        let Some(prof) = self.profiler.as_mut() else {
            return;
        };
        let Some((qs, resolve)) = &prof.queries else {
            return;
        };
        let n = prof.pending.len() as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps readback"),
            size: n * 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let device = &self.device;
        let mut enc = self.encoder.take().unwrap_or_else(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("aimc") }));
        enc.resolve_query_set(qs, 0..(2 * n) as u32, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, &staging, 0, n * 16);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        if self.device.poll(wgpu::PollType::wait_indefinitely()).is_err() {
            prof.pending.clear();
            return;
        }
        let period = self.queue.get_timestamp_period() as f64 * 1e-9;
        if let Ok(view) = slice.get_mapped_range() {
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            for (i, (stage, bytes)) in prof.pending.iter().enumerate() {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                prof.profile.add(stage, dt, *bytes);
            }
        }
        staging.unmap();
        prof.pending.clear();
    }

    /// Adds the time since `clock` to the host `activity` while profiling.
    fn host_since(&mut self, activity: &str, clock: std::time::Instant) {
        if let Some(p) = &mut self.profiler {
            p.profile.add_host(activity, clock.elapsed().as_secs_f64());
        }
    }

    fn check(&self) -> Result<(), EngineError> {
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            None => Ok(()),
            Some(reason) => Err(EngineError::Device { name: self.info.name.clone(), reason }),
        }
    }

    fn wait(&self) -> Result<(), EngineError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Device { name: self.info.name.clone(), reason: format!("waiting for the GPU: {e}") })?;
        self.check()
    }

    fn buf(&self, b: Buf) -> &wgpu::Buffer {
        self.bufs[b.0].as_ref().expect("buffer used after free")
    }
}

impl Backend for GpuBackend {
    fn adapter(&self) -> AdapterInfo {
        self.info.clone()
    }

    fn create(&mut self, label: &str, words: usize) -> Buf {
        let clock = std::time::Instant::now();
        let size = (words.max(1) * 4) as u64;
        let b = match self.pool.iter().position(|b| b.size() == size) {
            Some(i) => {
                let b = self.pool.swap_remove(i);
                self.encoder().clear_buffer(&b, 0, None);
                b
            }
            None => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        self.bufs.push(Some(b));
        if let Some(p) = &mut self.profiler {
            p.profile.add_host("create buffers", clock.elapsed().as_secs_f64());
        }
        Buf(self.bufs.len() - 1)
    }

    fn upload(&mut self, buf: Buf, data: &[u32]) {
        // Queue writes land before any later submission, so ordering with dispatches holds
        // once pending work is submitted first.
        self.submit();
        if let Some(p) = &mut self.profiler {
            p.profile.uploads += 1;
            p.profile.upload_bytes += 4 * data.len() as u64;
        }
        let clock = std::time::Instant::now();
        self.queue.write_buffer(self.buf(buf), 0, bytemuck::cast_slice(data));
        self.host_since("uploads", clock);
    }

    fn clear(&mut self, buf: Buf) {
        let b = self.buf(buf).clone();
        self.encoder().clear_buffer(&b, 0, None);
    }

    fn download(&mut self, buf: Buf) -> Result<Vec<u32>, EngineError> {
        let src = self.buf(buf).clone();
        if let Some(p) = &mut self.profiler {
            p.profile.readbacks += 1;
            p.profile.readback_bytes += src.size();
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: src.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.encoder().copy_buffer_to_buffer(&src, 0, &staging, 0, src.size());
        self.submit();
        let slice = staging.slice(..);
        let mapped = std::sync::Arc::new(std::sync::Mutex::new(None));
        let m2 = mapped.clone();
        slice.map_async(wgpu::MapMode::Read, move |r| *m2.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.map_err(|e| e.to_string())));
        let clock = std::time::Instant::now();
        self.wait()?;
        self.host_since("wait for readbacks", clock);
        let copy = std::time::Instant::now();
        let status = mapped.lock().unwrap_or_else(|p| p.into_inner()).take();
        let fail = |reason: String| EngineError::Device { name: self.info.name.clone(), reason };
        match status {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(fail(format!("reading results back: {e}"))),
            None => return Err(fail("reading results back: the map never completed".into())),
        }
        let out = bytemuck::cast_slice(&slice.get_mapped_range().map_err(|e| fail(format!("reading results back: {e}")))?).to_vec();
        staging.unmap();
        self.host_since("copy readbacks", copy);
        Ok(out)
    }

    fn free(&mut self, buf: Buf) {
        let clock = std::time::Instant::now();
        self.bind_groups.retain(|(_, bufs), _| !bufs.contains(&buf.0));
        if let Some(b) = self.bufs[buf.0].take() {
            self.pool.push(b);
            // Keep at most POOL_BYTES of freed buffers, the most recent first.
            for old in super::trim_pool(&mut self.pool, POOL_BYTES, |b| b.size()) {
                old.destroy();
            }
        }
        if let Some(p) = &mut self.profiler {
            p.profile.add_host("free buffers", clock.elapsed().as_secs_f64());
        }
    }

    fn dispatch(&mut self, stage: Stage, params: &StageParams, bindings: &[Buf], groups: [u32; 3]) {
        if groups.contains(&0) {
            return;
        }
        let bound_bytes: u64 = bindings.iter().map(|b| self.buf(*b).size()).sum();
        let wall = match &self.profiler {
            Some(p) if p.queries.is_none() => {
                // No timestamp queries: time this dispatch alone.
                self.submit_untimed();
                let _ = self.wait();
                Some(std::time::Instant::now())
            }
            _ => None,
        };
        let record = std::time::Instant::now();
        // This dispatch's params slot (slots restart at every submission).
        let offset = self.recorded as u64 * self.params_slot;
        self.queue.write_buffer(&self.params, offset, bytemuck::bytes_of(params));
        let (pipeline, bgl) = self.pipeline(stage).clone();
        let key = (stage, bindings.iter().map(|b| b.0).collect::<Vec<_>>());
        if !self.bind_groups.contains_key(&key) {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.params,
                    offset: 0,
                    size: std::num::NonZeroU64::new(std::mem::size_of::<StageParams>() as u64),
                }),
            }];
            for (i, b) in bindings.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: self.buf(*b).as_entire_binding() });
            }
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(stage.name()), layout: &bgl, entries: &entries });
            self.bind_groups.insert(key.clone(), bg);
        }
        let bg = self.bind_groups[&key].clone();
        let qs = self.profiler.as_mut().and_then(|p| {
            let (q, _) = p.queries.as_ref()?;
            let i = p.pending.len() as u32;
            p.pending.push((super::profile::row_label(stage, params), bound_bytes));
            Some((q.clone(), i))
        });
        {
            let timestamp_writes = qs.as_ref().map(|(q, i)| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            });
            let mut pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(stage.name()), timestamp_writes });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[offset as u32]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.recorded += 1;
        if let (None, Some(p)) = (wall, &mut self.profiler) {
            // Recording (params, pipeline lookup or build, bind groups): host time per dispatch.
            p.profile.add_host("record dispatches", record.elapsed().as_secs_f64());
        }
        if let Some(start) = wall {
            self.submit_untimed();
            let _ = self.wait();
            let dt = start.elapsed().as_secs_f64();
            if let Some(p) = &mut self.profiler {
                p.profile.add(super::profile::row_label(stage, params), dt, bound_bytes);
            }
        } else if self.recorded >= SUBMIT_EVERY {
            self.submit();
        }
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        self.submit();
        let clock = std::time::Instant::now();
        let r = self.wait();
        self.host_since("wait for the GPU", clock);
        r
    }

    fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    fn wg(&self) -> u32 {
        self.wg
    }

    fn set_profiling(&mut self, on: bool) {
        self.submit();
        if !on {
            self.profiler = None;
            return;
        }
        let queries = self.timestamps.then(|| {
            let n = 2 * SUBMIT_EVERY;
            let qs = self.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("stage timestamps"), ty: wgpu::QueryType::Timestamp, count: n });
            let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: n as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (qs, resolve)
        });
        let timer = if queries.is_some() { "timestamp queries" } else { "wall clock (one dispatch per submit)" };
        self.profiler = Some(Profiler { profile: Profile::new(timer), queries, pending: Vec::new() });
    }

    fn add_host(&mut self, activity: &str, seconds: f64) {
        if let Some(p) = &mut self.profiler {
            p.profile.add_host(activity, seconds);
        }
    }

    fn take_profile(&mut self) -> Result<Option<Profile>, EngineError> {
        self.finish()?;
        Ok(self.profiler.as_mut().map(|p| {
            let timer = p.profile.timer.clone();
            std::mem::replace(&mut p.profile, Profile::new(&timer))
        }))
    }
}

/// The bind group layout of a stage from its WGSL: binding 0 is the params uniform, read at a
/// dynamic offset; the others are storage buffers, read-only unless the shader writes them.
fn layout_entries(src: &str) -> Vec<wgpu::BindGroupLayoutEntry> {
    let module = naga::front::wgsl::parse_str(src).expect("every stage parses (tests/suite/shaders.rs)");
    let mut entries: Vec<_> = module
        .global_variables
        .iter()
        .filter_map(|(_, var)| {
            let rb = var.binding.as_ref().filter(|rb| rb.group == 0)?;
            let ty = match var.space {
                naga::AddressSpace::Uniform => wgpu::BufferBindingType::Uniform,
                naga::AddressSpace::Storage { access } => wgpu::BufferBindingType::Storage { read_only: !access.contains(naga::StorageAccess::STORE) },
                _ => return None,
            };
            let uniform = matches!(ty, wgpu::BufferBindingType::Uniform);
            Some(wgpu::BindGroupLayoutEntry {
                binding: rb.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset: uniform,
                    min_binding_size: if uniform { std::num::NonZeroU64::new(std::mem::size_of::<StageParams>() as u64) } else { None },
                },
                count: None,
            })
        })
        .collect();
    entries.sort_by_key(|e| e.binding);
    entries
}
