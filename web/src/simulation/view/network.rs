//! The network view of the focused policy: the edge server at the centre of its cell,
//! devices (shape = class, fill = last decision), links shaded by the channel a policy
//! sees, the last slot's questions, the edge queue, and an inspector for one device:
//! its state, the features its policy saw and (for trained policies) the action
//! probabilities behind its schedule. Below the map, each device class's questions under
//! that policy, with the visitor's own device (when added from the chat) among them.

use mec::{OBS_DIM, OBS_FEATURES};
use web_sys::HtmlSelectElement;
use yew::html::Scope;
use yew::prelude::*;

use crate::app::{App, Msg};
use crate::entrants::Entrant;
use crate::format::{fixed, fmt, legend_item, percent};
use crate::simulation::protocol::RaceInfo;
use crate::simulation::race::{DeviceSnap, NetworkSnap};
use crate::simulation::this_device::THIS_DEVICE_CLASS;

/// Radius of the cell in SVG units (the view box leaves room for labels).
const R: f64 = 100.0;

/// Render the network panel.
pub fn view(app: &App, link: &Scope<App>) -> Html {
    let running: Vec<Entrant> = app.sim.history.iter().map(|(id, _)| *id).collect();
    let shown = app.sim.network.as_ref().map_or(app.state.focus, |n| n.lane);
    let on_focus = link.batch_callback(|e: Event| {
        let select: HtmlSelectElement = e.target_unchecked_into();
        Entrant::from_key(&select.value()).map(Msg::Focus)
    });
    let mean = app
        .sim
        .metrics
        .iter()
        .find(|(id, _)| *id == shown)
        .map(|(_, m)| m);
    html! {
        <>
            <div class="panel-head">
                <h2 id="network-title">{ "The cell, as scheduled by " }</h2>
                <select id="focus" class={classes!("focus-select", shown.css())} onchange={on_focus}
                    aria-label="Policy whose network is drawn">
                    { for running.iter().map(|id| html! {
                        <option value={id.key()} selected={*id == shown}>{ id.label() }</option>
                    }) }
                </select>
            </div>
            <p class="panel-sub">
                { "Mean latency so far: " }
                <span id="mean-latency" class="value">
                    { mean.filter(|m| m.queries > 0).map_or("–".to_owned(), |m| fixed(m.mean_latency_s, 2)) }
                </span>
                { " s · hover or tap a device to see why it was scheduled as it was" }
            </p>
            if let (Some(net), Some(info)) = (&app.sim.network, &app.sim.info) {
                { map(app, net, info, link) }
                { class_table(app, net, info, link) }
                { edge_queue(net) }
            } else {
                <p class="placeholder">{ "Starting the simulation worker…" }</p>
            }
        </>
    }
}

fn map(app: &App, net: &NetworkSnap, info: &RaceInfo, link: &Scope<App>) -> Html {
    let radius_m = info.cell_radius_m.max(1.0);
    let scale = R / radius_m;
    let pos = |d: &DeviceSnap| {
        (
            (f64::from(d.x_m) * scale).clamp(-R, R),
            (-f64::from(d.y_m) * scale).clamp(-R, R),
        )
    };
    let (lo, hi) = info.gain_range_db;
    let quality = |g: f32| {
        let span = hi - lo;
        if span > 1e-9 && g.is_finite() {
            ((f64::from(g) - lo) / span).clamp(0.0, 1.0)
        } else {
            0.5
        }
    };
    let selected = app.inspected();
    let is_this = |class: u8| {
        info.classes
            .get(usize::from(class))
            .is_some_and(|n| n == THIS_DEVICE_CLASS)
    };
    let links = net.devices.iter().map(|d| {
        let (x, y) = pos(d);
        let q = quality(d.gain_db);
        html! {
            <line class="link" x1="0" y1="0" x2={fmt(x)} y2={fmt(y)}
                stroke-opacity={format!("{:.2}", 0.08 + 0.55 * q)}
                stroke-width={format!("{:.2}", 0.4 + 1.0 * q)} />
        }
    });
    let offloads = net.events.iter().filter(|e| e.offload).filter_map(|e| {
        let d = net.devices.get(e.device as usize)?;
        let (x, y) = pos(d);
        Some(html! {
            <line class={classes!("query", "offload", e.dropped.then_some("dropped"))}
                x1={fmt(x)} y1={fmt(y)} x2="0" y2="0" />
        })
    });
    let locals = net.events.iter().filter(|e| !e.offload).filter_map(|e| {
        let d = net.devices.get(e.device as usize)?;
        let (x, y) = pos(d);
        Some(html! {
            <circle class={classes!("query", "local", e.dropped.then_some("dropped"))}
                cx={fmt(x)} cy={fmt(y)} r="6" />
        })
    });
    let dots = net.devices.iter().enumerate().map(|(i, d)| {
        let (x, y) = pos(d);
        let state = match d.last {
            1 => "did-local",
            2 => "did-offload",
            _ => "did-nothing",
        };
        let class = classes!("device", state, (selected == Some(i)).then_some("selected"));
        let shape = device_shape(d.class, is_this(d.class), x, y, class);
        html! {
            <g class="device-g" key={i}
                onmouseenter={link.callback(move |_| Msg::Hover(Some(i)))}
                onmouseleave={link.callback(|_| Msg::Hover(None))}
                onclick={link.callback(move |_| Msg::Pin(i))}>
                { shape }
                <circle class="hit" cx={fmt(x)} cy={fmt(y)} r="7" />
            </g>
        }
    });
    let classes = info.classes.iter().enumerate().map(|(c, name)| {
        html! {
            <li class="legend-item">
                <svg class="shape-swatch" viewBox="-5 -5 10 10" aria-hidden="true">
                    { device_shape(u8::try_from(c).unwrap_or(0), name == THIS_DEVICE_CLASS, 0.0, 0.0,
                        classes!("device", "did-nothing")) }
                </svg>
                { name.clone() }
            </li>
        }
    });
    html! {
        <figure class="network">
            <svg viewBox="-112 -112 224 224" role="img" id="network-map"
                aria-label={format!("{} devices around one edge server", net.devices.len())}>
                <circle class="cell" cx="0" cy="0" r={fmt(R)} />
                <circle class="cell-ring" cx="0" cy="0" r={fmt(R / 2.0)} />
                <text class="cell-label" x="0" y={fmt(-R - 4.0)}>
                    { format!("cell radius {} m", fixed(radius_m, 0)) }
                </text>
                <g>{ for links }</g>
                <g>{ for offloads }</g>
                <g>{ for locals }</g>
                <g class="devices">{ for dots }</g>
                <g class="server">
                    <rect x="-7" y="-7" width="14" height="14" rx="3" />
                    <text class="server-label" x="0" y="17">{ "edge server" }</text>
                </g>
            </svg>
            <figcaption>
                <ul class="legend">
                    { for classes }
                    { legend_item("dot", classes!("local"), "answered on device") }
                    { legend_item("dot", classes!("offload"), "offloaded to edge") }
                    { legend_item("dot", classes!("idle"), "no question yet") }
                    { legend_item("bar", classes!("link-scale"), &format!(
                        "link: weak ({} dB) → strong ({} dB)", fixed(lo, 0), fixed(hi, 0))) }
                </ul>
            </figcaption>
        </figure>
    }
}

/// A device's mark: its class's shape (the visitor's own device a diamond).
fn device_shape(class: u8, this_device: bool, x: f64, y: f64, mut class_css: Classes) -> Html {
    if this_device {
        class_css.push("this-device");
        let r = 4.2;
        let points = format!(
            "{},{} {},{} {},{} {},{}",
            fmt(x),
            fmt(y - r),
            fmt(x + r),
            fmt(y),
            fmt(x),
            fmt(y + r),
            fmt(x - r),
            fmt(y)
        );
        return html! { <polygon class={class_css} points={points} /> };
    }
    match class {
        0 => html! { <circle class={class_css} cx={fmt(x)} cy={fmt(y)} r="2.6" /> },
        1 => html! { <circle class={class_css} cx={fmt(x)} cy={fmt(y)} r="3.5" /> },
        _ => html! {
            <rect class={class_css} x={fmt(x - 3.4)} y={fmt(y - 2.6)} width="6.8" height="5.2" rx="1.2" />
        },
    }
}

/// Each class's devices and questions under the drawn policy; the visitor's device, when
/// added, with what it was measured at and a button to take it out.
fn class_table(app: &App, net: &NetworkSnap, info: &RaceInfo, link: &Scope<App>) -> Html {
    let dash = || "–".to_owned();
    let rows = info.classes.iter().zip(&net.classes).map(|(name, t)| {
        let this = name == THIS_DEVICE_CLASS;
        html! {
            <tr id={format!("class-{name}")} class={classes!(this.then_some("this-device-row"))}
                data-devices={t.devices.to_string()} data-queries={t.queries.to_string()}
                data-completed={t.completed().to_string()}
                data-offload={t.offload_share().map(|s| format!("{s:.4}")).unwrap_or_default()}>
                <th scope="row">{ name.clone() }</th>
                <td class="num">{ t.devices }</td>
                <td class="num">{ t.completed() }</td>
                <td class="num">{ t.offload_share().map_or_else(dash, |s| fixed(100.0 * s, 0)) }</td>
                <td class="num">{ t.mean_latency_s().map_or_else(dash, |l| fixed(l, 2)) }</td>
                <td class="num">{ t.energy_per_query_j().map_or_else(dash, |j| fixed(j, 2)) }</td>
            </tr>
        }
    });
    let device = app.sim.this_device.as_ref().map(|d| {
        let p = d.variant.per_class.get(THIS_DEVICE_CLASS);
        html! {
            <p class="this-device-note" id="this-device-note">
                { format!("“{THIS_DEVICE_CLASS}” is your browser, measured in the chat: {} prefill / {} \
                           decode tokens/s, {} mJ per token as a {} (energy model), a budget of {} J per \
                           window. Kept for this visit only, not in the link. ",
                    p.map_or_else(dash, |p| fixed(p.prefill_tok_s, 0)),
                    p.map_or_else(dash, |p| fixed(p.decode_tok_s, 1)),
                    fixed(d.joules_per_token() * 1000.0, 1), d.energy_class,
                    fixed(d.class.energy_budget_j * app.state.scenario.get("budget"), 2)) }
                <button type="button" class="link-button" id="this-device-remove"
                    onclick={link.callback(|_| Msg::ThisDevice(None))}>{ "Remove it" }</button>
            </p>
        }
    });
    html! {
        <div class="class-stats">
            <div class="table-scroll">
            <table class="scores" id="class-stats">
                <thead>
                    <tr>
                        <th scope="col">{ format!("class, under {}", net.lane.label()) }</th>
                        <th scope="col" title="devices of this class in the cell">{ "devices" }</th>
                        <th scope="col" title="questions answered this episode">{ "answered" }</th>
                        <th scope="col" title="share of its questions sent to the edge, %">{ "offload %" }</th>
                        <th scope="col" title="mean latency per question, seconds">{ "latency (s)" }</th>
                        <th scope="col" title="energy charged per question, joules">{ "J / question" }</th>
                    </tr>
                </thead>
                <tbody>{ for rows }</tbody>
            </table>
            </div>
            { for device }
        </div>
    }
}

fn edge_queue(net: &NetworkSnap) -> Html {
    let peak = net.edge_busy_s.iter().copied().fold(10.0_f32, f32::max);
    let bars = net.edge_busy_s.iter().enumerate().map(|(k, busy)| {
        let w = (busy / peak * 100.0).clamp(0.0, 100.0);
        html! {
            <li class="queue-row">
                <span class="queue-label">{ format!("model {}", k + 1) }</span>
                <span class="queue-track"><span class="queue-bar" style={format!("width:{w:.1}%")}></span></span>
                <span class="queue-value">{ format!("{} s", fixed(f64::from(*busy), 1)) }</span>
            </li>
        }
    });
    html! {
        <div class="edge-queue" id="edge-queue">
            <h3>{ "Edge server queue" }
                <span class="muted">{ format!(" · a question sent now waits {} s",
                    fixed(f64::from(net.edge_wait_s), 1)) }</span>
            </h3>
            <ul>{ for bars }</ul>
        </div>
    }
}

/// Render the device inspector (its own panel, beside the map).
pub fn inspector_panel(app: &App) -> Html {
    match (&app.sim.network, &app.sim.info) {
        (Some(net), Some(info)) => inspector(app, net, info),
        _ => html! {},
    }
}

fn inspector(app: &App, net: &NetworkSnap, info: &RaceInfo) -> Html {
    let Some(i) = app.inspected().filter(|i| *i < net.devices.len()) else {
        return html! {
            <div class="inspector empty" id="inspector">
                { "Hover or tap a device to inspect it." }
            </div>
        };
    };
    let d = &net.devices[i];
    let class = info
        .classes
        .get(usize::from(d.class))
        .map_or("device", String::as_str);
    let decision = match d.last {
        1 => html! { <span class="tag local">{ "answered on device" }</span> },
        2 => html! { <span class="tag offload">{ "offloaded to the edge" }</span> },
        _ => html! { <span class="tag idle">{ "no question yet" }</span> },
    };
    let obs = net.obs.get(i * OBS_DIM..(i + 1) * OBS_DIM);
    let probs = net
        .probs
        .get(i * 2..i * 2 + 2)
        .filter(|_| !net.probs.is_empty());
    let why = match probs {
        Some(p) => {
            let (pl, po) = (f64::from(p[0]), f64::from(p[1]));
            html! {
                <div class="probs">
                    <p>{ format!("{} chose by its network's probabilities:", net.lane.label()) }</p>
                    <div class="prob-bar" role="img"
                        aria-label={format!("local {}, offload {}", percent(pl, 0), percent(po, 0))}>
                        <span class="local" style={format!("width:{:.1}%", pl * 100.0)}>
                            { if pl > 0.15 { format!("local {}", percent(pl, 0)) } else { String::new() } }
                        </span>
                        <span class="offload" style={format!("width:{:.1}%", po * 100.0)}>
                            { if po > 0.15 { format!("offload {}", percent(po, 0)) } else { String::new() } }
                        </span>
                    </div>
                </div>
            }
        }
        None => html! { <p class="rule">{ net.lane.blurb() }</p> },
    };
    let features = obs.map(|o| {
        html! {
            <details class="features" open=true>
                <summary>{ "What the policy saw (its observation, before the last decision)" }</summary>
                <table>
                    <tbody>
                        { for OBS_FEATURES.iter().zip(o).map(|(name, v)| html! {
                            <tr>
                                <th scope="row">{ *name }</th>
                                <td class="num">{ fixed(f64::from(*v), 2) }</td>
                                <td class="feature-bar">
                                    <span style={format!("width:{:.0}%", (v.abs().min(1.0)) * 100.0)}
                                        class={if *v < 0.0 { "neg" } else { "pos" }}></span>
                                </td>
                            </tr>
                        }) }
                    </tbody>
                </table>
            </details>
        }
    });
    html! {
        <div class="inspector" id="inspector">
            <h3>{ format!("Device {i} · {class}") }
                if app.pinned == Some(i) { <span class="muted">{ " · pinned (tap again to release)" }</span> }
            </h3>
            <dl class="facts">
                <div><dt>{ "last decision" }</dt><dd>{ decision }</dd></div>
                <div><dt>{ "distance" }</dt><dd>{ format!("{} m", fixed(f64::from(d.x_m.hypot(d.y_m)), 0)) }</dd></div>
                <div><dt>{ "channel (last measured)" }</dt><dd>{ format!("{} dB", fixed(f64::from(d.gain_db), 1)) }</dd></div>
                <div><dt>{ "own model busy for" }</dt><dd>{ format!("{} s", fixed(f64::from(d.backlog_s), 1)) }</dd></div>
                <div><dt>{ "energy this window" }</dt><dd>{ format!("{} / {} J", fixed(f64::from(d.energy_j), 0), fixed(f64::from(d.budget_j), 0)) }</dd></div>
                <div><dt>{ "questions waiting" }</dt><dd>{ d.pending }</dd></div>
            </dl>
            { why }
            { for features }
        </div>
    }
}
