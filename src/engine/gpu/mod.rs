//! The GPU backend: headless wgpu (Vulkan, Metal, DX12 or GL), one compute pipeline per stage,
//! built lazily from shaders/common/*.wgsl + shaders/NAME.wgsl. Dispatches are recorded into one
//! command encoder and submitted when results are read back. The device is opened with the
//! adapter's real limits, so the plan can size trial chunks to the largest binding it allows.

use super::layout::StageParams;
use super::stages::Stage;
use super::{AdapterInfo, Backend, Buf, EngineError};
use std::collections::HashMap;
use wgpu::util::DeviceExt;

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
    list.iter()
        .enumerate()
        .filter(|(_, a)| pick == AdapterPick::Any || is_hardware(a.device_type))
        .min_by_key(|(_, a)| rank(a))
        .map(|(i, _)| i)
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
    pipelines: HashMap<Stage, wgpu::ComputePipeline>,
    bufs: Vec<Option<wgpu::Buffer>>,
    encoder: Option<wgpu::CommandEncoder>,
    recorded: u32,
    wg: u32,
    /// The first error wgpu reported outside an error scope (reported at the next readback).
    error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// Submit after this many recorded dispatches, so the encoder and its uniform buffers stay small.
const SUBMIT_EVERY: u32 = 256;

impl GpuBackend {
    pub fn new(pick: AdapterPick, wg: u32) -> Result<Self, EngineError> {
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
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("aimc"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| EngineError::Device { name: info.name.clone(), reason: e.to_string() })?;
        for (what, have, need) in [
            ("storage buffers per stage", limits.max_storage_buffers_per_shader_stage, 7),
            ("invocations per workgroup", limits.max_compute_invocations_per_workgroup, 256),
            ("workgroup storage bytes", limits.max_compute_workgroup_storage_size, 8196),
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
        Ok(GpuBackend { device, queue, info, limits, pipelines: HashMap::new(), bufs: Vec::new(), encoder: None, recorded: 0, wg, error })
    }

    fn pipeline(&mut self, stage: Stage) -> &wgpu::ComputePipeline {
        let (device, wg) = (&self.device, self.wg);
        self.pipelines.entry(stage).or_insert_with(|| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(stage.name()),
                source: wgpu::ShaderSource::Wgsl(stage.module_source().into()),
            });
            let constants = [("WG", wg as f64)];
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(stage.name()),
                layout: None,
                module: &module,
                entry_point: Some(stage.name()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: if stage.has_wg_override() { &constants } else { &[] },
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let device = &self.device;
        self.encoder.get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("aimc") }))
    }

    fn submit(&mut self) {
        if let Some(enc) = self.encoder.take() {
            self.queue.submit([enc.finish()]);
        }
        self.recorded = 0;
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
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.bufs.push(Some(b));
        Buf(self.bufs.len() - 1)
    }

    fn upload(&mut self, buf: Buf, data: &[u32]) {
        // Queue writes land before any later submission, so ordering with dispatches holds
        // once pending work is submitted first.
        self.submit();
        self.queue.write_buffer(self.buf(buf), 0, bytemuck::cast_slice(data));
    }

    fn clear(&mut self, buf: Buf) {
        let b = self.buf(buf).clone();
        self.encoder().clear_buffer(&b, 0, None);
    }

    fn download(&mut self, buf: Buf) -> Result<Vec<u32>, EngineError> {
        let src = self.buf(buf).clone();
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
        self.wait()?;
        let status = mapped.lock().unwrap_or_else(|p| p.into_inner()).take();
        let fail = |reason: String| EngineError::Device { name: self.info.name.clone(), reason };
        match status {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(fail(format!("reading results back: {e}"))),
            None => return Err(fail("reading results back: the map never completed".into())),
        }
        let out = bytemuck::cast_slice(&slice.get_mapped_range().map_err(|e| fail(format!("reading results back: {e}")))?).to_vec();
        staging.unmap();
        Ok(out)
    }

    fn free(&mut self, buf: Buf) {
        if let Some(b) = self.bufs[buf.0].take() {
            b.destroy();
        }
    }

    fn dispatch(&mut self, stage: Stage, params: &StageParams, bindings: &[Buf], groups: [u32; 3]) {
        if groups.contains(&0) {
            return;
        }
        let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let pipeline = self.pipeline(stage).clone();
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: self.buf(*b).as_entire_binding() });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(stage.name()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        {
            let mut pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(stage.name()), timestamp_writes: None });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.recorded += 1;
        if self.recorded >= SUBMIT_EVERY {
            self.submit();
        }
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        self.submit();
        self.wait()
    }

    fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    fn wg(&self) -> u32 {
        self.wg
    }
}
