//! The network view: the edge server at the centre of its cell, devices as dots coloured by
//! class, links shaded by channel quality and the queries of the last slots as markers.

use mec::{Action, SimConfig};
use yew::prelude::*;

use super::{class_css, fixed, legend_item};
use crate::model::{Demo, MARKER_LIFETIME, Marker};

/// Radius of the cell in SVG units (the view box leaves room for labels).
const R: f64 = 100.0;

/// Render the network panel of `demo`.
pub fn view(demo: &Demo) -> Html {
    let config = demo.config();
    let sim = demo.sim();
    let devices = sim.devices();
    let radius_m = if config.cell_radius_m > 0.0 {
        config.cell_radius_m
    } else {
        devices
            .iter()
            .map(|d| d.x_m.hypot(d.y_m))
            .fold(1.0, f64::max)
    };
    let scale = R / radius_m;
    let pos = |i: usize| {
        devices
            .get(i)
            .map(|d| ((d.x_m * scale).clamp(-R, R), (-d.y_m * scale).clamp(-R, R)))
    };
    let quality = ChannelScale::for_config(config);

    let links = devices.iter().enumerate().map(|(i, d)| {
        let (x, y) = pos(i).unwrap_or_default();
        let q = quality.quality(d.channel_gain_db);
        html! {
            <line class="link" x1="0" y1="0" x2={fmt(x)} y2={fmt(y)}
                stroke-opacity={format!("{:.2}", 0.08 + 0.62 * q)}
                stroke-width={format!("{:.2}", 0.4 + 1.1 * q)} />
        }
    });
    let offloads = demo
        .markers()
        .iter()
        .filter(|m| m.action == Action::Offload)
        .filter_map(|m| pos(m.device).map(|p| offload_marker(m, p)));
    let dots = devices.iter().enumerate().map(|(i, d)| {
        let (x, y) = pos(i).unwrap_or_default();
        let class_name = config
            .classes
            .get(d.class)
            .map_or("device", |c| c.name.as_str());
        let tip = format!(
            "device {i} · {class_name}\nchannel {} dB\nlocal queue {} s\nenergy {} / {} J\npending {}",
            fixed(d.channel_gain_db, 1),
            fixed(d.local_backlog_s, 2),
            fixed(d.energy_used_j, 1),
            fixed(d.energy_budget_j, 1),
            d.pending,
        );
        html! {
            <circle class={classes!("device", class_css(d.class))} cx={fmt(x)} cy={fmt(y)} r="3.2">
                <title>{ tip }</title>
            </circle>
        }
    });
    let locals = demo
        .markers()
        .iter()
        .filter(|m| m.action == Action::Local)
        .filter_map(|m| pos(m.device).map(|p| local_marker(m, p)));

    html! {
        <figure class="network">
            <svg viewBox="-118 -118 236 236" role="img"
                aria-label={format!("{} devices around one edge server", devices.len())}>
                <circle class="cell" cx="0" cy="0" r={fmt(R)} />
                <circle class="cell-ring" cx="0" cy="0" r={fmt(R / 2.0)} />
                <text class="cell-label" x="0" y={fmt(-R - 4.0)}>
                    { format!("cell radius {} m", fixed(radius_m, 0)) }
                </text>
                <g>{ for links }</g>
                <g>{ for offloads }</g>
                <g>{ for dots }</g>
                <g>{ for locals }</g>
                { server(sim.edge_backlog_s()) }
            </svg>
            <figcaption>{ legend(demo, &quality) }</figcaption>
        </figure>
    }
}

fn server(backlog_s: f64) -> Html {
    html! {
        <g class="server">
            <rect x="-7" y="-7" width="14" height="14" rx="3">
                <title>{ format!("edge server · queue {} s", fixed(backlog_s, 2)) }</title>
            </rect>
            <text class="server-label" x="0" y="17">
                { format!("edge · queue {} s", fixed(backlog_s, 1)) }
            </text>
        </g>
    }
}

/// An offloaded query: the link lit in the offload colour with a packet travelling
/// towards the server as the marker ages.
fn offload_marker(m: &Marker, (x, y): (f64, f64)) -> Html {
    let fade = fade(m);
    let t = (f64::from(m.age) + 1.0) / (f64::from(MARKER_LIFETIME) + 1.0);
    let (px, py) = (x * (1.0 - t), y * (1.0 - t));
    let class = classes!("query", "offload", m.dropped.then_some("dropped"));
    html! {
        <g class={class} opacity={format!("{fade:.2}")}>
            <line x1={fmt(x)} y1={fmt(y)} x2="0" y2="0" />
            <circle cx={fmt(px)} cy={fmt(py)} r="2.2" />
        </g>
    }
}

/// A query answered on the device: a ring that widens and fades.
fn local_marker(m: &Marker, (x, y): (f64, f64)) -> Html {
    let class = classes!("query", "local", m.dropped.then_some("dropped"));
    let r = 5.0 + 2.5 * f64::from(m.age);
    html! {
        <circle class={class} cx={fmt(x)} cy={fmt(y)} r={fmt(r)}
            opacity={format!("{:.2}", fade(m))} />
    }
}

fn fade(m: &Marker) -> f64 {
    1.0 - f64::from(m.age) / f64::from(MARKER_LIFETIME)
}

fn legend(demo: &Demo, quality: &ChannelScale) -> Html {
    let classes = demo
        .config()
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| legend_item("dot", classes!(class_css(i)), &c.name));
    html! {
        <ul class="legend">
            { for classes }
            { legend_item("ring", classes!("local"), "answered on device") }
            { legend_item("dot", classes!("offload"), "offloaded to edge") }
            { legend_item("bar", classes!("link-scale"), &format!(
                "link: weak ({} dB) → strong ({} dB)", fixed(quality.lo, 0), fixed(quality.hi, 0))) }
        </ul>
    }
}

/// Maps channel gains (dB) to a 0–1 quality on a fixed scale for the scenario: from
/// 10 dB below the mean path gain at the cell edge (weak) to the path gain at a fifth of
/// the radius (strong), so a link's shade means the same thing from slot to slot.
struct ChannelScale {
    lo: f64,
    hi: f64,
}

impl ChannelScale {
    fn for_config(config: &SimConfig) -> Self {
        let radio = &config.radio;
        let path_gain_db = |d_m: f64| {
            radio.reference_gain_db - 10.0 * radio.path_loss_exponent * d_m.max(1.0).log10()
        };
        Self {
            lo: path_gain_db(config.cell_radius_m) - 10.0,
            hi: path_gain_db(config.cell_radius_m / 5.0),
        }
    }

    fn quality(&self, gain_db: f64) -> f64 {
        if !gain_db.is_finite() {
            return 0.0;
        }
        let span = self.hi - self.lo;
        if span.is_finite() && span > 1e-9 {
            ((gain_db - self.lo) / span).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_scale_is_safe() {
        let s = ChannelScale::for_config(&SimConfig::default());
        assert!(s.lo < s.hi);
        assert!((s.quality((s.lo + s.hi) / 2.0) - 0.5).abs() < 1e-9);
        assert!(s.quality(f64::NAN).abs() < 1e-9);
        assert!((s.quality(0.0) - 1.0).abs() < 1e-9);
        assert!(s.quality(-500.0).abs() < 1e-9);
        let flat = ChannelScale {
            lo: -90.0,
            hi: -90.0,
        };
        assert!((flat.quality(-90.0) - 0.5).abs() < 1e-9);
    }
}
