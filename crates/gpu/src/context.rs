//! Adapter, device and queue: which GPU runs the kernels, why it was chosen, what it offers.

use std::sync::{Arc, Mutex};

use crate::error::{GpuError, Result};

/// What the chosen adapter is, for messages and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, BrowserWebGpu).
    pub backend: String,
    /// Kind of device (DiscreteGpu, IntegratedGpu, Cpu, …).
    pub device_type: String,
    /// Driver name and version, when the adapter reports them.
    pub driver: String,
    /// A software rasteriser on the CPU (lavapipe, SwiftShader, WARP).
    pub software: bool,
    /// Whether the adapter offers `shader-f16` (detected, not used: the plain path is the
    /// tested one).
    pub shader_f16: bool,
    /// Whether the adapter offers subgroup operations (detected, not used).
    pub subgroups: bool,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.device_type, self.backend)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// An open device with WebGPU's default limits on the best adapter found.
#[derive(Clone)]
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    summary: AdapterSummary,
    reason: String,
    errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Preference among device kinds: real GPUs first, software adapters last.
#[cfg(not(target_arch = "wasm32"))]
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn summarise(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let features = adapter.features();
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    AdapterSummary {
        name: if info.name.is_empty() {
            "unnamed adapter".to_owned()
        } else {
            info.name.clone()
        },
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver,
        software: info.device_type == wgpu::DeviceType::Cpu,
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
    }
}

impl GpuContext {
    /// Finds the best adapter (natively: any Vulkan/Metal/DX12 adapter, a real GPU before a
    /// software one; in a browser: WebGPU's high-performance adapter) and opens a device with
    /// WebGPU's default limits and no optional features.
    ///
    /// Natively, adapters whose driver reports no Vulkan conformance (lavapipe in Debian 12)
    /// are allowed: they are the CPU adapter CI runs on.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] naming what was looked for, [`GpuError::Device`].
    pub async fn new_async() -> Result<Self> {
        let (adapter, reason) = Self::pick_adapter().await?;
        let summary = summarise(&adapter);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("edgewise-gpu"),
                required_limits: wgpu::Limits::default(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device {
                adapter: summary.to_string(),
                reason: e.to_string(),
            })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Self {
            device,
            queue,
            summary,
            reason,
            errors,
        })
    }

    /// [`GpuContext::new_async`], blocking.
    ///
    /// # Errors
    /// As [`GpuContext::new_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        crate::block::block_on(Self::new_async())
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn pick_adapter() -> Result<(wgpu::Adapter, String)> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        desc.flags |= wgpu::InstanceFlags::ALLOW_UNDERLYING_NONCOMPLIANT_ADAPTER;
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let instance = wgpu::Instance::new(desc);
        let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter(
                "wgpu enumerated no Vulkan, Metal or DX12 adapter".to_owned(),
            ));
        }
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let names: Vec<String> = adapters.iter().map(|a| summarise(a).to_string()).collect();
        let chosen = adapters.swap_remove(0);
        let s = summarise(&chosen);
        let reason = if names.len() == 1 {
            format!("{s} is the only adapter")
        } else {
            format!(
                "{s} ranks first of {} adapters (discrete, integrated, virtual, other, \
                 software): {}",
                names.len(),
                names.join("; ")
            )
        };
        Ok((chosen, reason))
    }

    #[cfg(target_arch = "wasm32")]
    async fn pick_adapter() -> Result<(wgpu::Adapter, String)> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        // In a dedicated worker the first request sometimes answers null: ask twice.
        let adapter = match instance.request_adapter(&options).await {
            Ok(a) => a,
            Err(_) => instance.request_adapter(&options).await.map_err(|e| {
                GpuError::NoAdapter(format!("WebGPU offered no adapter, asked twice: {e}"))
            })?,
        };
        let reason = format!(
            "{} is this browser's high-performance WebGPU adapter",
            summarise(&adapter)
        );
        Ok((adapter, reason))
    }

    /// The chosen adapter.
    #[must_use]
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Why this adapter was chosen, as a sentence.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The device's limits (WebGPU's defaults).
    #[must_use]
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Fails with the first error the device reported since the last check.
    pub(crate) fn check(&self, during: &str) -> Result<()> {
        let mut v = self.errors.lock().map_err(|_| GpuError::Reported {
            during: during.to_owned(),
            message: "the error sink was poisoned".to_owned(),
        })?;
        if v.is_empty() {
            Ok(())
        } else {
            let message = v.join("; ");
            v.clear();
            Err(GpuError::Reported {
                during: during.to_owned(),
                message,
            })
        }
    }

    /// Waits for submitted work natively; the browser needs no help.
    pub(crate) fn wait(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        Ok(())
    }

    /// Copies `size` bytes at `offset` of `src` (which needs `COPY_SRC`) back to the host.
    pub(crate) async fn read(&self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        self.map(&staging, size).await
    }

    /// Maps `buf` (a `MAP_READ` buffer the submitted work writes) and copies it out.
    pub(crate) async fn map(&self, buf: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = buf.slice(..size);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.await
            .map_err(|_| GpuError::Readback("the map request was dropped".to_owned()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let out = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .to_vec();
        buf.unmap();
        self.check("a read-back")?;
        Ok(out)
    }
}
