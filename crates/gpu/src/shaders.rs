//! The WGSL sources: one `.wgsl` file per kernel and per shared piece, composed into one
//! module per kernel by concatenation (WGSL has no includes). The same text runs natively
//! (naga inside wgpu-core) and in the browser (the browser's own compiler).

/// Shared pieces, in the order a kernel's module puts them before its own text.
const STATE: &str = include_str!("wgsl/state.wgsl");
const F16: &str = include_str!("wgsl/f16.wgsl");
const DEQUANT: &str = include_str!("wgsl/dequant.wgsl");
const MATVEC: &str = include_str!("wgsl/matvec.wgsl");

/// Threads per workgroup of the cooperative mat-vec kernels (`qkv`, `gate_up`,
/// `matvec_add`, `lm_head`); `WG` in `matvec.wgsl`.
pub const MATVEC_WG: u32 = 64;
/// Neighbouring threads that share one row's words; `SPLIT` in `matvec.wgsl`. Two: each
/// pair reads 32 contiguous bytes of quants a step (a whole memory sector on a GPU), a
/// 64-thread workgroup covers 128 rows, and on lavapipe it measured fastest (kernel_time,
/// the LM head 21 ms at 2, 34 ms at 4, 35 ms at 8 threads a row).
pub const MATVEC_SPLIT: u32 = 2;
/// Slots (groups of four rows) per workgroup.
pub const MATVEC_SLOTS: u32 = MATVEC_WG / MATVEC_SPLIT;

use crate::layout::WeightType;

/// One compute kernel of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    /// Token embedding (dequantised row of the table).
    Embed,
    /// RMSNorm + Q/K/V mat-vecs + RoPE + KV-cache write.
    Qkv,
    /// Attention over the cache (grouped-query, causal, optional window).
    Attention,
    /// Mat-vec with the residual add folded in (attention output, FFN down).
    MatvecAdd,
    /// RMSNorm + gate and up mat-vecs + SiLU gate.
    GateUp,
    /// Final RMSNorm + LM-head mat-vec.
    LmHead,
    /// Greedy token choice.
    Argmax,
    /// Position increment.
    Advance,
}

impl Shader {
    /// Every kernel.
    pub const ALL: [Self; 8] = [
        Self::Embed,
        Self::Qkv,
        Self::Attention,
        Self::MatvecAdd,
        Self::GateUp,
        Self::LmHead,
        Self::Argmax,
        Self::Advance,
    ];

    /// The kernel's name (its file's stem).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Embed => "embed",
            Self::Qkv => "qkv",
            Self::Attention => "attention",
            Self::MatvecAdd => "matvec_add",
            Self::GateUp => "gate_up",
            Self::LmHead => "lm_head",
            Self::Argmax => "argmax",
            Self::Advance => "advance",
        }
    }

    /// The kernel's own text.
    fn body(self) -> &'static str {
        match self {
            Self::Embed => include_str!("wgsl/embed.wgsl"),
            Self::Qkv => include_str!("wgsl/qkv.wgsl"),
            Self::Attention => include_str!("wgsl/attention.wgsl"),
            Self::MatvecAdd => include_str!("wgsl/matvec_add.wgsl"),
            Self::GateUp => include_str!("wgsl/gate_up.wgsl"),
            Self::LmHead => include_str!("wgsl/lm_head.wgsl"),
            Self::Argmax => include_str!("wgsl/argmax.wgsl"),
            Self::Advance => include_str!("wgsl/advance.wgsl"),
        }
    }

    /// The shared pieces this kernel uses.
    fn pieces(self) -> &'static [&'static str] {
        match self {
            Self::Embed => &[STATE, F16, DEQUANT],
            Self::Qkv | Self::GateUp | Self::LmHead | Self::MatvecAdd => {
                &[STATE, F16, DEQUANT, MATVEC]
            }
            Self::Attention => &[STATE, F16],
            Self::Argmax | Self::Advance => &[STATE],
        }
    }

    /// Whether the kernel multiplies weights through `matvec.wgsl` (and so has a variant
    /// per weight type).
    #[must_use]
    pub fn is_matvec(self) -> bool {
        self.pieces().contains(&MATVEC)
    }

    /// The complete WGSL module, for weights of any type; its entry point is `main`.
    #[must_use]
    pub fn source(self) -> String {
        self.source_for(None)
    }

    /// The complete WGSL module; a mat-vec kernel's for weights of type `ty` only (every
    /// matrix it reads must have that type) or, with `None`, of any type.
    #[must_use]
    pub fn source_for(self, ty: Option<WeightType>) -> String {
        let mut s = String::new();
        if self.is_matvec() {
            let ty = ty.map_or(u32::MAX, WeightType::id);
            s.push_str(&format!(
                "const WG: u32 = {MATVEC_WG}u;\nconst SPLIT: u32 = {MATVEC_SPLIT}u;\n\
                 const TY: u32 = {ty}u;\n"
            ));
        }
        for piece in self.pieces() {
            s.push_str(piece);
            s.push('\n');
        }
        s.push_str(self.body());
        s
    }
}
