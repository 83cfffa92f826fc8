//! The exported policy file and its burn-free inference path: a re-export of the
//! `edgewise-policy` crate (which see), kept here so that `edgewise_rl::policy::*`
//! paths keep working.

pub use edgewise_policy::*;
