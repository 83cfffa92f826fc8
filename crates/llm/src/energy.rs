//! The energy model of design §4.4, parameterised per device class.
//!
//! It lives in the engine crate (not in `edgewise-ecld`, which re-exports it) because two
//! places apply it: `edgewise eval` writing the simulator's catalogue, and the browser app
//! estimating the visitor's own device, which must not load the research pipeline.
//!
//! For a query of `L_in` prompt and `L_out` generated tokens on a variant with `W` weight
//! bytes, `P` parameters, `k` KV-cache bytes per position and attention width
//! `A = Σ_layers heads·head_dim`:
//!
//! * **work**: `FLOPs = 2·P·(L_in + L_out) + 2·A·(L_in + L_out)²` (matrix products plus
//!   attention scores and mixing); `bytes moved = W·(1 + L_out) + L_out·(L_in + L_out/2)·k`
//!   (the prompt reads the weights once as a batch, every generated token reads them again,
//!   plus the KV cache it attends to);
//! * **speed on a class** (a roofline anchored on this machine's measurements):
//!   `prefill = host_prefill · compute_factor`,
//!   `decode = min(host_decode · compute_factor, bandwidth / (W + (L_in + L_out/2)·k))`, so a
//!   class decodes no faster than its memory can stream the weights;
//! * **energy**: `E = bytes·e_mem + FLOPs·e_op + P_static·(L_in/prefill + L_out/decode)`,
//!   reported per query and per token (`E / (L_in + L_out)`, what the simulator charges).
//!
//! [`estimate`] scales speeds measured on the measuring machine to a class;
//! [`estimate_measured`] takes speeds measured on the device itself (the page measures the
//! visitor's browser), so only the class's memory, energy and power parameters apply.
//!
//! A variant *fits* a class when its measured peak resident memory is at most the class's
//! memory. The class parameters in [`default_classes`] are documented assumptions (values
//! typical of each hardware class, not measurements); `compute_factor` is relative to the
//! 2-vCPU x86 machine the repository's figures were measured on.

use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// Hardware parameters of one device class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceClass {
    /// Class name (the simulator's class names: `phone-low`, `phone-high`, `laptop`).
    pub name: String,
    /// Memory available to a model, bytes.
    pub memory_bytes: f64,
    /// Compute throughput relative to the measuring machine (prefill and compute-bound
    /// decode scale by it).
    pub compute_factor: f64,
    /// Sustained memory bandwidth, bytes/s (caps decode speed).
    pub bandwidth_bytes_s: f64,
    /// Energy per byte moved from DRAM, joules.
    pub e_mem_j_per_byte: f64,
    /// Energy per floating-point operation, joules.
    pub e_op_j_per_flop: f64,
    /// Static power drawn while the model runs, watts.
    pub static_w: f64,
}

impl DeviceClass {
    /// Checks every parameter is finite and > 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the class and field.
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("memory_bytes", self.memory_bytes),
            ("compute_factor", self.compute_factor),
            ("bandwidth_bytes_s", self.bandwidth_bytes_s),
            ("e_mem_j_per_byte", self.e_mem_j_per_byte),
            ("e_op_j_per_flop", self.e_op_j_per_flop),
            ("static_w", self.static_w),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "device class {:?}: {f} = {v}, expected a finite number > 0",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// The simulator's three device classes with documented assumptions:
///
/// | class | memory | compute × | bandwidth | e_mem | e_op | P_static |
/// |---|---|---|---|---|---|---|
/// | phone-low | 4 GB | 0.35 | 12.8 GB/s (LPDDR4X, 2×16 bit) | 64 pJ/B | 8 pJ/FLOP | 0.4 W |
/// | phone-high | 8 GB | 0.9 | 34 GB/s (LPDDR5, 4×16 bit) | 50 pJ/B | 5 pJ/FLOP | 0.6 W |
/// | laptop | 16 GB | 2.0 | 60 GB/s (dual-channel DDR5) | 100 pJ/B | 15 pJ/FLOP | 4 W |
///
/// Memory sizes match the simulator's default scenario; e_mem ≈ 64 pJ/B for LPDDR is the
/// design's figure (LPDDR5 lower, SO-DIMM DDR5 with its controller higher); e_op and
/// P_static are typical of mobile big/little cores and a 15 W laptop CPU.
#[must_use]
pub fn default_classes() -> Vec<DeviceClass> {
    let c = |name: &str, mem: f64, cf: f64, bw: f64, emem: f64, eop: f64, ps: f64| DeviceClass {
        name: name.to_owned(),
        memory_bytes: mem,
        compute_factor: cf,
        bandwidth_bytes_s: bw,
        e_mem_j_per_byte: emem,
        e_op_j_per_flop: eop,
        static_w: ps,
    };
    vec![
        c("phone-low", 4.0e9, 0.35, 12.8e9, 64e-12, 8e-12, 0.4),
        c("phone-high", 8.0e9, 0.9, 34.0e9, 50e-12, 5e-12, 0.6),
        c("laptop", 16.0e9, 2.0, 60.0e9, 100e-12, 15e-12, 4.0),
    ]
}

/// The class of [`default_classes`] named `name`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `name` and the classes there are.
pub fn default_class(name: &str) -> Result<DeviceClass> {
    let classes = default_classes();
    let names = classes
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let found = classes.iter().position(|c| c.name == name);
    match found {
        Some(i) => Ok(classes[i].clone()),
        None => Err(Error::InvalidArgument(format!(
            "no device class {name:?} in the energy model; expected one of {names}"
        ))),
    }
}

/// What a variant costs per token, from its configuration and file size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelWork {
    /// Bytes of weights read per full forward (the file size is a close upper bound).
    pub weight_bytes: f64,
    /// Parameter count.
    pub params: f64,
    /// KV-cache bytes per position (f32 keys and values, all layers).
    pub kv_bytes_per_token: f64,
    /// Σ over layers of query heads · head dim.
    pub attn_width: f64,
}

impl ModelWork {
    /// From a model configuration and its weight bytes.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn new(cfg: &ModelConfig, weight_bytes: f64) -> Self {
        let kv: usize = cfg.n_head_kv.iter().map(|h| 2 * h * cfg.head_dim * 4).sum();
        let attn: usize = cfg.n_head.iter().map(|h| h * cfg.head_dim).sum();
        Self {
            weight_bytes,
            params: cfg.n_params() as f64,
            kv_bytes_per_token: kv as f64,
            attn_width: attn as f64,
        }
    }
}

/// The query shape energy is reported for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueryShape {
    /// Prompt tokens.
    pub input_tokens: f64,
    /// Generated tokens.
    pub output_tokens: f64,
}

impl Default for QueryShape {
    /// The simulator's default mean query: 128 prompt and 64 generated tokens.
    fn default() -> Self {
        Self {
            input_tokens: 128.0,
            output_tokens: 64.0,
        }
    }
}

/// Speeds measured on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HostSpeed {
    /// Prompt tokens/s.
    pub prefill_tok_s: f64,
    /// Generated tokens/s.
    pub decode_tok_s: f64,
}

/// The model's estimate for one variant on one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEstimate {
    /// Class name.
    pub class: String,
    /// Whether the measured resident memory fits the class's memory.
    pub fits: bool,
    /// Estimated prompt tokens/s.
    pub prefill_tok_s: f64,
    /// Estimated generated tokens/s.
    pub decode_tok_s: f64,
    /// Whether decode is limited by memory bandwidth (else by compute).
    pub decode_bandwidth_bound: bool,
    /// Seconds per query.
    pub seconds_per_query: f64,
    /// FLOPs per query.
    pub flops_per_query: f64,
    /// Bytes moved per query.
    pub bytes_per_query: f64,
    /// Joules per query, memory term.
    pub joules_memory: f64,
    /// Joules per query, compute term.
    pub joules_compute: f64,
    /// Joules per query, static term.
    pub joules_static: f64,
    /// Total joules per query.
    pub joules_per_query: f64,
    /// Joules per processed or generated token.
    pub joules_per_token: f64,
}

/// Applies the model (module docs) to one variant on one class.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad class, non-positive speeds or an empty query.
pub fn estimate(
    class: &DeviceClass,
    work: &ModelWork,
    host: HostSpeed,
    query: QueryShape,
    resident_bytes: f64,
) -> Result<ClassEstimate> {
    check_inputs(class, work, host, query, "host")?;
    let kv_read = (query.input_tokens + query.output_tokens / 2.0) * work.kv_bytes_per_token;
    let prefill = host.prefill_tok_s * class.compute_factor;
    let decode_compute = host.decode_tok_s * class.compute_factor;
    let decode_bw = class.bandwidth_bytes_s / (work.weight_bytes + kv_read);
    let speed = HostSpeed {
        prefill_tok_s: prefill,
        decode_tok_s: decode_compute.min(decode_bw),
    };
    Ok(cost(
        class,
        work,
        speed,
        decode_bw < decode_compute,
        query,
        resident_bytes,
    ))
}

/// Applies the model's work and energy terms to speeds measured on the device itself
/// (no compute scaling, no bandwidth cap: the measurement already holds both), with the
/// memory, energy-per-byte, energy-per-FLOP and static power of `class`.
/// `decode_bandwidth_bound` is then `false`: a measurement does not say what bounds it.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad class, speeds that are not finite and > 0 (a
/// failed or empty measurement) or an empty query.
pub fn estimate_measured(
    class: &DeviceClass,
    work: &ModelWork,
    measured: HostSpeed,
    query: QueryShape,
    resident_bytes: f64,
) -> Result<ClassEstimate> {
    check_inputs(class, work, measured, query, "measured")?;
    Ok(cost(class, work, measured, false, query, resident_bytes))
}

/// Rejects a bad class and any speed, query length or work figure that is not finite
/// and > 0, naming it (`which` says whose speeds they are).
fn check_inputs(
    class: &DeviceClass,
    work: &ModelWork,
    speed: HostSpeed,
    query: QueryShape,
    which: &str,
) -> Result<()> {
    class.validate()?;
    for (f, v) in [
        ("prefill_tok_s", speed.prefill_tok_s),
        ("decode_tok_s", speed.decode_tok_s),
        ("query input_tokens", query.input_tokens),
        ("query output_tokens", query.output_tokens),
        ("weight_bytes", work.weight_bytes),
        ("params", work.params),
    ] {
        if !(v.is_finite() && v > 0.0) {
            let f = if f.ends_with("tok_s") {
                format!("{which} {f}")
            } else {
                f.to_owned()
            };
            return Err(Error::InvalidArgument(format!(
                "{f} = {v}, expected a finite number > 0"
            )));
        }
    }
    Ok(())
}

/// Work, time and energy of one query at the speeds `speed` on `class`.
fn cost(
    class: &DeviceClass,
    work: &ModelWork,
    speed: HostSpeed,
    decode_bandwidth_bound: bool,
    query: QueryShape,
    resident_bytes: f64,
) -> ClassEstimate {
    let (li, lo) = (query.input_tokens, query.output_tokens);
    let total = li + lo;
    let kv_read = (li + lo / 2.0) * work.kv_bytes_per_token;
    let flops = 2.0 * work.params * total + 2.0 * work.attn_width * total * total;
    let bytes = work.weight_bytes * (1.0 + lo) + lo * kv_read;
    let seconds = li / speed.prefill_tok_s + lo / speed.decode_tok_s;
    let jm = bytes * class.e_mem_j_per_byte;
    let jc = flops * class.e_op_j_per_flop;
    let js = class.static_w * seconds;
    let j = jm + jc + js;
    ClassEstimate {
        class: class.name.clone(),
        fits: resident_bytes <= class.memory_bytes,
        prefill_tok_s: speed.prefill_tok_s,
        decode_tok_s: speed.decode_tok_s,
        decode_bandwidth_bound,
        seconds_per_query: seconds,
        flops_per_query: flops,
        bytes_per_query: bytes,
        joules_memory: jm,
        joules_compute: jc,
        joules_static: js,
        joules_per_query: j,
        joules_per_token: j / total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work() -> ModelWork {
        ModelWork {
            weight_bytes: 1.0e8,
            params: 1.0e8,
            kv_bytes_per_token: 1000.0,
            attn_width: 1000.0,
        }
    }

    #[test]
    fn hand_computed_case() {
        let class = DeviceClass {
            name: "x".into(),
            memory_bytes: 1.0e9,
            compute_factor: 0.5,
            bandwidth_bytes_s: 1.0e10,
            e_mem_j_per_byte: 1e-10,
            e_op_j_per_flop: 1e-11,
            static_w: 1.0,
        };
        let host = HostSpeed {
            prefill_tok_s: 400.0,
            decode_tok_s: 40.0,
        };
        let q = QueryShape {
            input_tokens: 10.0,
            output_tokens: 10.0,
        };
        let e = estimate(&class, &work(), host, q, 5.0e8).unwrap();
        assert!(e.fits);
        assert!((e.prefill_tok_s - 200.0).abs() < 1e-9);
        // bandwidth cap: 1e10 / (1e8 + 15·1000) ≈ 99.985 > 20 (compute) → compute-bound.
        assert!((e.decode_tok_s - 20.0).abs() < 1e-9);
        assert!(!e.decode_bandwidth_bound);
        let flops = 2.0 * 1e8 * 20.0 + 2.0 * 1000.0 * 400.0;
        assert!((e.flops_per_query - flops).abs() < 1.0);
        let bytes = 1e8 * 11.0 + 10.0 * 15_000.0;
        assert!((e.bytes_per_query - bytes).abs() < 1.0);
        let secs = 10.0 / 200.0 + 10.0 / 20.0;
        let j = bytes * 1e-10 + flops * 1e-11 + secs;
        assert!((e.joules_per_query - j).abs() < 1e-9);
        assert!((e.joules_per_token - j / 20.0).abs() < 1e-12);
        // Too little memory: does not fit; slow memory: bandwidth-bound.
        let small = DeviceClass {
            memory_bytes: 1.0e8,
            bandwidth_bytes_s: 1.0e9,
            ..class
        };
        let e2 = estimate(&small, &work(), host, q, 5.0e8).unwrap();
        assert!(!e2.fits && e2.decode_bandwidth_bound);
        assert!(e2.decode_tok_s < 10.0);
    }

    #[test]
    fn bigger_models_cost_more_and_bad_input_is_named() {
        let host = HostSpeed {
            prefill_tok_s: 300.0,
            decode_tok_s: 30.0,
        };
        for c in default_classes() {
            let small = estimate(&c, &work(), host, QueryShape::default(), 1e8).unwrap();
            let big_work = ModelWork {
                weight_bytes: 4.0e8,
                ..work()
            };
            let big = estimate(&c, &big_work, host, QueryShape::default(), 4e8).unwrap();
            assert!(big.joules_per_token > small.joules_per_token, "{}", c.name);
        }
        let mut c = default_classes().remove(0);
        c.static_w = -1.0;
        let e = estimate(&c, &work(), host, QueryShape::default(), 1.0).unwrap_err();
        assert!(e.to_string().contains("static_w"), "{e}");
        assert_eq!(default_class("laptop").unwrap(), default_classes()[2]);
        let e = default_class("tablet").unwrap_err().to_string();
        assert!(
            e.contains("\"tablet\"") && e.contains("phone-low, phone-high, laptop"),
            "{e}"
        );
        let slow = HostSpeed {
            prefill_tok_s: 0.0,
            ..host
        };
        let e = estimate(
            &default_classes()[0],
            &work(),
            slow,
            QueryShape::default(),
            1.0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("prefill"), "{e}");
    }

    #[test]
    fn measured_speeds_are_taken_as_they_are() {
        let class = default_classes().remove(1);
        let host = HostSpeed {
            prefill_tok_s: 300.0,
            decode_tok_s: 30.0,
        };
        let q = QueryShape::default();
        let scaled = estimate(&class, &work(), host, q, 1e8).unwrap();
        // The scaled class's own speeds, measured on it, cost what `estimate` says.
        let on_device = HostSpeed {
            prefill_tok_s: scaled.prefill_tok_s,
            decode_tok_s: scaled.decode_tok_s,
        };
        let m = estimate_measured(&class, &work(), on_device, q, 1e8).unwrap();
        assert!((m.joules_per_token - scaled.joules_per_token).abs() < 1e-15);
        // Measured speeds are not scaled: the static term is P_static · measured time.
        let m = estimate_measured(&class, &work(), host, q, 1e8).unwrap();
        assert!((m.prefill_tok_s - 300.0).abs() < 1e-12 && !m.decode_bandwidth_bound);
        let secs = 128.0 / 300.0 + 64.0 / 30.0;
        assert!((m.joules_static - class.static_w * secs).abs() < 1e-12);
        // Half the decode speed costs more static energy, nothing else.
        let slow = estimate_measured(
            &class,
            &work(),
            HostSpeed {
                decode_tok_s: 15.0,
                ..host
            },
            q,
            1e8,
        )
        .unwrap();
        assert!(
            (slow.joules_static - m.joules_static - class.static_w * 64.0 / 30.0).abs() < 1e-12
        );
        assert!((slow.joules_memory - m.joules_memory).abs() < 1e-15);
        for bad in [0.0, f64::NAN, f64::INFINITY, -1.0] {
            let e = estimate_measured(
                &class,
                &work(),
                HostSpeed {
                    decode_tok_s: bad,
                    ..host
                },
                q,
                1e8,
            )
            .unwrap_err();
            assert!(e.to_string().contains("measured decode_tok_s"), "{e}");
        }
    }
}
