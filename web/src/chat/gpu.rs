//! WebGPU for the LLM worker: adapter detection and the LM-head mat-vec as a WGSL compute
//! kernel over the model's Q8_0 blocks (read straight from the GGUF bytes, re-laid out
//! into 4-byte words by [`Q8Gpu`]; no dequantised copy).
//!
//! `wgpu` 30 on its `webgpu` backend only: no naga or wgpu-core in the wasm (the browser
//! compiles the WGSL), and the same crate burn's GPU backend uses natively.

use std::sync::Arc;

use wasm_bindgen::JsValue;
use wgpu::util::DeviceExt as _;

use super::lm_head::{Q8_0_BLOCK, Q8Gpu};

/// Threads per workgroup; each thread computes one output row.
const WORKGROUP: u32 = 64;
/// WebGPU's guaranteed maximum workgroups per dispatch dimension.
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// `y[row] = Σ_b scale[row, b] · Σ_i q[row, b, i] · x[32 b + i]`, one thread per row.
const Q8_MATVEC_WGSL: &str = r"
struct Params { rows: u32, blocks: u32, row_stride: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> quants: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Byte k of w as a signed integer, as f32.
fn sbyte(w: u32, k: u32) -> f32 {
    return f32(bitcast<i32>(w << (24u - 8u * k)) >> 24u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * p.row_stride;
    if (row >= p.rows) {
        return;
    }
    var acc = 0.0;
    for (var b = 0u; b < p.blocks; b = b + 1u) {
        let blk = row * p.blocks + b;
        let base = b * 32u;
        var s = 0.0;
        for (var w = 0u; w < 8u; w = w + 1u) {
            let q = quants[blk * 8u + w];
            let c = base + w * 4u;
            s = s + sbyte(q, 0u) * x[c] + sbyte(q, 1u) * x[c + 1u]
                  + sbyte(q, 2u) * x[c + 2u] + sbyte(q, 3u) * x[c + 3u];
        }
        acc = acc + scales[blk] * s;
    }
    y[row] = acc;
}
";

/// A WebGPU device of this browser.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Adapter description for the page.
    pub name: String,
}

impl Gpu {
    /// Finds a WebGPU adapter (asking twice: in a dedicated worker the first request
    /// sometimes answers null) and opens a device with the adapter's limits.
    ///
    /// # Errors
    /// Why WebGPU cannot be used, as a sentence.
    pub async fn detect() -> Result<Self, String> {
        let navigator = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
            .map_err(|_| "this worker has no navigator".to_owned())?;
        let gpu = js_sys::Reflect::get(&navigator, &JsValue::from_str("gpu"))
            .unwrap_or(JsValue::UNDEFINED);
        if gpu.is_undefined() || gpu.is_null() {
            return Err("this browser has no WebGPU (navigator.gpu is missing)".to_owned());
        }
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        let adapter = match instance.request_adapter(&options).await {
            Ok(a) => a,
            Err(_) => instance.request_adapter(&options).await.map_err(|e| {
                format!("WebGPU is present but offers no adapter (asked twice): {e}")
            })?,
        };
        let info = adapter.get_info();
        let name = [&info.name, &info.driver, &info.driver_info]
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("edgewise-llm"),
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("the WebGPU adapter refused a device: {e}"))?;
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            gloo::console::error!(format!("WebGPU error: {e}"));
        }));
        Ok(Self {
            device,
            queue,
            name: if name.is_empty() {
                "WebGPU adapter".to_owned()
            } else {
                name
            },
        })
    }
}

/// The LM head resident on the GPU, with its buffers and pipeline.
pub struct LmHead {
    gpu: Gpu,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    readback: wgpu::Buffer,
    rows: u32,
    cols: u32,
    groups: (u32, u32),
}

impl LmHead {
    /// Uploads `weights` and builds the pipeline.
    ///
    /// # Errors
    /// When the matrix exceeds the adapter's storage-binding limit or WebGPU reports a
    /// validation error (the message says which).
    pub async fn new(gpu: Gpu, weights: &Q8Gpu) -> Result<Self, String> {
        let rows = u32::try_from(weights.rows).map_err(|_| "too many rows".to_owned())?;
        let cols = u32::try_from(weights.cols).map_err(|_| "too many columns".to_owned())?;
        let quant_bytes = (weights.quants.len() * 4) as u64;
        let limit = gpu.device.limits().max_storage_buffer_binding_size;
        if quant_bytes > limit {
            return Err(format!(
                "the LM head is {quant_bytes} bytes, over this adapter's storage binding limit \
                 of {limit}"
            ));
        }
        let groups_total = rows.div_ceil(WORKGROUP);
        let gx = groups_total.min(MAX_GROUPS_PER_DIM);
        let gy = groups_total.div_ceil(gx);
        let params = [rows, cols / Q8_0_BLOCK as u32, gx * WORKGROUP, 0];

        let device = &gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let storage = |label: &str, bytes: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let quants = storage("lm-head quants", &le_bytes_u32(&weights.quants));
        let scales = storage("lm-head scales", &le_bytes_f32(&weights.scales));
        let x = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hidden"),
            size: u64::from(cols) * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let y = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("logits"),
            size: u64::from(rows) * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("logits readback"),
            size: u64::from(rows) * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("lm-head params"),
            contents: &le_bytes_u32(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("q8_0 matvec"),
            source: wgpu::ShaderSource::Wgsl(Q8_MATVEC_WGSL.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("q8_0 matvec"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("lm-head"),
            layout: &layout,
            entries: &[
                entry(0, &quants),
                entry(1, &scales),
                entry(2, &x),
                entry(3, &y),
                entry(4, &uniform),
            ],
        });
        if let Some(e) = scope.pop().await {
            return Err(format!("WebGPU rejected the LM-head kernel: {e}"));
        }
        Ok(Self {
            gpu,
            pipeline,
            bind_group,
            x,
            y,
            readback,
            rows,
            cols,
            groups: (gx, gy),
        })
    }

    /// The adapter's description.
    pub fn adapter(&self) -> &str {
        &self.gpu.name
    }

    /// `W x`: logits for the hidden state `x`.
    ///
    /// # Errors
    /// A wrong input length, or a failed read-back.
    pub async fn matvec(&self, x: &[f32]) -> Result<Vec<f32>, String> {
        if x.len() != self.cols as usize {
            return Err(format!(
                "the LM head takes {} inputs, got {}",
                self.cols,
                x.len()
            ));
        }
        let Gpu { device, queue, .. } = &self.gpu;
        queue.write_buffer(&self.x, 0, &le_bytes_f32(x));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("lm-head"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("lm-head"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
        }
        encoder.copy_buffer_to_buffer(&self.y, 0, &self.readback, 0, u64::from(self.rows) * 4);
        queue.submit([encoder.finish()]);

        let slice = self.readback.slice(..);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .map_err(|_| "the GPU read-back was dropped".to_owned())?
            .map_err(|e| format!("the GPU read-back failed: {e}"))?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| format!("the GPU read-back could not be mapped: {e}"))?;
            view.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        self.readback.unmap();
        Ok(out)
    }
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

fn le_bytes_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}
