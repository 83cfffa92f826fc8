//! Errors of the GPU path.

/// What went wrong on the GPU path, with what was expected.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter (natively: no Vulkan/Metal/DX12 driver; in a browser: no WebGPU).
    #[error(
        "no GPU adapter found ({0}); natively a Vulkan driver is needed (on Debian, \
         `mesa-vulkan-drivers libvulkan1` give the lavapipe CPU adapter)"
    )]
    NoAdapter(String),
    /// The adapter would not open a device with WebGPU's default limits.
    #[error("the adapter {adapter} refused a device with WebGPU's default limits: {reason}")]
    Device {
        /// Adapter description.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
    /// A weight type the kernels do not read.
    #[error("weight `{name}` is {ty}; the GPU kernels read F32, F16, Q4_0, Q4_1 and Q8_0 weights")]
    UnsupportedType {
        /// Tensor name.
        name: String,
        /// Its ggml type.
        ty: String,
    },
    /// Bad tensor data or shape.
    #[error("weight `{name}`: {problem}")]
    BadWeight {
        /// Tensor name.
        name: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// A buffer larger than the device allows.
    #[error("{what} needs {needed} bytes, over this device's {limit_name} of {limit} bytes")]
    OverLimit {
        /// Which buffer.
        what: String,
        /// Its size.
        needed: u64,
        /// The limit.
        limit: u64,
        /// The limit's WebGPU name.
        limit_name: &'static str,
    },
    /// A model feature the GPU forward does not implement.
    #[error("the GPU forward cannot run this model: {0}")]
    UnsupportedModel(String),
    /// A wrong argument from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// More positions than the preallocated KV cache holds.
    #[error("context overflow: {needed} positions needed, the GPU KV cache holds {max}")]
    ContextOverflow {
        /// Positions needed.
        needed: usize,
        /// Cache capacity.
        max: usize,
    },
    /// The device reported an error (shader compilation, validation, device loss).
    #[error("the GPU reported an error during {during}: {message}")]
    Reported {
        /// What was being done.
        during: String,
        /// The device's message.
        message: String,
    },
    /// Mapping a result buffer failed.
    #[error("reading a result back from the GPU failed: {0}")]
    Readback(String),
    /// From the CPU engine (loading weights).
    #[error(transparent)]
    Llm(#[from] edgewise_llm::Error),
    /// From candle (tensor bytes).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`GpuError`].
pub type Result<T> = std::result::Result<T, GpuError>;
