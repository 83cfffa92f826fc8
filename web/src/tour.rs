//! Educator mode: a short guided walk-through, each step tied to a panel of the page
//! (highlighted while the step is shown).

/// One step of the tour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Element id of the panel it explains.
    pub target: &'static str,
    /// Heading.
    pub title: &'static str,
    /// What to look at.
    pub text: &'static str,
}

/// The tour, in order.
pub const STEPS: &[Step] = &[
    Step {
        target: "panel-network",
        title: "1 · What offloading is",
        text: "Each dot is a phone or laptop; the square in the middle is an edge server. \
               Every second (one slot) a device with a question decides: answer it with its \
               compact on-device model (a teal ring) or send it over the shared radio link to \
               the full model on the server (an amber line). Sending costs upload time and \
               waits in the server's queue, shown under the map; answering locally costs \
               battery and quality. Hover or tap a device to see what it knew and why it \
               was scheduled as it was.",
    },
    Step {
        target: "panel-policies",
        title: "2 · Same world, different policies",
        text: "Every policy here runs its own copy of the cell on the same seed: the same \
               people move the same way and ask the same questions, so differences come \
               only from the decisions. Each policy keeps its colour on every chart and \
               table. Click a chip to hide or show it.",
    },
    Step {
        target: "chart-latency",
        title: "3 · Latency",
        text: "How long a question takes to be answered, averaged over the last 10 slots. \
               Offloading everything crowds the uplink and the server queue; answering \
               everything locally is slow on weak phones.",
    },
    Step {
        target: "chart-energy",
        title: "4 · The energy constraint",
        text: "Each device may spend a budget of energy per 20-slot window. The chart shows \
               how much of the current window's budget the average device has used: above \
               the dashed 100 % line, devices are draining their batteries faster than \
               allowed.",
    },
    Step {
        target: "chart-accuracy",
        title: "5 · The quality constraints",
        text: "Compact on-device models answer less accurately and hallucinate more than the \
               full model on the server. Over the episode, accuracy must stay above its \
               floor and hallucination below its ceiling (dashed lines; the shaded side \
               breaks the constraint).",
    },
    Step {
        target: "panel-scores",
        title: "6 · What the world model adds",
        text: "PPO learns by trial and error in the simulator. WM-PPO also learns a model of \
               how the channel and the server queue evolve, and trains the policy on \
               experience imagined with it — so it can plan for congestion it cannot see \
               directly. Compare the two rows: latency, energy and quality, all at once.",
    },
    Step {
        target: "panel-controls",
        title: "7 · Your turn",
        text: "Change the crowd, the bandwidth, the battery budget or the quality \
               constraints, or pick a preset. The whole scenario lives in the address bar: \
               share the link and others see the same race. Export the results as CSV.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_have_distinct_targets() {
        for (i, a) in STEPS.iter().enumerate() {
            for b in &STEPS[i + 1..] {
                assert_ne!(a.target, b.target);
            }
        }
    }
}
