//! Compiled pipelines of every kernel, and the small helpers that make their buffers and
//! bind groups. Bindings are numbered in the order the WGSL declares them.
//!
//! The mat-vec kernels come in one variant per weight type and one for any type, each
//! compiled when first asked for: when every matrix a dispatch reads has the same type, its
//! `switch` over types is decided at compile time, so the driver compiles only that type's
//! code (on lavapipe the any-type modules are large enough to push other kernels out of its
//! compiled-shader cache, recompiling them on every switch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt as _;

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::layout::WeightType;
use crate::shaders::{MATVEC_SLOTS, Shader};

/// Threads per workgroup of the element-parallel kernels (`embed`'s `@workgroup_size(64)`).
pub const WORKGROUP: u32 = 64;

/// Sentinel for "no bias" in the kernels' parameters.
pub const NO_BIAS: u32 = u32::MAX;

/// One compiled kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    name: &'static str,
}

impl Kernel {
    fn compile(ctx: &GpuContext, shader: Shader, ty: Option<WeightType>) -> Result<Self> {
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name()),
                source: wgpu::ShaderSource::Wgsl(shader.source_for(ty).into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(shader.name()),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
        ctx.check(&format!("compiling the `{}` kernel", shader.name()))?;
        let layout = pipeline.get_bind_group_layout(0);
        Ok(Self {
            pipeline,
            layout,
            name: shader.name(),
        })
    }

    /// A bind group with `buffers` at bindings `0..`.
    #[must_use]
    pub fn bind(&self, ctx: &GpuContext, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .zip(0u32..)
            .map(|(b, i)| wgpu::BindGroupEntry {
                binding: i,
                resource: b.as_entire_binding(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// One dispatch of a recorded sequence.
#[derive(Debug)]
pub struct Step {
    /// Which kernel.
    pub shader: Shader,
    /// Its compiled pipeline (a per-type variant for a mat-vec kernel when there is one).
    pub pipeline: wgpu::ComputePipeline,
    /// Its buffers.
    pub bind: wgpu::BindGroup,
    /// Workgroups along x.
    pub groups: u32,
}

/// A kernel and, for a mat-vec kernel, the one weight type its variant reads.
type Variant = (Shader, Option<WeightType>);

/// Every kernel, compiled once per device: the element-wise and attention kernels when
/// made, each mat-vec kernel's variants (per weight type, or for any type) on first use.
#[derive(Debug)]
pub struct Kernels {
    compiled: Mutex<HashMap<Variant, Arc<Kernel>>>,
}

impl Kernels {
    /// Compiles every kernel that is not a mat-vec kernel (those compile on first use).
    ///
    /// # Errors
    /// [`crate::GpuError::Reported`] when the device rejects a shader (with its message).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let k = Self {
            compiled: Mutex::new(HashMap::new()),
        };
        for shader in Shader::ALL {
            if !shader.is_matvec() {
                k.kernel(ctx, shader, None)?;
            }
        }
        Ok(k)
    }

    /// The kernel for `shader`: for a mat-vec kernel, its variant for weights of type `ty`
    /// (`None`: of any type); compiled on first use.
    ///
    /// # Errors
    /// [`crate::GpuError::Reported`] when the device rejects it.
    pub fn kernel(
        &self,
        ctx: &GpuContext,
        shader: Shader,
        ty: Option<WeightType>,
    ) -> Result<Arc<Kernel>> {
        let key: Variant = (shader, ty.filter(|_| shader.is_matvec()));
        let mut compiled = self.compiled.lock().map_err(|_| GpuError::Reported {
            during: format!("compiling the `{}` kernel", shader.name()),
            message: "the kernel cache was poisoned".to_owned(),
        })?;
        if let Some(k) = compiled.get(&key) {
            return Ok(Arc::clone(k));
        }
        let k = Arc::new(Kernel::compile(ctx, key.0, key.1)?);
        compiled.insert(key, Arc::clone(&k));
        Ok(k)
    }

    /// A step: `shader` over `buffers` in `groups` workgroups (a mat-vec kernel's variant
    /// for any weight type).
    ///
    /// # Errors
    /// [`crate::GpuError::Reported`] when the device rejects the kernel.
    pub fn step(
        &self,
        ctx: &GpuContext,
        shader: Shader,
        buffers: &[&wgpu::Buffer],
        groups: u32,
    ) -> Result<Step> {
        self.step_typed(ctx, shader, &[], buffers, groups)
    }

    /// A step of a kernel whose matrices have `types`: for a mat-vec kernel, the variant
    /// for their type when they all share one, else the variant for any type.
    ///
    /// # Errors
    /// [`crate::GpuError::Reported`] when the device rejects the kernel.
    pub fn step_typed(
        &self,
        ctx: &GpuContext,
        shader: Shader,
        types: &[WeightType],
        buffers: &[&wgpu::Buffer],
        groups: u32,
    ) -> Result<Step> {
        let ty = match types.split_first() {
            Some((&t, rest)) if rest.iter().all(|&u| u == t) => Some(t),
            _ => None,
        };
        let k = self.kernel(ctx, shader, ty)?;
        Ok(Step {
            shader,
            pipeline: k.pipeline.clone(),
            bind: k.bind(ctx, buffers),
            groups,
        })
    }

    /// Records `steps` into one compute pass.
    pub fn record(&self, enc: &mut wgpu::CommandEncoder, steps: &[&Step]) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("forward"),
            timestamp_writes: None,
        });
        for s in steps {
            pass.set_pipeline(&s.pipeline);
            pass.set_bind_group(0, &s.bind, &[]);
            pass.dispatch_workgroups(s.groups, 1, 1);
        }
    }
}

/// Words of one position of one kv head in the KV cache: `head_dim / 2` words of two f16,
/// padded to a multiple of four so that every position starts on a 16-byte boundary.
#[must_use]
pub fn cache_row_words(head_dim: usize) -> usize {
    (head_dim / 2).next_multiple_of(4)
}

/// Workgroups for `n` threads.
#[must_use]
pub fn groups_for(n: usize) -> u32 {
    u32::try_from(n.div_ceil(WORKGROUP as usize)).unwrap_or(u32::MAX)
}

/// Workgroups of a cooperative mat-vec kernel for `n` outputs, `per_slot` of them per slot
/// (four rows for `matvec_add` and `lm_head`, two for `gate_up`, two rotary pairs for `qkv`).
#[must_use]
pub fn matvec_groups(n: usize, per_slot: usize) -> u32 {
    u32::try_from(n.div_ceil(per_slot * MATVEC_SLOTS as usize)).unwrap_or(u32::MAX)
}

/// Workgroups of the `qkv` kernel: slots of two q pairs, then of two k pairs, then of two v
/// pairs (adjacent rows).
#[must_use]
pub fn qkv_groups(q_rows: usize, kv_rows: usize) -> u32 {
    let slots = (q_rows / 2).div_ceil(2) + 2 * (kv_rows / 2).div_ceil(2);
    matvec_groups(slots, 1)
}

/// A uniform buffer of parameter words, padded to 16 bytes.
#[must_use]
pub fn uniform(ctx: &GpuContext, label: &str, words: &[u32]) -> wgpu::Buffer {
    let mut w = words.to_vec();
    while !w.len().is_multiple_of(4) {
        w.push(0);
    }
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: &bytes_u32(&w),
            usage: wgpu::BufferUsages::UNIFORM,
        })
}

/// A storage buffer holding `words` (at least 4 bytes: WebGPU has no empty bindings).
#[must_use]
pub fn storage_u32(ctx: &GpuContext, label: &str, words: &[u32]) -> wgpu::Buffer {
    let data = if words.is_empty() {
        vec![0; 4]
    } else {
        bytes_u32(words)
    };
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: &data,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
        })
}

/// A storage buffer holding `values`.
#[must_use]
pub fn storage_f32(ctx: &GpuContext, label: &str, values: &[f32]) -> wgpu::Buffer {
    let words: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
    storage_u32(ctx, label, &words)
}

/// A zeroed storage buffer of `words` words.
#[must_use]
pub fn scratch(ctx: &GpuContext, label: &str, words: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (words.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// Little-endian bytes of words.
#[must_use]
pub fn bytes_u32(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Words from little-endian bytes.
#[must_use]
pub fn words_of(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// f32 values from little-endian bytes.
#[must_use]
pub fn floats_of(bytes: &[u8]) -> Vec<f32> {
    words_of(bytes).into_iter().map(f32::from_bits).collect()
}
