//! The scheduling-policy interface: something that chooses, each slot, where every
//! device's pending queries run. The implementations are the baselines of the paper's
//! comparison (`baselines.rs`) and the clairvoyant planner (`planner.rs`), named by
//! [`crate::PolicyKind`]; learned policies implement it in the apps.

use crate::sim::{Action, Simulator};

/// Something that chooses an action for every device each slot.
pub trait Policy {
    /// Short name for tables.
    fn name(&self) -> &str;
    /// Fill `actions` (one per device) for the simulator's current slot.
    fn decide(&mut self, sim: &Simulator, actions: &mut [Action]);
}
